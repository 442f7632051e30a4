"""One incoming audio chunk made fit for the turn segmenter: float32 mono at its rate (no ROS).

The rules (each counted in :class:`~timar_ros.robot.segmenter.SegmenterCounters`):

- **PCM**: integer samples are scaled to [-1, 1) (unsigned as offset binary, e.g. U8).
- **NaN/Inf** samples become 0 (``nonfinite_samples``, chunk counted in ``invalid_chunks``);
  finite samples are clipped to ``[-clip, clip]`` (``clipped_samples``).
- **Empty chunks** are ignored (``empty_chunks``, ``invalid_chunks``).
- **Oversize chunks** (longer than ``max_chunk_s``) are rejected (``oversize_chunks``,
  ``invalid_chunks``, ``dropped_audio_s``).
- **Multi-channel** chunks ([n, channels] or interleaved with ``channels > 1``) are averaged to
  mono (``downmixed_chunks``); an interleaved chunk whose length is not a multiple of its
  channel count is dropped (``invalid_chunks``, ``dropped_audio_s``).
- **Wrong sample rate**: ``on_wrong_rate="resample"`` (default) resamples the chunk with
  ``scipy.signal.resample_poly`` (``resampled_chunks``; chunk-wise, so chunk edges carry a small
  filter transient); ``"reject"`` drops it (``wrong_rate_chunks``, ``invalid_chunks``,
  ``dropped_audio_s``).
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from timar_ros.robot.segmenter import SegmenterCounters

WRONG_RATE_ACTIONS = ("resample", "reject")


def _to_float_mono(x: np.ndarray, sample_rate: int, channels: int, c: SegmenterCounters):
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"audio samples must be numeric, got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.unsignedinteger):  # e.g. U8 PCM: offset binary
        half = float(np.iinfo(x.dtype).max // 2 + 1)
        x = (x.astype(np.float64) - half) / half
    elif np.issubdtype(x.dtype, np.integer):  # S16/S32 PCM
        x = x.astype(np.float64) / float(np.iinfo(x.dtype).max + 1)
    x = x.astype(np.float32, copy=False)
    if x.ndim == 2:
        if x.shape[1] > 1:
            c.downmixed_chunks += 1
            return x.mean(axis=1, dtype=np.float32)
        return x[:, 0]
    if x.ndim == 1 and channels > 1:
        if x.size % channels:
            c.invalid_chunks += 1
            c.dropped_audio_s += x.size / channels / max(sample_rate, 1)
            return None
        c.downmixed_chunks += 1
        return x.reshape(-1, channels).mean(axis=1, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"audio samples must be [n] or [n, channels], got shape {x.shape}")
    return x


def prepare_chunk(
    samples,
    sample_rate: int,
    channels: int,
    *,
    rate: int,
    clip: float,
    max_chunk_s: float,
    on_wrong_rate: str,
    counters: SegmenterCounters,
) -> np.ndarray | None:
    """One chunk (``samples`` float or integer PCM, [n], [n, channels] or interleaved [n *
    channels], at ``sample_rate`` Hz) -> float32 [m] mono at ``rate`` Hz, or None when the rules
    above drop it; ``counters`` counts what was repaired or dropped."""
    c = counters
    x = np.asarray(samples)
    if x.size == 0:
        c.empty_chunks += 1
        c.invalid_chunks += 1
        return None
    x = _to_float_mono(x, sample_rate, channels, c)
    if x is None:
        return None
    invalid = False
    finite = np.isfinite(x)
    if not finite.all():
        c.nonfinite_samples += int(x.size - finite.sum())
        x = np.where(finite, x, 0.0).astype(np.float32)
        invalid = True
    over = np.abs(x) > clip
    if over.any():
        c.clipped_samples += int(over.sum())
        x = np.clip(x, -clip, clip)
    if sample_rate <= 0 or x.size / sample_rate > max_chunk_s:
        c.oversize_chunks += int(sample_rate > 0)
        c.invalid_chunks += 1
        c.dropped_audio_s += x.size / sample_rate if sample_rate > 0 else 0.0
        return None
    if sample_rate != rate:
        if on_wrong_rate == "reject":
            c.wrong_rate_chunks += 1
            c.invalid_chunks += 1
            c.dropped_audio_s += x.size / sample_rate
            return None
        from scipy.signal import resample_poly

        ratio = Fraction(rate, int(sample_rate))
        x = resample_poly(x, ratio.numerator, ratio.denominator).astype(np.float32)
        c.resampled_chunks += 1
        if x.size == 0:
            c.empty_chunks += 1
            c.invalid_chunks += 1
            return None
    if invalid:
        c.invalid_chunks += 1
    return x
