"""What the nodes report, without ROS: the /diagnostics status of the policy and of the servo
output (level, one-line message, every counter), and the retargeter's fault texts. The nodes
only turn a :class:`Status` into a ``diagnostic_msgs/DiagnosticStatus``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from timar_ros.robot.faults import Fault

OK, WARN, ERROR = "ok", "warn", "error"

# Segmenter counters that make the policy's status a warning when non-zero.
_AUDIO_PROBLEMS = (
    "late_chunks",
    "duplicate_chunks",
    "invalid_chunks",
    "clock_jumps",
    "outlier_chunks",
    "resampled_chunks",
    "downmixed_chunks",
)


@dataclass
class Status:
    level: str  # OK, WARN or ERROR
    message: str
    values: dict  # name -> value (shown as text)


def _problems(counts: dict, keys) -> list[str]:
    return [f"{k.replace('_', ' ')}: {counts[k]}" for k in keys if counts.get(k)]


def policy_status(
    pipeline,
    turns: int,
    backend: str,
    latencies_ms,
    e2e_ms,
    deadline_ms: float,
    extra: dict | None = None,
    logged: dict | None = None,
    tick_ms=(),
) -> Status:
    """conversation_policy's status: ERROR when turns were skipped; WARN when more than 5 % of the
    recent steps missed ``deadline_ms`` (ms), audio was dropped or any input fault was counted.

    Args:
        pipeline: the node's :class:`~timar_ros.robot.conversation.ConversationPipeline`.
        latencies_ms, e2e_ms: recent policy (per turn: its slowest tick with the commit) and
            end-to-end latencies (ms).
        tick_ms: recent latencies of single ticks (ms; streaming inside the turn).
        extra: the node's own counters (e.g. malformed user motion).
        logged: faults seen per kind by the node's fault log.
    """
    seg = pipeline.segmenter.counters.as_dict()
    pc = pipeline.counters
    extra = dict(extra or {})
    lat = np.asarray(latencies_ms, float) if len(latencies_ms) else np.zeros(1)
    e2e = np.asarray(e2e_ms, float) if len(e2e_ms) else np.zeros(1)
    late = float(np.mean(lat > deadline_ms))
    problems = (
        _problems(pc, ("skipped_turns", "deadline_misses"))
        + _problems(seg, _AUDIO_PROBLEMS)
        + _problems(extra, extra)
    )
    if pc["skipped_turns"]:
        level = ERROR
    elif late > 0.05 or seg["dropped_audio_s"] > 0 or problems:
        level = WARN
    else:
        level = OK
    values = {
        "turns": turns,
        "backend": backend,
        "latency_ms_p50": f"{np.percentile(lat, 50):.1f}",
        "latency_ms_p99": f"{np.percentile(lat, 99):.1f}",
        "e2e_ms_p99": f"{np.percentile(e2e, 99):.1f}",
        "tick_s": f"{pipeline.schedule.tick_s:g}",
        "display_delay_s": f"{pipeline.config.display_delay_s:g}",
        "tick_ms_p50": f"{np.percentile(tick_ms, 50):.1f}" if len(tick_ms) else "",
        "tick_ms_p99": f"{np.percentile(tick_ms, 99):.1f}" if len(tick_ms) else "",
        **{k: v for k, v in pc.items() if k != "turns"},
        **seg,
        **extra,
        **{f"user_motion_{k}": v for k, v in pipeline.user_motion.counters.items()},
        **{f"logged_{k}": v for k, v in (logged or {}).items()},
    }
    return Status(level, "; ".join(problems) if problems else "ok", values)


def servo_status(
    player, active: bool, extra: dict | None = None, info: dict | None = None
) -> Status:
    """head_retargeter's status: WARN when any input fault was counted (the player's, and the
    counters in ``extra``); else tracking or at neutral. ``player`` is its
    :class:`~timar_ros.robot.retarget.MotionPlayer`; ``info``: more values to show."""
    c = {**player.counters.as_dict(), **(extra or {})}
    problems = _problems(
        c, (*(extra or {}), "rejected_frames", "rejected_blocks", "deadline_misses", "clock_resets")
    )
    message = (
        "; ".join(problems)
        if problems
        else ("watchdog: at neutral" if player.watchdog_active else "tracking")
    )
    return Status(
        WARN if problems else OK,
        message,
        {**c, **(info or {}), "watchdog_active": player.watchdog_active, "active": active},
    )


# MotionPlayer counter -> (severity, what was done), for the retargeter's log.
PLAYER_FAULTS = {
    "rejected_frames": (
        "warn",
        "{d} frame(s) with NaN/Inf or values beyond input_limits: the "
        "last good frame is held in their place",
    ),
    "rejected_blocks": (
        "warn",
        "{d} block(s) rejected (malformed, or stamped more than "
        "max_lead_s ahead of this node's clock: check use_sim_time)",
    ),
    "deadline_misses": (
        "warn",
        "{d} block(s) arrived after their first frame was due (policy "
        "deadline miss: a slow step, or a turn emitted late because its "
        "audio stopped or lagged; see display_delay_s and max_latency_s): "
        "late frames skipped, easing to the frame due now",
    ),
    "clock_resets": ("warn", "the clock went back by more than 1 s: buffered frames cleared"),
    "watchdog_trips": (
        "info",
        "no motion due for watchdog_timeout_s: easing to the neutral pose (watchdog)",
    ),
}


def player_faults(before: dict, after: dict, where: str) -> list[Fault]:
    """The faults a MotionPlayer counted between two ``counters.as_dict()`` snapshots."""
    out = []
    for key, (level, text) in PLAYER_FAULTS.items():
        d = after[key] - before.get(key, 0)
        if d > 0:
            out.append(Fault(key, f"{where}: " + text.format(d=d), level))
    return out


def echo_status(canceller, mode: str, reference_topic: str, logged: dict | None = None) -> Status:
    """echo_canceller's status (``canceller``: its :class:`~timar_ros.robot.echo.EchoCanceller`,
    None before the microphone's first chunk): ERROR when the canceller failed (the raw
    microphone passed), WARN when frames had no reference or the echo's delay is out of the
    canceller's reach."""
    values = {"mode": mode, "reference_topic": reference_topic}
    if canceller is None:
        return Status(WARN, "no microphone audio yet", values)
    c = canceller.counters.as_dict()
    errors = c.pop("errors")
    values.update(c)
    values["latency_ms"] = round(canceller.latency_s * 1000, 1)
    values["reference_delay_ms"] = round(canceller.reference_delay_s * 1000, 1)
    if c["frames"]:
        from timar_ros.robot.echo import FRAME_S

        values["cpu_s_per_s"] = round(canceller.cpu_s / (c["frames"] * FRAME_S), 4)
    if canceller.delay.last is not None:
        values["echo_delay_ms"] = round(canceller.delay.last[0] * 1000, 1)
    values.update({f"logged_{k}": v for k, v in (logged or {}).items()})
    if c["canceller_errors"]:
        return Status(ERROR, f"canceller failed, raw microphone passed: {errors[0]}", values)
    problems = _problems(c, ("no_reference", "delay_out_of_range", "late_reference_chunks"))
    if problems:
        return Status(WARN, "; ".join(problems), values)
    return Status(
        OK, f"{mode}: {c['frames']} frames, {c['cancelled'] + c['ducked']} treated", values
    )
