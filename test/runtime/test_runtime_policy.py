"""StreamingPolicy API: dispatch, input checks, torch-free import, attributes."""

import subprocess
import sys

import numpy as np
import pytest

from helpers.model import (
    one_thread_module,  # noqa: E402,F401
    tiny_model,
)
from timar_ros.runtime import BACKENDS, StreamingPolicy
from timar_ros.runtime.sampling_noise import turn_noise
from timar_ros.runtime.torch_policy import TorchStreamingPolicy


def test_runtime_import_does_not_load_torch():
    code = (
        "import sys, timar_ros.runtime, timar_ros.runtime.sampling_noise, "
        "timar_ros.model.token_layout, "
        "timar_ros.model.config, timar_ros.runtime.checkpoint; "
        "print('torch' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_backend_dispatch():
    assert "torch" in BACKENDS and "onnx" in BACKENDS
    with pytest.raises(ValueError, match="unknown backend"):
        StreamingPolicy.from_checkpoint("x", backend="tensorrt")


def test_step_checks_inputs_and_attributes():
    m = tiny_model(frames_per_turn=10)
    pol = TorchStreamingPolicy(m, seed=0)
    assert isinstance(pol, StreamingPolicy)
    assert pol.frames_per_turn == 10 and pol.samples_per_turn == 6400
    z = np.zeros(6400, np.float32)
    out = pol.step(z, z)
    assert out.shape == (10, 56) and out.dtype == np.float32
    assert pol.history_turns == 0 and pol.turn_index == 1
    pol.step(z, z, np.zeros((10, 56)))
    assert pol.history_turns == 1
    with pytest.raises(ValueError, match="user_audio.*shape"):
        pol.step(np.zeros(16000, np.float32), z)
    bad = z.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pol.step(z, bad)
    with pytest.raises(ValueError, match="user_motion"):
        pol.step(z, z, np.zeros((10, 55)))
    with pytest.raises(ValueError, match="whole number of turns"):
        pol.run_offline(np.zeros(6401, np.float32), np.zeros(6401, np.float32))
    assert pol.turn_index == 2  # failed calls change nothing
    pol.reset()
    assert pol.turn_index == 0 and pol.history_turns == 0
    assert pol.run_offline(np.zeros(0, np.float32), np.zeros(0, np.float32)).shape == (0, 56)


def test_run_offline_leaves_stream_state_alone():
    m = tiny_model()
    pol = TorchStreamingPolicy(m, seed=0, guidance_scale=2.0)  # fallback path (steps a stream)
    z = np.zeros(16000, np.float32)
    a = pol.step(z, z)
    pol.run_offline(np.zeros(32000, np.float32), np.zeros(32000, np.float32))
    b = pol.step(z, z)
    ref = TorchStreamingPolicy(m, seed=0, guidance_scale=2.0)
    ref.step(z, z)
    assert np.array_equal(b, ref.step(z, z)) and pol.turn_index == 2
    assert a.shape == (25, 56)


def test_turn_noise_is_a_function_of_seed_and_turn():
    a = turn_noise(0, 3, 25, 5)
    b = turn_noise(0, 3, 25, 5)
    c = turn_noise(0, 4, 25, 5)
    d = turn_noise(1, 3, 25, 5)
    assert a[0].shape == (25, 56) and a[1].shape == (5, 25, 56) and a[0].dtype == np.float32
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.allclose(a[0], c[0]) and not np.allclose(a[0], d[0])


def test_noise_as_an_input_zeros_or_a_callable():
    from helpers.model import conversation, stream

    m = tiny_model(frames_per_turn=10)
    ua, aa, um = conversation(m, 4, seed=5)
    z0 = stream(TorchStreamingPolicy(m, seed=0, noise="zeros"), ua, aa, um)
    z1 = stream(TorchStreamingPolicy(m, seed=7, noise="zeros"), ua, aa, um)
    assert np.array_equal(z0, z1)  # no draw is left to the seed
    seeded = stream(TorchStreamingPolicy(m, seed=0), ua, aa, um)
    assert np.abs(seeded - z0).max() > 1e-3
    calls = []

    def draws(turn, frames, steps):
        calls.append(turn)
        return turn_noise(0, turn, frames, steps)

    pol = TorchStreamingPolicy(m, seed=123, noise=draws, noise_tau_s=0.0, noise_hold_exp=0.0)
    plain = TorchStreamingPolicy(m, seed=0, noise_tau_s=0.0, noise_hold_exp=0.0)
    want = stream(plain, ua, aa, um)
    assert np.array_equal(stream(pol, ua, aa, um), want)
    assert calls == [0, 1, 2, 3]
    assert np.abs(pol.run_offline(ua, aa, um) - want).max() <= 1e-4  # the parallel path too

    def bad(turn, frames, steps):
        return np.zeros((frames, 56)), np.zeros((1, frames, 56))

    with pytest.raises(ValueError, match="noise callable for turn 0 returned shapes"):
        TorchStreamingPolicy(m, noise=bad).step(ua[:6400], aa[:6400])
    with pytest.raises(ValueError, match="noise must be None"):
        TorchStreamingPolicy(m, noise="zero")
