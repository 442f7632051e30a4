"""Jitter where blocks meet: is motion rougher at tick and turn boundaries than elsewhere?

A streamed turn is emitted in blocks (ticks), each sampled with the frames before it as a
visible prefix, and every turn starts a new run of the model; a seam shows as a larger
frame-to-frame change at those frames. Jitter is the mean absolute second difference per motion
group (as :mod:`timar_ros.eval.behaviour`'s ``jit``); the second difference centred on frame j
spans frames j-1..j+1, so a seam between frames i-1 and i is in the differences centred on i-1
and i.
"""

from __future__ import annotations

import numpy as np

from timar_ros.motion import GROUPS


def seam_rows(n_frames: int, period: int) -> np.ndarray:
    """[n_frames - 2] bool over second-difference rows (row r is centred on frame r + 1): True
    where the difference spans a seam between frames i-1 and i, i a multiple of ``period``."""
    centre = np.arange(1, n_frames - 1)
    return (centre % period == 0) | ((centre + 1) % period == 0)


def boundary_jitter(preds: list[np.ndarray], frames_per_turn: int, tick_frames: int) -> dict:
    """Predictions [T, 56] (each a conversation, frame 0 a turn start) -> per group (exp, jaw,
    pose): jitter at turn seams, at tick seams inside turns, elsewhere, and the ratios
    ``turn_over_elsewhere`` / ``tick_over_elsewhere`` (None without such seams)."""
    rows: dict[str, list[np.ndarray]] = {"turn": [], "tick": [], "elsewhere": []}
    for p in preds:
        p = np.asarray(p, np.float64)
        if len(p) < 3:
            continue
        d2 = np.abs(np.diff(p, 2, axis=0))
        turn = seam_rows(len(p), frames_per_turn)
        tick = seam_rows(len(p), tick_frames) & ~turn if tick_frames < frames_per_turn else None
        rows["turn"].append(d2[turn])
        if tick is not None:
            rows["tick"].append(d2[tick])
        seam = turn if tick is None else (turn | tick)
        rows["elsewhere"].append(d2[~seam])
    out = {}
    for g, sl in GROUPS.items():
        j = {
            k: (float(np.concatenate(v)[:, sl].mean()) if v and sum(len(x) for x in v) else None)
            for k, v in rows.items()
        }
        for k in ("turn", "tick"):
            j[f"{k}_over_elsewhere"] = (
                j[k] / j["elsewhere"] if j[k] is not None and j["elsewhere"] else None
            )
        out[g] = j
    return out
