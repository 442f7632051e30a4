"""Exact streaming: step == parallel forward, cache == re-encode, no future leakage, seeds."""

import numpy as np
import pytest

from helpers.model import (
    conversation,
    one_thread_module,  # noqa: E402,F401
    stream,
    tiny_model,
)
from timar_ros.runtime.torch_policy import TorchStreamingPolicy

TOL = 1e-4


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def conv(model):
    return conversation(model, 9, seed=1)  # 9 turns > window 3: eviction exercised


def test_stream_equals_parallel_and_reencode(model, conv):
    ua, aa, um = conv
    cached = TorchStreamingPolicy(model, seed=7, kv_cache=True)
    s_cached = stream(cached, ua, aa, um)
    assert cached.history_turns == 2  # W - 1
    offline = cached.run_offline(ua, aa, um)
    reenc = TorchStreamingPolicy(model, seed=7, kv_cache=False)
    s_reenc = stream(reenc, ua, aa, um)
    assert s_cached.shape == (9 * 25, 56) and s_cached.dtype == np.float32
    assert np.abs(s_cached - offline).max() <= TOL
    assert np.abs(s_cached - s_reenc).max() <= TOL
    assert np.abs(offline).max() > 1e-2  # not trivially zero
    # the first turns see no history; later turns see W - 1
    reenc.reset()
    reenc.step(ua[:16000], aa[:16000])
    assert reenc.history_turns == 0


def test_no_future_leakage(model, conv):
    ua, aa, um = conv
    pol = TorchStreamingPolicy(model, seed=3)
    base = pol.run_offline(ua, aa, um)
    t = 4  # change everything from turn 5 on
    ua2, aa2, um2 = ua.copy(), aa.copy(), um.copy()
    ua2[(t + 1) * 16000 :] = np.random.default_rng(9).standard_normal(len(ua2) - (t + 1) * 16000)
    aa2[(t + 1) * 16000 :] *= -3.0
    um2[(t + 1) * 25 :] += 1.0
    changed = pol.run_offline(ua2, aa2, um2)
    keep = (t + 1) * 25
    assert np.array_equal(base[:keep], changed[:keep])  # bit-identical
    assert not np.allclose(base[keep:], changed[keep:])
    # streaming: same property step by step
    a = stream(TorchStreamingPolicy(model, seed=3), ua, aa, um)
    b = stream(TorchStreamingPolicy(model, seed=3), ua2, aa2, um2)
    assert np.array_equal(a[:keep], b[:keep])


def test_history_matters_and_is_bounded(model, conv):
    ua, aa, um = conv
    pol = TorchStreamingPolicy(model, seed=3)
    base = pol.run_offline(ua, aa, um)
    # changing turn 0 changes turn 1 (history is used) ...
    ua2 = ua.copy()
    ua2[:16000] = 0.0
    out = pol.run_offline(ua2, aa, um)
    assert not np.allclose(base[25:50], out[25:50])
    # ... and cannot reach beyond the receptive field (num_blocks * (W - 1) turns)
    R = model.receptive_turns(2)
    assert np.array_equal(base[(R + 1) * 25 :], out[(R + 1) * 25 :])


def test_determinism_and_seed(model, conv):
    ua, aa, um = conv
    a = stream(TorchStreamingPolicy(model, seed=5), ua[:48000], aa[:48000], um[:75])
    b = stream(TorchStreamingPolicy(model, seed=5), ua[:48000], aa[:48000], um[:75])
    c = stream(TorchStreamingPolicy(model, seed=6), ua[:48000], aa[:48000], um[:75])
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    pol = TorchStreamingPolicy(model, seed=5)
    first = stream(pol, ua[:32000], aa[:32000], um[:50])
    pol.reset()
    assert np.array_equal(first, stream(pol, ua[:32000], aa[:32000], um[:50]))


