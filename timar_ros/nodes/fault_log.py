"""The one way a node logs a Fault: rate-limited per kind, at the fault's severity."""

from __future__ import annotations

from timar_ros.robot.faults import Fault, FaultLog

PERIOD_PARAM = "fault_log_period_s"
PERIOD_DESCRIPTION = (
    "each kind of fault is logged at most once per this period (s), with the "
    "count of those held back; all are counted in /diagnostics"
)


class NodeFaultLog:
    """Logs faults through an rclpy logger, at most one per kind per ``period_s``.

    Args:
        logger: the node's logger (``node.get_logger()``).
        period_s: the node's ``fault_log_period_s`` parameter (s).
    """

    def __init__(self, logger, period_s: float):
        self._logger = logger
        self._limit = FaultLog(period_s)

    @property
    def counts(self) -> dict[str, int]:
        """Every fault seen per kind, logged or not (for /diagnostics)."""
        return self._limit.counts

    def __call__(self, fault: Fault) -> None:
        text = self._limit(fault)
        if text is None:
            return
        # one call site per severity: rclpy refuses a severity change at one call site
        if fault.level == "error":
            self._logger.error(text)
        elif fault.level == "info":
            self._logger.info(text)
        else:
            self._logger.warning(text)
