"""The reaction floor: how soon a shown frame can reflect a sound.

Silence the partner from a moment t0 on, run the same stream again with the same seed, and find
the first frame that changes: its display time (audio time + the schedule's display delay) - t0
is the earliest the robot can be seen to react to what happened at t0, whatever the model
makes of it. The 1-s mode's floor is 0.25-1.25 s (t0 anywhere in a turn); a tick schedule's is
about half a tick plus the latency margin. Runs the policy exactly as the live node does
(:meth:`~timar_ros.runtime.StreamingPolicy.run_ticks`).
"""

from __future__ import annotations

import numpy as np

from timar_ros.motion import FPS, SAMPLE_RATE

CHANGED = 1e-5  # motion units: float rounding between two runs of the same stream is ~0


def speaking_moments(user_audio: np.ndarray, count: int, seed: int = 0, min_s: float = 1.0):
    """``count`` moments t0 (s), sorted, at which the partner speaks for at least 0.3 s on
    (silencing them there is a change the model can see), at least ``min_s`` into the
    conversation, drawn with ``seed``."""
    from timar_ros.eval.behaviour import speech_activity

    n = len(user_audio) * FPS // SAMPLE_RATE
    act = speech_activity(np.asarray(user_audio, np.float32), n)
    hold = int(0.3 * FPS)
    ok = [f for f in range(int(min_s * FPS), n - hold - 2 * FPS) if act[f : f + hold].all()]
    if len(ok) < count:
        raise ValueError(
            f"the partner speaks long enough at only {len(ok)} frames; need {count} moments"
        )
    rng = np.random.default_rng(seed)
    frames = np.sort(rng.choice(ok, size=count, replace=False))
    # a moment inside the frame, not on its edge: the floor must not depend on alignment
    return [(f + rng.uniform(0.05, 0.95)) / FPS for f in frames]


def reaction_floor(
    policy,
    user_audio: np.ndarray,
    agent_audio: np.ndarray,
    schedule,
    margin_s: float,
    moments: list[float],
    user_motion: np.ndarray | None = None,
) -> dict:
    """Reaction floor of ``policy`` under ``schedule`` (:class:`~timar_ros.runtime.ticks.
    TickSchedule`) at each moment t0 (s) of the conversation (16-kHz audio, whole turns).

    Returns {"floors_s": [...], "mean_s", "min_s", "max_s", "display_delay_s", "tick_s",
    "lookahead_s"}; a moment after which no frame changed within two turns gives None."""
    spt, F = policy.samples_per_turn, policy.frames_per_turn
    delay = schedule.display_delay_s(margin_s)
    floors = []
    for t0 in moments:
        s0 = int(round(t0 * SAMPLE_RATE))
        n_turns = min(len(user_audio) // spt, s0 // spt + 3)  # the change shows within two turns
        ua = np.asarray(user_audio[: n_turns * spt], np.float32)
        aa = np.asarray(agent_audio[: n_turns * spt], np.float32)
        um = None if user_motion is None else user_motion[: n_turns * F]
        base = policy.run_ticks(ua, aa, schedule, um)
        quiet = ua.copy()
        quiet[s0:] = 0.0
        changed = np.nonzero(
            np.abs(policy.run_ticks(quiet, aa, schedule, um) - base).max(1) > CHANGED
        )[0]
        floors.append(None if not len(changed) else float(changed[0] / FPS + delay - t0))
    got = [f for f in floors if f is not None]
    return {
        "floors_s": floors,
        "mean_s": float(np.mean(got)) if got else None,
        "min_s": float(np.min(got)) if got else None,
        "max_s": float(np.max(got)) if got else None,
        "display_delay_s": delay,
        "tick_s": schedule.tick_s,
        "lookahead_s": schedule.lookahead_s,
    }