def test_cfg_scale_one_equals_no_cfg(model, conv):
    import torch

    ua, aa, um = conv
    plain = stream(TorchStreamingPolicy(model, seed=2), ua[:48000], aa[:48000], um[:75])
    one = stream(
        TorchStreamingPolicy(model, seed=2, guidance_scale=1.0), ua[:48000], aa[:48000], um[:75]
    )
    assert np.array_equal(plain, one)
    # the explicit guided mix at scale 1 equals the conditional prediction
    z = torch.randn(25, model.config.d_model)
    zu = torch.randn(25, model.config.d_model)
    x_T, sn = torch.randn(25, 56), torch.randn(5, 25, 56)
    with torch.no_grad():
        ref = model.head.sample(z, x_T, sn)
        mix = model.head.sample(z, x_T, sn, z_uncond=zu, guidance_scale=1.0)
        g2 = model.head.sample(z, x_T, sn, z_uncond=zu, guidance_scale=2.0)
    assert torch.allclose(ref, mix, atol=1e-5)
    assert not torch.allclose(ref, g2, atol=1e-3)


def test_cfg_groups_and_steps_choose_what_guidance_moves(model):
    """guidance_groups "pose" pushes only the head rotation (the face and jaw move only as the
    head's later steps see the guided rotation); guidance_steps k guides the first k steps only
    (k >= the steps = all)."""
    import torch

    z, zu = torch.randn(25, model.config.d_model), torch.randn(25, model.config.d_model)
    x_T, sn = torch.randn(25, 56), torch.randn(5, 25, 56)
    head = model.head
    with torch.no_grad():
        cond = head.sample(z, x_T, sn)
        every = head.sample(z, x_T, sn, z_uncond=zu, guidance_scale=3.0)
        pose = head.sample(z, x_T, sn, z_uncond=zu, guidance_scale=3.0, guidance_groups="pose")
        first2 = head.sample(z, x_T, sn, z_uncond=zu, guidance_scale=3.0, guidance_steps=2)
        all5 = head.sample(z, x_T, sn, z_uncond=zu, guidance_scale=3.0, guidance_steps=5)
    face = slice(0, 53)
    moved = (pose[:, face] - cond[:, face]).abs().mean()
    assert moved < 0.5 * (every[:, face] - cond[:, face]).abs().mean()
    assert (pose[:, 53:] - cond[:, 53:]).abs().mean() > 2 * moved
    assert torch.allclose(all5, every, atol=1e-6)
    assert not torch.allclose(first2, every, atol=1e-3)
    assert not torch.allclose(first2, cond, atol=1e-3)
    with pytest.raises(ValueError, match="guidance_groups"):
        model.config.replace(guidance_groups="face")


def test_cfg_streaming_cached_equals_reencode(model, conv):
    ua, aa, um = conv
    n = 5 * 16000
    a = stream(TorchStreamingPolicy(model, seed=2, guidance_scale=1.5), ua[:n], aa[:n], um[:125])
    b = stream(
        TorchStreamingPolicy(model, seed=2, guidance_scale=1.5, kv_cache=False),
        ua[:n],
        aa[:n],
        um[:125],
    )
    c = TorchStreamingPolicy(model, seed=2, guidance_scale=1.5).run_offline(
        ua[:n], aa[:n], um[:125]
    )
    plain = stream(TorchStreamingPolicy(model, seed=2), ua[:n], aa[:n], um[:125])
    assert np.abs(a - b).max() <= TOL and np.array_equal(a, c)
    assert not np.allclose(a, plain)


def test_user_motion_optional(model, conv):
    ua, aa, um = conv
    pol = TorchStreamingPolicy(model, seed=1)
    a = stream(pol, ua[:48000], aa[:48000], None)
    assert a.shape == (75, 56) and np.isfinite(a).all()
    assert np.abs(a - pol.run_offline(ua[:48000], aa[:48000], None)).max() <= TOL
    pol.reset()
    assert not np.allclose(a, stream(pol, ua[:48000], aa[:48000], um[:75]))


def test_context_turns_limit(model, conv):
    ua, aa, um = conv
    for n in (0, 1):
        a = TorchStreamingPolicy(model, seed=1, context_turns=n)
        s = stream(a, ua, aa, um)
        assert a.history_turns == n
        b = TorchStreamingPolicy(model, seed=1, context_turns=n, kv_cache=False)
        assert np.abs(s - stream(b, ua, aa, um)).max() <= TOL
        assert np.abs(s - a.run_offline(ua, aa, um)).max() <= TOL
    # n = 0: every turn is independent of all others
    p0 = TorchStreamingPolicy(model, seed=1, context_turns=0)
    base = p0.run_offline(ua, aa, um)
    ua2 = ua.copy()
    ua2[: 3 * 16000] = 0
    assert np.array_equal(base[75:], p0.run_offline(ua2, aa, um)[75:])
    with pytest.raises(ValueError):
        TorchStreamingPolicy(model, context_turns=3)


