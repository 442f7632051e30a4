"""The reaction latency a robot shows: the partner's pause -> the start of a nod or tilt on the
servo commands, read from a recorded bag (the demo's, or a robot's).

Both ends are on the bag's clock: the pause from the partner's audio (``user/audio`` chunk
stamps: when the sound was captured), the onset from ``joint_states`` (stamped when the command
is shown: the pipeline's display delay is inside the number, as a user sees it). Reactions are
found by the detector of :mod:`timar_ros.eval.behaviour` on the neck pitch and roll commands
(resampled to 25 fps) while the robot does not hold the floor (from ``agent/audio``, on the
clock its voice is heard on: see ``agent_heard_after_s``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from timar_ros import topics
from timar_ros.motion import FPS, SAMPLE_RATE


def _activity(audio: np.ndarray, rate: int, n_frames: int) -> np.ndarray:
    from timar_ros.data.audio import resample
    from timar_ros.eval.behaviour import speech_activity

    return speech_activity(
        resample(audio, rate, SAMPLE_RATE) if rate != SAMPLE_RATE else audio, n_frames
    )


def servo_reaction_latency(
    bag: str | Path,
    namespace: str = topics.DEFAULT_NAMESPACE,
    pitch_joint: str = "neck_pitch",
    roll_joint: str = "neck_roll",
    max_lag_s: float = 3.0,
    agent_heard_after_s: float = 0.0,
) -> dict:
    """Latencies (s) from each partner pause start to the next servo reaction onset within
    ``max_lag_s``: ``{"latencies_s": [...], "median_s", "min_s", "max_s", "reactions",
    "pauses"}`` (None statistics when the robot never reacted).

    ``agent_heard_after_s``: how long after its ``agent/audio`` stamp the robot's voice is heard.
    0 where voice_player stamps it when heard (a robot, the live-audio demo); the policy's display
    delay where ``agent/audio`` is the speech's own timeline and the voice, played in sync with
    the lips, would be heard that much later (the plain demo, which plays none). Without it the
    robot would seem to speak a display delay before its lips move, and a reaction shown just
    before it answers would count as made while it speaks."""
    from timar_ros import bags

    name = lambda rel: topics.resolve(rel, namespace)  # noqa: E731
    with bags.BagReader(bag) as r:
        ua, rate_u, start_u = bags.concat_audio(r.records(name(topics.USER_AUDIO)), path=bag)
        aa, rate_a, start_a = bags.concat_audio(r.records(name(topics.AGENT_AUDIO)), path=bag)
        joints = r.records(name(topics.JOINT_STATES))
    if not joints:
        raise bags.BagError(f"{bag}: no {name(topics.JOINT_STATES)} messages (servo commands)")
    names = list(joints[0].names)
    for j in (pitch_joint, roll_joint):
        if j not in names:
            raise bags.BagError(f"{bag}: joint {j!r} not in joint_states ({names})")
    t0 = start_u * 1e-9  # the grid: 25 fps from the partner's first audio sample
    n = int(len(ua) / rate_u * FPS)
    grid = t0 + np.arange(n) / FPS
    t_js = np.array([j.stamp_ns for j in joints]) * 1e-9
    pos = np.array([j.position for j in joints])
    motion = np.zeros((n, 56))
    motion[:, 53] = np.interp(grid, t_js, pos[:, names.index(pitch_joint)])
    motion[:, 55] = np.interp(grid, t_js, pos[:, names.index(roll_joint)])
    shown = (grid >= t_js[0]) & (grid <= t_js[-1])
    user_act = _activity(ua, rate_u, n)
    off = int(round((start_a * 1e-9 + agent_heard_after_s - t0) * FPS))
    agent = np.zeros(n, bool)
    a_act = _activity(aa, rate_a, int(len(aa) / rate_a * FPS))
    lo, hi = max(0, off), min(n, off + len(a_act))
    if hi > lo:
        agent[lo:hi] = a_act[lo - off : hi - off]
    return pause_reactions(motion, user_act, agent, max_lag_s, shown)


def pause_reactions(motion, user_act, agent_act, max_lag_s: float = 3.0, shown=None) -> dict:
    """motion [n, 56] at 25 fps, user_act/agent_act [n] bool speech activity (shown [n]: frames
    with a command, None = all) -> the statistics :func:`servo_reaction_latency` returns."""
    from timar_ros.eval.behaviour import detect_reactions, listening_mask, pause_starts

    listen = listening_mask(agent_act)
    if shown is not None:
        listen = listen & shown
    onsets = [o for o, _, _ in detect_reactions(motion, listen)]
    pauses = pause_starts(user_act)
    lat = []
    for p in pauses:
        nxt = [o for o in onsets if p <= o <= p + max_lag_s * FPS]
        if nxt:
            lat.append((nxt[0] - p) / FPS)
    return {
        "latencies_s": [round(float(x), 3) for x in lat],
        "median_s": float(np.median(lat)) if lat else None,
        "min_s": float(np.min(lat)) if lat else None,
        "max_s": float(np.max(lat)) if lat else None,
        "reactions": len(onsets),
        "pauses": int(len(pauses)),
    }


def rules_reaction_latency(
    user_wav: str | Path, agent_wav: str | Path, targets: str | Path, max_lag_s: float = 3.0
) -> dict:
    """The same figures for a conversation's rule targets (``targets``: the robot's motion .npz
    [T, 56] at 25 fps, frame 0 = the first audio sample of both WAVs): the lag the rules
    themselves put between the partner's pause and the listener's reaction, with the same
    detector, so a servo latency can be read against it."""
    from timar_ros.data.audio import load_wav
    from timar_ros.data.dualtalk_files import load_motion

    motion = load_motion(targets)
    n = len(motion)
    user_act = _activity(load_wav(user_wav, SAMPLE_RATE), SAMPLE_RATE, n)
    agent_act = _activity(load_wav(agent_wav, SAMPLE_RATE), SAMPLE_RATE, n)
    return pause_reactions(motion, user_act, agent_act, max_lag_s)
