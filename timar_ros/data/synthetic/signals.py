"""Small signal helpers of the generator: uniform draws from a range, Ornstein-Uhlenbeck
noise, frame RMS, runs of a mask, exponential smoothing."""

from __future__ import annotations

import numpy as np

from timar_ros.motion import FPS, SAMPLES_PER_FRAME


def uniform(rng, lo_hi) -> float:
    lo, hi = lo_hi
    return float(rng.uniform(lo, hi))


def ou_noise(rng, n: int, std, tau_s: float, fps: float = FPS, dims: int = 1) -> np.ndarray:
    """Stationary Ornstein-Uhlenbeck noise [n, dims] with the given std per dim."""
    from scipy.signal import lfilter

    a = float(np.exp(-1.0 / (tau_s * fps)))
    std = np.broadcast_to(np.asarray(std, dtype=np.float64), (dims,))
    w = rng.standard_normal((n, dims))
    x = lfilter([np.sqrt(1 - a * a)], [1.0, -a], w, axis=0)
    # start in the stationary distribution: add a decaying initial state
    x0 = rng.standard_normal(dims)
    x += np.outer(a ** np.arange(1, n + 1), x0)
    return (x * std).astype(np.float64)


def frame_rms(x: np.ndarray, n_frames: int) -> np.ndarray:
    x = np.asarray(x, np.float64)
    need = n_frames * SAMPLES_PER_FRAME
    if len(x) < need:
        x = np.pad(x, (0, need - len(x)))
    return np.sqrt(np.mean(x[:need].reshape(n_frames, SAMPLES_PER_FRAME) ** 2, axis=1) + 1e-12)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of the True runs of a boolean array."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def smooth(x: np.ndarray, tau_s: float) -> np.ndarray:
    from scipy.signal import lfilter

    a = float(np.exp(-1.0 / (tau_s * FPS)))
    return lfilter([1 - a], [1, -a], x, zi=[a * x[0]] if len(x) else None)[0] if len(x) else x
