"""Decoding the two widely used ``audio_common_msgs`` families into float samples (ROS-free).

Two ROS 2 packages share the name ``audio_common_msgs`` (so they cannot live in one workspace):

* ros-drivers/audio_common (``ros2`` branch): ``AudioDataStamped`` {``header``, ``audio.data``:
  uint8[] raw bytes} on one topic, ``AudioInfo`` {``channels``, ``sample_rate``,
  ``sample_format`` (GStreamer names such as S16LE, F32LE), ``bitrate``, ``coding_format`` (e.g.
  wave, mp3)} on another. Only raw PCM can be used: ``audio_capture`` defaults to mp3.
* mgonzs13/audio_common: ``AudioStamped`` {``header``, ``audio.info`` {``format`` (a PortAudio
  sample format code), ``channels``, ``rate``, ``chunk``}, ``audio.audio_data`` with one typed
  array per format (float32_data, int32_data, int16_data, int8_data, uint8_data)}.

Both decode to interleaved float32 in [-1, 1] plus the channel count and rate; an unusable
message raises :class:`AudioFormatError` naming the problem and the fix.
"""

from __future__ import annotations

import numpy as np

MESSAGE_FAMILIES = ("ros_drivers", "audio_stamped")


class AudioFormatError(ValueError):
    """An audio_common message this bridge cannot turn into samples."""


# GStreamer raw-audio format name -> (numpy dtype, scale to [-1, 1], offset)
_PCM = {
    "S8": ("i1", 2.0**7, 0.0),
    "U8": ("u1", 2.0**7, 128.0),
    "S16LE": ("<i2", 2.0**15, 0.0),
    "S16BE": (">i2", 2.0**15, 0.0),
    "S32LE": ("<i4", 2.0**31, 0.0),
    "S32BE": (">i4", 2.0**31, 0.0),
    "F32LE": ("<f4", 1.0, 0.0),
    "F32BE": (">f4", 1.0, 0.0),
    "F64LE": ("<f8", 1.0, 0.0),
}
PCM_FORMATS = tuple(_PCM) + ("S24LE",)
RAW_CODINGS = ("wave", "wav", "pcm", "raw", "")

# PortAudio sample format codes (portaudio.h) -> (AudioData field, scale, offset)
PA_FORMATS = {
    1: ("float32_data", 1.0, 0.0),  # paFloat32
    2: ("int32_data", 2.0**31, 0.0),  # paInt32
    8: ("int16_data", 2.0**15, 0.0),  # paInt16
    16: ("int8_data", 2.0**7, 0.0),  # paInt8
    32: ("uint8_data", 2.0**7, 128.0),  # paUInt8
}
PA_NAMES = {1: "paFloat32", 2: "paInt32", 8: "paInt16", 16: "paInt8", 32: "paUInt8"}


def check_coding(coding_format: str) -> None:
    """Raise AudioFormatError unless ``coding_format`` is raw PCM."""
    if str(coding_format).strip().lower() not in RAW_CODINGS:
        raise AudioFormatError(
            f"coding_format {coding_format!r}: only raw PCM (wave) can be used, not compressed "
            "audio; start audio_capture with format:=wave (its default is mp3)"
        )


def decode_pcm(data, sample_format: str, channels: int) -> np.ndarray:
    """Raw interleaved bytes (ros-drivers ``AudioData.data``) -> float32 [frames * channels]."""
    fmt = str(sample_format).strip().upper()
    buf = bytes(data) if not isinstance(data, (bytes, bytearray, memoryview)) else data
    if channels < 1:
        raise AudioFormatError(f"channels must be >= 1, got {channels}")
    if fmt == "S24LE":  # 3 bytes per sample: sign-extend into int32
        if len(buf) % 3:
            raise AudioFormatError(f"{len(buf)} bytes is not a whole number of S24LE samples")
        b = np.frombuffer(buf, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        out = (v / 2.0**23).astype(np.float32)
    elif fmt in _PCM:
        dtype, scale, offset = _PCM[fmt]
        size = np.dtype(dtype).itemsize
        if len(buf) % size:
            raise AudioFormatError(
                f"{len(buf)} bytes is not a whole number of {fmt} samples ({size} bytes each)"
            )
        out = ((np.frombuffer(buf, dtype).astype(np.float64) - offset) / scale).astype(np.float32)
    else:
        raise AudioFormatError(
            f"sample_format {sample_format!r} is not supported; use one of "
            f"{', '.join(PCM_FORMATS)} (audio_capture: sample_format:=S16LE)"
        )
    if out.size % channels:
        raise AudioFormatError(
            f"{out.size} samples do not split into {channels} interleaved channels"
        )
    return out


def decode_typed(audio_data, pa_format: int, channels: int) -> np.ndarray:
    """mgonzs13 ``AudioData`` (typed arrays) with its ``AudioInfo.format`` (a PortAudio code)
    -> float32 [frames * channels]."""
    if int(pa_format) not in PA_FORMATS:
        names = ", ".join(f"{v} ({k})" for k, v in PA_NAMES.items())
        raise AudioFormatError(
            f"AudioInfo.format {pa_format} is not a supported PortAudio sample format; "
            f"use one of {names} (paInt24 is not carried by AudioData)"
        )
    field, scale, offset = PA_FORMATS[int(pa_format)]
    values = np.asarray(getattr(audio_data, field), dtype=np.float64)
    if channels < 1:
        raise AudioFormatError(f"channels must be >= 1, got {channels}")
    if values.size % channels:
        raise AudioFormatError(
            f"{values.size} samples in {field} do not split into {channels} channels"
        )
    return ((values - offset) / scale).astype(np.float32)