@pytest.mark.parametrize("kv_cache", [True, False])
def test_context_turns_crops_the_input_like_the_reference(model, conv, kv_cache):
    """context_turns=n: turn t depends on the inputs of turns t-n..t only (the reference's
    crop), while the streamed default (band at every layer) reaches num_blocks * (W-1) turns
    back (here 2 * 2 = 4)."""
    ua, aa, um = conv
    t, n = 6, 1
    ua2, aa2, um2 = ua.copy(), aa.copy(), um.copy()
    lo, hi = (t - n - 1) * 16000, (t - n) * 16000  # turn t-n-1: just outside the crop
    ua2[lo:hi] = np.random.default_rng(5).standard_normal(hi - lo)
    aa2[lo:hi] *= -3.0
    um2[(t - n - 1) * 25 : (t - n) * 25] += 1.0
    sl = slice(t * 25, (t + 1) * 25)
    crop = [TorchStreamingPolicy(model, seed=2, context_turns=n, kv_cache=kv_cache) for _ in "ab"]
    assert np.array_equal(stream(crop[0], ua, aa, um)[sl], stream(crop[1], ua2, aa2, um2)[sl])
    full = [TorchStreamingPolicy(model, seed=2, kv_cache=kv_cache) for _ in "ab"]
    a, b = stream(full[0], ua, aa, um)[sl], stream(full[1], ua2, aa2, um2)[sl]
    assert np.abs(a - b).max() > 1e-4  # 2 turns back is inside the streamed receptive field
    # the crop at n = W-1 still sees less than the stream: the streamed history is deeper
    deep = TorchStreamingPolicy(model, seed=2, context_turns=2, kv_cache=kv_cache)
    assert np.abs(stream(deep, ua, aa, um) - stream(full[0], ua, aa, um)).max() > 1e-4


@pytest.mark.parametrize(
    "overrides",
    [
        dict(frames_per_turn=10),
        dict(architecture="mae_encdec"),
        dict(head="mlp"),
        dict(window_turns=1),  # no history at all: zero-size cache
    ],
)
def test_variants_stream_exactly(overrides):
    m = tiny_model(**overrides)
    ua, aa, um = conversation(m, 6, seed=4)
    pol = TorchStreamingPolicy(m, seed=0)
    s = stream(pol, ua, aa, um)
    assert s.shape == (6 * m.config.frames_per_turn, 56)
    assert np.abs(s - pol.run_offline(ua, aa, um)).max() <= TOL
    assert (
        np.abs(s - stream(TorchStreamingPolicy(m, seed=0, kv_cache=False), ua, aa, um)).max() <= TOL
    )


def test_bidirectional_ablation_reencodes_window():
    m = tiny_model(attention="bidirectional")
    with pytest.raises(ValueError, match="kv_cache=False"):
        TorchStreamingPolicy(m)
    ua, aa, um = conversation(m, 5, seed=4)
    pol = TorchStreamingPolicy(m, seed=0, kv_cache=False)
    s = stream(pol, ua, aa, um)
    assert pol.history_turns == 2 and np.isfinite(s).all()
    assert np.array_equal(s, pol.run_offline(ua, aa, um))


def test_long_conversation_chunked_parallel_path(model):
    """> 16 turns: the parallel forward splits queries into turn chunks; still exact."""
    ua, aa, um = conversation(model, 20, seed=8)
    pol = TorchStreamingPolicy(model, seed=11)
    s = stream(pol, ua, aa, um)
    o = pol.run_offline(ua, aa, um)
    assert np.abs(s - o).max() <= TOL
    ua2 = ua.copy()
    ua2[17 * 16000 :] = 0.0
    assert np.array_equal(o[: 17 * 25], pol.run_offline(ua2, aa, um)[: 17 * 25])
