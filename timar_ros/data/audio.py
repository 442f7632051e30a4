"""WAV input/output: files as stored (:func:`read_wav`) or as the model consumes them, float32
mono at 16 kHz (:func:`load_wav`).

Reading goes through ``soundfile`` (any PCM width, float, any channel count and rate, and the
other formats libsndfile reads); resampling uses ``scipy.signal.resample_poly`` (a polyphase FIR
with the exact rational ratio), so no librosa is needed. A file that cannot be used raises
:class:`AudioError` naming it and the fix; one that can be repaired is, with a warning
(:class:`AudioRepairWarning`, or the caller's ``on_repair``): a WAV whose header promises more
samples than the file holds (an interrupted copy or recording) is read as far as it goes, and a
``.wav`` that holds another format (an MP3 renamed) is read as what it is.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from math import gcd
from pathlib import Path

import numpy as np

from timar_ros.errors import InputError
from timar_ros.motion import SAMPLE_RATE

__all__ = [
    "AudioError",
    "AudioRepairWarning",
    "read_wav",
    "load_wav",
    "resample",
    "write_wav",
    "SAMPLE_RATE",
]

_FIX = "use a WAV file (16 kHz mono PCM needs no conversion)"


class AudioError(InputError, ValueError):
    """A WAV file that cannot be used (wrong layout, non-finite samples, unreadable)."""


class AudioRepairWarning(UserWarning):
    """A file that was usable after a repair; the message says what was done."""


def _repaired(text: str, on_repair: Callable[[str], None] | None) -> None:
    if on_repair is not None:
        on_repair(text)
    else:
        warnings.warn(AudioRepairWarning(text), stacklevel=3)


def _missing_wav_bytes(path: Path) -> tuple[int, int] | None:
    """(bytes the WAV's data chunk declares, bytes the file holds of it) when the file is shorter
    than its header says, else None. soundfile reads what is there without a word, and no audio
    library reports the declared size, so the RIFF chunk list is walked here (chunk id, size)."""
    import struct

    size = path.stat().st_size
    with path.open("rb") as f:
        if f.read(4) not in (b"RIFF", b"RF64") or len(f.read(4)) < 4 or f.read(4) != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk, n = struct.unpack("<4sI", f.read(8))
            if chunk == b"data":
                held = size - pos - 8
                return (n, held) if 0 < held < n < 0xFFFFFFFF else None
            pos += 8 + n + (n & 1)  # chunks are word-aligned
    return None


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


def read_wav(
    path: str | Path, on_repair: Callable[[str], None] | None = None
) -> tuple[np.ndarray, int]:
    """A WAV (or any soundfile-readable file) as stored: (samples [N, channels] float32 in
    [-1, 1], sample rate in Hz).

    Args:
        on_repair: called with a one-line text for each repair (default: an AudioRepairWarning).
    Raises:
        FileNotFoundError: the file does not exist.
        AudioError: empty, not audio, or holding no samples.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes); {_FIX}")
    try:
        info = sf.info(str(path))
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises its own LibsndfileError / RuntimeError
        raise AudioError(f"{path}: not a readable audio file ({exc}); {_FIX}") from exc
    if len(data) == 0:
        raise AudioError(f"{path}: holds no audio (0 samples); {_FIX}")
    if path.suffix.lower() == ".wav" and info.format not in ("WAV", "WAVEX", "RF64"):
        _repaired(
            f"{path}: holds {info.format_info} data, not WAV (a renamed file?): read as "
            f"{info.format}",
            on_repair,
        )
    elif info.format in ("WAV", "WAVEX"):
        missing = _missing_wav_bytes(path)
        if missing is not None:
            promised = missing[0] / missing[1] * len(data) / sr
            _repaired(
                f"{path}: truncated: its header promises {promised:.1f} s but the file holds "
                f"{len(data) / sr:.1f} s (an interrupted copy or recording?); using the "
                f"{len(data) / sr:.1f} s it has",
                on_repair,
            )
    return data, int(sr)


def load_wav(
    path: str | Path,
    sample_rate: int = SAMPLE_RATE,
    channel: str | int = "mean",
    on_repair: Callable[[str], None] | None = None,
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
    data, sr = read_wav(path, on_repair)
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
    from timar_ros.files import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:  # an interrupted write leaves no truncated WAV
        sf.write(str(tmp), np.clip(x, -1.0, 1.0), int(sample_rate), subtype=subtype, format="WAV")
    return path
