"""The cost and the latency of streaming inside the turn, for `timar bench`.

* :func:`time_ticks`: per-tick wall time p50/p99 of a policy under a
  :class:`~timar_ros.runtime.ticks.TickSchedule`, the turn's commit (``end_turn``), the turn's
  last tick and its commit together (what runs back to back at a turn boundary), and the
  policy's share of one core: process CPU seconds (all threads) per second of audio.
* :func:`reaction_floors`: the reaction floor (:mod:`timar_ros.eval.reaction_floor`) of the
  1-s mode and of a tick schedule on the bundled demo conversation, same seed and moments.
"""

from __future__ import annotations

import time

import numpy as np

FLOOR_MOMENTS = 8


def time_ticks(policy, schedule, n_turns: int = 12, repeats: int = 3, seed: int = 0) -> dict:
    """Run ``repeats`` fresh conversations of ``n_turns`` turns (random speech-like audio) tick
    by tick; the first two turns of the first conversation warm up and are not counted.

    Returns {"tick_ms": {"p50", "p99", "n"}, "commit_ms": {...}, "boundary_ms": {...},
    "cpu_share": float, "ticks_per_turn": int}."""
    rng = np.random.default_rng(seed)
    spt, F = policy.samples_per_turn, policy.frames_per_turn
    ua = (0.1 * rng.standard_normal((n_turns, spt))).astype(np.float32)
    aa = (0.1 * rng.standard_normal((n_turns, spt))).astype(np.float32)
    ticks = schedule.ticks()
    tick_ms, commit_ms, boundary_ms = [], [], []
    cpu, audio_s = 0.0, 0.0
    for r in range(repeats):
        policy.reset()
        for t in range(n_turns):
            counted = r > 0 or t >= 2
            c0 = time.process_time()
            last = 0.0
            for tk in ticks:
                t0 = time.perf_counter()
                policy.tick(ua[t], aa[t], (tk.heard, tk.heard), tk.frames)
                last = (time.perf_counter() - t0) * 1e3
                if counted:
                    tick_ms.append(last)
            t0 = time.perf_counter()
            policy.end_turn(ua[t], aa[t])
            ms = (time.perf_counter() - t0) * 1e3
            if counted:
                commit_ms.append(ms)
                boundary_ms.append(last + ms)
                cpu += time.process_time() - c0
                audio_s += F / 25.0

    def stats(v):
        return {
            "p50": float(np.percentile(v, 50)),
            "p99": float(np.percentile(v, 99)),
            "n": len(v),
        }

    return {
        "tick_ms": stats(tick_ms),
        "commit_ms": stats(commit_ms),
        "boundary_ms": stats(boundary_ms),
        "cpu_share": cpu / audio_s,
        "ticks_per_turn": len(ticks),
    }


def reaction_floors(
    checkpoint, schedule, margin_s: float, backend: str = "onnx", seed: int = 0, **options
):
    """Reaction floors on the bundled demo conversation: {"one_second": ..., "tick": ...}, each
    :func:`timar_ros.eval.reaction_floor.reaction_floor`'s dict (the 1-s mode at today's 0.25 s
    margin, the schedule at ``margin_s``), over the same FLOOR_MOMENTS moments. ``options``:
    the policy's (e.g. guidance_scale)."""
    from timar_ros.data.audio import load_wav
    from timar_ros.eval.reaction_floor import reaction_floor, speaking_moments
    from timar_ros.resources import share_dir
    from timar_ros.runtime import StreamingPolicy
    from timar_ros.runtime.ticks import TickSchedule

    conv = share_dir() / "data" / "demo_conversation"
    pol = StreamingPolicy.from_checkpoint(checkpoint, backend=backend, seed=seed, **options)
    ua, aa = load_wav(conv / "demo_speaker1.wav"), load_wav(conv / "demo_speaker2.wav")
    n = min(len(ua), len(aa)) // pol.samples_per_turn * pol.samples_per_turn
    ua, aa = ua[:n], aa[:n]
    moments = speaking_moments(ua, FLOOR_MOMENTS, seed=seed)
    one_s = TickSchedule(pol.frames_per_turn, pol.frames_per_turn)
    return {
        "one_second": reaction_floor(pol, ua, aa, one_s, 0.25, moments),
        "tick": reaction_floor(pol, ua, aa, schedule, margin_s, moments),
        "moments_s": [round(m, 3) for m in moments],
    }
