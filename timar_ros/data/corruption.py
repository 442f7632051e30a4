"""Burst corruptions for robustness tests (numpy only), after the reference's
``make_noised_testset.py`` but with an exact occupancy and an explicit seed.

Burst mask: alternating runs of "clean" and "burst". Burst lengths are geometric with mean
``mean_len`` (>= 1); clean gaps are geometric (>= 0) with mean ``mean_len * (1 - prob) / prob``;
the first run is a burst with probability ``prob``. The expected fraction of masked steps is
therefore ``prob``. (The reference starts a burst with probability ``prob / mean_len`` at each
clean step, which gives an occupancy of about ``prob / (1 + prob)``, e.g. 0.41 at prob = 0.7,
not the ``prob`` its help text states.)

Corruptions, each applied only on its burst mask:
- speech noise: white Gaussian noise, std from the whole-file power and a target SNR (dB);
- speech silence: samples set to zero;
- user motion noise: gaussian (std), laplace (scale b) or uniform (half-range) noise in raw
  parameter space, on all 56 dims;
- user motion drop: hold the last frame (the frame before a burst is repeated through it).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "burst_mask",
    "speech_noise_burst",
    "speech_silence_burst",
    "motion_noise_burst",
    "hold_last_frame",
]


def burst_mask(n: int, prob: float, mean_len: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask [n] of bursts with expected occupancy ``prob`` and mean burst ``mean_len``."""
    n = int(n)
    if n <= 0:
        return np.zeros(0, dtype=bool)
    if prob <= 0:
        return np.zeros(n, dtype=bool)
    if prob >= 1:
        return np.ones(n, dtype=bool)
    mean_len = max(1.0, float(mean_len))
    mean_gap = mean_len * (1.0 - prob) / prob
    mask = np.zeros(n, dtype=bool)
    t = 0
    in_burst = bool(rng.random() < prob)  # stationary start
    # Draw run lengths in blocks; the expected number of runs is ~2n / (mean_len + mean_gap).
    block = max(16, int(2 * n / (mean_len + mean_gap)) + 16)
    while t < n:
        bursts = rng.geometric(1.0 / mean_len, size=block)
        gaps = rng.geometric(1.0 / (mean_gap + 1.0), size=block) - 1
        for b, g in zip(bursts, gaps):
            if in_burst:
                mask[t : t + int(b)] = True
                t += int(b)
            else:
                t += int(g)
            in_burst = not in_burst
            if t >= n:
                break
    return mask


def speech_noise_burst(
    wav: np.ndarray,
    prob: float,
    mean_s: float,
    snr_db: float,
    rng: np.random.Generator,
    sample_rate: int = 16000,
) -> tuple[np.ndarray, np.ndarray]:
    """Add white noise on burst samples; noise power = whole-file power / 10^(snr/10)."""
    x = np.asarray(wav, dtype=np.float32)
    mask = burst_mask(len(x), prob, mean_s * sample_rate, rng)
    out = x.copy()
    if mask.any():
        power = max(float(np.mean(x.astype(np.float64) ** 2)), 1e-12)
        std = np.sqrt(power / 10.0 ** (snr_db / 10.0))
        out[mask] += (rng.standard_normal(int(mask.sum())) * std).astype(np.float32)
    return out, mask


def speech_silence_burst(
    wav: np.ndarray,
    prob: float,
    mean_s: float,
    rng: np.random.Generator,
    sample_rate: int = 16000,
) -> tuple[np.ndarray, np.ndarray]:
    """Zero the burst samples."""
    x = np.asarray(wav, dtype=np.float32)
    mask = burst_mask(len(x), prob, mean_s * sample_rate, rng)
    out = x.copy()
    out[mask] = 0.0
    return out, mask


def motion_noise_burst(
    motion: np.ndarray,
    prob: float,
    mean_s: float,
    kind: str,
    scale: float,
    rng: np.random.Generator,
    fps: int = 25,
) -> tuple[np.ndarray, np.ndarray]:
    """Add gaussian (std=scale), laplace (b=scale) or uniform (+-scale) noise on burst frames."""
    m = np.asarray(motion, dtype=np.float32)
    mask = burst_mask(len(m), prob, mean_s * fps, rng)
    out = m.copy()
    k = int(mask.sum())
    if k and scale > 0:
        shape = (k, m.shape[1])
        if kind == "gaussian":
            eps = rng.normal(0.0, scale, shape)
        elif kind == "laplace":
            eps = rng.laplace(0.0, scale, shape)
        elif kind == "uniform":
            eps = rng.uniform(-scale, scale, shape)
        else:
            raise ValueError(f"unknown motion noise kind {kind!r} (gaussian, laplace, uniform)")
        out[mask] += eps.astype(np.float32)
    return out, mask


def hold_last_frame(motion: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Frames under ``mask`` repeat the last unmasked frame before them (frame 0 is kept)."""
    m = np.asarray(motion)
    mask = np.asarray(mask, dtype=bool).copy()
    if len(mask):
        mask[0] = False
    idx = np.where(mask, 0, np.arange(len(m)))
    np.maximum.accumulate(idx, out=idx)
    return m[idx].copy()
