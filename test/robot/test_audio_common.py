"""Decoding audio_common_msgs audio: raw PCM by GStreamer format name, typed arrays by PortAudio
format code; anything unusable is an error that names the fix."""

from types import SimpleNamespace

import numpy as np
import pytest

from timar_ros.robot.audio_common import (
    AudioFormatError,
    check_coding,
    decode_pcm,
    decode_typed,
)


def test_raw_pcm_formats_decode_to_the_same_samples():
    x = np.array([0.0, 0.5, -0.5, 0.25, -1.0, 0.99], np.float64)
    cases = {
        "S16LE": (np.round(x * 32767).astype("<i2").tobytes(), 1 / 32767),
        "S16BE": (np.round(x * 32767).astype(">i2").tobytes(), 1 / 32767),
        "S32LE": (np.round(x * (2**31 - 1)).astype("<i4").tobytes(), 1e-8),
        "F32LE": (x.astype("<f4").tobytes(), 1e-7),
        "U8": ((np.round(x * 127) + 128).astype("u1").tobytes(), 1 / 127),
        "S8": (np.round(x * 127).astype("i1").tobytes(), 1 / 127),
    }
    for fmt, (data, tol) in cases.items():
        np.testing.assert_allclose(decode_pcm(data, fmt, 2), x, atol=2 * tol, err_msg=fmt)
    # 24-bit little endian, negative values sign-extended
    v = np.round(x * (2**23 - 1)).astype("<i4")
    s24 = b"".join(int(i).to_bytes(4, "little", signed=True)[:3] for i in v)
    np.testing.assert_allclose(decode_pcm(s24, "s24le", 1), x, atol=2e-7)


def test_bad_raw_audio_names_the_problem():
    with pytest.raises(AudioFormatError, match="not a whole number of S16LE samples"):
        decode_pcm(b"\x00\x01\x02", "S16LE", 1)
    with pytest.raises(AudioFormatError, match="do not split into 2 interleaved channels"):
        decode_pcm(b"\x00\x00" * 3, "S16LE", 2)
    with pytest.raises(AudioFormatError, match="sample_format 'S20LE' is not supported"):
        decode_pcm(b"", "S20LE", 1)
    with pytest.raises(AudioFormatError, match="format:=wave"):
        check_coding("mp3")
    for ok in ("wave", "WAVE", ""):
        check_coding(ok)


def test_typed_arrays_by_portaudio_code():
    data = SimpleNamespace(
        float32_data=[0.5, -0.25],
        int32_data=[2**30, -(2**30)],
        int16_data=[16384, -16384],
        int8_data=[64, -64],
        uint8_data=[192, 64],
    )
    for code, want in (
        (1, [0.5, -0.25]),
        (2, [0.5, -0.5]),
        (8, [0.5, -0.5]),
        (16, [0.5, -0.5]),
        (32, [0.5, -0.5]),
    ):
        np.testing.assert_allclose(decode_typed(data, code, 2), want, err_msg=str(code))
    with pytest.raises(AudioFormatError, match="4 is not a supported PortAudio sample format"):
        decode_typed(data, 4, 1)  # paInt24 has no array in AudioData
    with pytest.raises(AudioFormatError, match="do not split into 3 channels"):
        decode_typed(data, 8, 3)
