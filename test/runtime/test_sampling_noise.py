"""Sampling noise: a pure function of (seed, turn); correlated over frames with tau > 0 while
every frame stays N(0, 1), continuous across turn boundaries."""

import numpy as np
import pytest

from timar_ros.runtime.sampling_noise import conversation_noise, noise_kernel, turn_noise


def test_independent_noise_is_unchanged_by_the_option():
    a = turn_noise(3, 5, 25, 4)
    b = turn_noise(3, 5, 25, 4, tau_frames=0.0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert a[0].shape == (25, 56) and a[1].shape == (4, 25, 56) and a[0].dtype == np.float32


@pytest.mark.parametrize("tau", [2.5, 5.0])
def test_correlated_noise_unit_variance_smooth_and_continuous(tau):
    x, s = conversation_noise(1, 120, 25, 3, tau_frames=tau)
    assert abs(x.std() - 1) < 0.03 and abs(s.std() - 1) < 0.03
    rho = float(np.mean(x[1:] * x[:-1]))
    assert abs(rho - np.exp(-1 / tau)) < 0.05  # AR(1)-like neighbour correlation
    d2 = np.abs(np.diff(x, 2, axis=0))
    boundary = d2[23::25].mean()  # second differences across the turn boundaries
    assert boundary < 1.2 * d2.mean()
    white = conversation_noise(1, 120, 25, 3)[0]
    assert d2.mean() < 0.6 * np.abs(np.diff(white, 2, axis=0)).mean()


def test_correlated_noise_is_stateless():
    """Turn t's noise does not depend on which turns were drawn before (streaming = offline)."""
    whole = conversation_noise(9, 6, 25, 2, tau_frames=4.0)
    one = turn_noise(9, 4, 25, 2, tau_frames=4.0)
    assert np.array_equal(whole[0][100:125], one[0])
    assert np.array_equal(whole[1][:, 100:125], one[1])


@pytest.mark.parametrize("tau, back", [(5.0, 1), (6.25, 1), (10.0, 2), (30.0, 5)])
def test_kernel_rows_unit_norm_causal_and_long_enough(tau, back):
    M = noise_kernel(25, tau)
    assert M.shape == (25, 25 * (back + 1))
    assert np.allclose((M * M).sum(1), 1.0, atol=1e-5)
    for f in range(25):
        assert np.all(M[f, 25 * back + f + 1 :] == 0)  # no innovation after the frame
    x = conversation_noise(2, 200, 25, 1, tau_frames=tau)[0]
    rho = float(np.mean(x[5:] * x[:-5]))  # 5 frames apart
    assert abs(rho - np.exp(-5 / tau)) < 0.06
    with pytest.raises(ValueError, match="tau_frames"):
        turn_noise(0, 0, 25, 2, tau_frames=-1)


def test_held_expression_noise_keeps_the_marginal_and_a_baseline():
    """hold: per frame still N(0, 1) over seeds; within one conversation the expression noise
    varies with only 1 - h of it (its baseline held), the jaw and rotation not at all held."""
    from timar_ros.runtime.sampling_noise import hold_vector

    h = hold_vector(0.8)
    assert np.allclose(h[:50], 0.8) and not h[50:].any() and hold_vector(0.0) is None
    per_seed = [conversation_noise(s, 20, 25, 2, tau_frames=5.0, hold=h)[0] for s in range(60)]
    x = np.stack(per_seed)  # [seeds, frames, 56]
    assert abs(x[:, :, :50].std() - 1) < 0.05  # the marginal over seeds
    within = x.var(axis=1).mean(0)  # variance inside a conversation, per dim
    assert abs(within[:50].mean() - 0.2) < 0.05 and abs(within[50:].mean() - 1) < 0.15
    with pytest.raises(ValueError, match="noise_hold_exp"):
        hold_vector(1.0)
