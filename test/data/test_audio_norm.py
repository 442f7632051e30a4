"""Waveform normalisation modes: the reference's whole-file statistics and the causal running
ones, per stream, through the policy as a robot would run it."""

import numpy as np
import pytest

from helpers.model import conversation, one_thread_module, stream, tiny_model  # noqa: F401
from timar_ros.data.audio_norm import AudioNormalizer
from timar_ros.runtime.torch_policy import TorchStreamingPolicy

SPT = 16000


def _audio(n_turns=6, seed=0):
    rng = np.random.default_rng(seed)
    gain = np.repeat(rng.uniform(0.01, 0.5, n_turns), SPT)  # loudness changes every turn
    return (rng.standard_normal(n_turns * SPT) * gain + 0.02).astype(np.float32)


def test_file_mode_is_the_processors_formula():
    x = _audio()
    n = AudioNormalizer("file")
    out = n.conversation(x, SPT)
    want = (x.astype(np.float64) - x.mean()) / np.sqrt(x.var() + 1e-7)
    assert np.abs(out - want).max() < 1e-5
    assert abs(out.mean()) < 1e-4 and abs(out.std() - 1) < 1e-3


def test_running_mode_is_causal_and_converges_to_the_file():
    x = _audio()
    run = AudioNormalizer("running").conversation(x, SPT)
    chunk = AudioNormalizer("chunk").conversation(x, SPT)
    file = AudioNormalizer("file").conversation(x, SPT)
    assert np.abs(run[:SPT] - chunk[:SPT]).max() < 1e-5  # the first turn knows only itself
    assert np.abs(run[-SPT:] - file[-SPT:]).max() < 1e-4  # the last knows the whole file
    later = x.copy()
    later[3 * SPT :] *= 10.0  # changing later audio leaves earlier turns unchanged
    run2 = AudioNormalizer("running").conversation(later, SPT)
    assert np.array_equal(run2[: 3 * SPT], run[: 3 * SPT])
    assert np.abs(run2[3 * SPT :] - run[3 * SPT :]).max() > 0.1


def test_none_is_the_identity_and_a_bad_mode_names_the_choices():
    x = _audio(2)
    assert AudioNormalizer("none")(x[:SPT]) is x[:SPT] or np.array_equal(
        AudioNormalizer("none")(x[:SPT]), x[:SPT]
    )
    with pytest.raises(ValueError, match="audio_norm must be one of"):
        AudioNormalizer("whole")


def test_policy_normalises_each_stream_and_file_needs_the_whole_file():
    m = tiny_model(frames_per_turn=25)
    ua, aa, um = conversation(m, 5, seed=3)
    quiet = ua * 0.05  # the same speech, quieter: normalisation removes the difference
    for mode in ("file", "running", "chunk"):
        pol = TorchStreamingPolicy(m, seed=1, audio_norm=mode)
        a, b = pol.run_offline(ua, aa, um), pol.run_offline(quiet, aa, um)
        assert np.abs(a - b).max() < 1e-3, mode
    raw = TorchStreamingPolicy(m, seed=1, audio_norm="none")
    assert np.abs(raw.run_offline(ua, aa, um) - raw.run_offline(quiet, aa, um)).max() > 1e-3

    pol = TorchStreamingPolicy(m, seed=1, audio_norm="file")
    with pytest.raises(ValueError, match="audio_norm='file' needs the whole file"):
        pol.step(ua[:SPT], aa[:SPT], um[:25])
    offline = pol.run_offline(ua, aa, um)
    pol.reset()
    pol.fit_file_audio(ua, aa)
    assert np.abs(stream(pol, ua, aa, um) - offline).max() <= 1e-5
    # running: the stream and the offline path agree, and a reset forgets the statistics
    pol = TorchStreamingPolicy(m, seed=1, audio_norm="running")
    first = stream(pol, ua, aa, um)
    pol.reset()
    assert np.array_equal(stream(pol, ua, aa, um), first)
    assert np.abs(pol.run_offline(ua, aa, um) - first).max() <= 1e-4
