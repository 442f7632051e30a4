"""Sampling noise as a pure function of (seed, turn index), shared by every backend.

numpy's PCG64 seeded by ``SeedSequence([seed, turn])`` gives the same float32 arrays on every
platform, so the torch and onnxruntime backends, the streaming step and the parallel offline
path all draw identical noise for a turn. Imports only numpy.
"""

from __future__ import annotations

import numpy as np

MOTION_DIM = 56


def turn_noise(
    seed: int, turn: int, frames: int, steps: int, dim: int = MOTION_DIM
) -> tuple[np.ndarray, np.ndarray]:
    """Initial noise x_T [frames, dim] and per-step noise [steps, frames, dim], float32."""
    if turn < 0:
        raise ValueError(f"turn index must be >= 0, got {turn}")
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, int(turn)])
    rng = np.random.Generator(np.random.PCG64(ss))
    x_T = rng.standard_normal((frames, dim), dtype=np.float32)
    step = rng.standard_normal((steps, frames, dim), dtype=np.float32)
    return x_T, step


def conversation_noise(
    seed: int, n_turns: int, frames: int, steps: int, first_turn: int = 0, dim: int = MOTION_DIM
) -> tuple[np.ndarray, np.ndarray]:
    """Noise of turns first_turn..first_turn+n_turns-1, stacked: [N*frames, dim] and
    [steps, N*frames, dim]."""
    xs, ss = zip(*(turn_noise(seed, first_turn + t, frames, steps, dim) for t in range(n_turns)))
    return np.concatenate(xs, 0), np.concatenate(ss, 1)
