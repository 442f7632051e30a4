"""Faults as data, and their rate limiting (no ROS).

A :class:`Fault` is one repaired or dropped input, or a failed turn: a kind (a counter name) and a
one-line text saying what was done and how much. :class:`FaultLog` decides which of them reach a
log: the first of each kind, then at most one per period with the count of those held back in
between. The counters, not the log, are the complete record. Every node logs its faults through
one FaultLog (``timar_ros.nodes.fault_log``) with one period parameter, ``fault_log_period_s``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    """One repaired or dropped input, or a failed turn: ``kind`` (a counter name) and a text."""

    kind: str
    text: str
    level: str = (
        "warn"  # "info" (expected, e.g. a silent stream padded), "warn", "error" (lost turn)
    )


class FaultLog:
    """Rate-limits fault messages per kind: the first of a kind is logged, then at most one per
    ``period_s``, carrying how many of that kind were not logged in between.

    Args:
        period_s: minimum time between two messages of one kind (s).
        clock: monotonic time source (s).
    """

    def __init__(self, period_s: float = 5.0, clock=time.monotonic):
        self.period_s = float(period_s)
        self.clock = clock
        self.counts: dict[str, int] = {}  # all faults seen per kind
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, fault: Fault) -> str | None:
        """The text to log for ``fault`` now, or None when rate-limited (it is counted)."""
        k = fault.kind
        self.counts[k] = self.counts.get(k, 0) + 1
        now = self.clock()
        last = self._last.get(k)
        if last is not None and now - last < self.period_s:
            self._suppressed[k] = self._suppressed.get(k, 0) + 1
            return None
        self._last[k] = now
        n = self._suppressed.pop(k, 0)
        more = f" [{n} more '{k}' since the last message]" if n else ""
        return (
            f"{fault.text}{more} (logged at most every {self.period_s:g} s per kind; "
            "all are counted in /diagnostics)"
        )
