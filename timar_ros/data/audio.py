"""WAV input/output for the data tools: float32 mono at 16 kHz.

Reading goes through ``soundfile``; resampling uses ``scipy.signal.resample_poly`` (a polyphase
FIR with the exact rational ratio), so no librosa is needed.
"""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np

from timar_ros.errors import InputError
from timar_ros.motion import SAMPLE_RATE

__all__ = ["AudioError", "load_wav", "resample", "write_wav", "SAMPLE_RATE"]


class AudioError(InputError, ValueError):
    """A WAV file that cannot be used (wrong layout, non-finite samples, unreadable)."""


def resample(x: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """Resample a 1-D signal from ``sr_in`` to ``sr_out`` Hz (polyphase, exact ratio).

    Returns float32. The output has ``ceil(len(x) * sr_out / sr_in)`` samples.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise AudioError(f"resample expects a 1-D signal, got shape {x.shape}")
    if sr_in <= 0 or sr_out <= 0:
        raise AudioError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    if sr_in == sr_out or len(x) == 0:
        return x.copy()
    from scipy.signal import resample_poly

    g = gcd(int(sr_in), int(sr_out))
    y = resample_poly(x.astype(np.float64), int(sr_out) // g, int(sr_in) // g)
    return y.astype(np.float32)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A WAV (or any soundfile-readable file) as stored: (samples [N, channels] float32 in
    [-1, 1], sample rate in Hz).

    Raises:
        FileNotFoundError: the file does not exist.
        AudioError: the file cannot be read as audio.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises its own LibsndfileError / RuntimeError
        raise AudioError(f"cannot read audio file {path}: {exc}") from exc
    return data, int(sr)


def load_wav(
    path: str | Path,
    sample_rate: int = SAMPLE_RATE,
    channel: str | int = "mean",
) -> np.ndarray:
    """A WAV (or any soundfile-readable file) as float32 mono at ``sample_rate`` Hz: what the
    model and the metrics consume (:func:`read_wav` gives the file as stored).

    Args:
        path: the file.
        sample_rate: target rate; the file is resampled when it differs.
        channel: how to reduce several channels: ``"mean"`` (average; the default),
            ``"error"`` (refuse anything but mono), or an integer channel index.
    Raises:
        FileNotFoundError: the file does not exist.
        AudioError: unreadable file, bad channel choice, empty or non-finite (NaN/inf) samples.
    """
    data, sr = read_wav(path)
    n_ch = data.shape[1]
    if n_ch == 1:
        x = data[:, 0]
    elif channel == "mean":
        x = data.mean(axis=1)
    elif channel == "error":
        raise AudioError(f"{path}: expected mono audio, got {n_ch} channels")
    elif isinstance(channel, (int, np.integer)) and not isinstance(channel, bool):
        if not -n_ch <= int(channel) < n_ch:
            raise AudioError(f"{path}: channel {channel} requested but the file has {n_ch}")
        x = data[:, int(channel)]
    else:
        raise AudioError(f"channel must be 'mean', 'error' or an int, got {channel!r}")
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise AudioError(f"{path}: {bad} non-finite (NaN/inf) samples")
    x = np.ascontiguousarray(x, dtype=np.float32)
    return resample(x, int(sr), int(sample_rate))


def write_wav(
    path: str | Path,
    x: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    subtype: str = "PCM_16",
) -> Path:
    """Write a mono float signal (clipped to [-1, 1]) as a WAV file; parents are created."""
    import soundfile as sf

    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise AudioError(f"write_wav expects mono [N], got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise AudioError(f"refusing to write non-finite samples to {path}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(x, -1.0, 1.0), int(sample_rate), subtype=subtype)
    return path
