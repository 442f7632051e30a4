"""Training API: loss, masking, parameter groups, and a tiny model overfits a tiny batch."""

import math

import pytest
import torch

from helpers.model import conversation, tiny_model
from timar_ros.model.config import preset
from timar_ros.model.diffusion import Schedule, cosine_betas, space_timesteps
from timar_ros.model.heads import grouped_mse
from timar_ros.model.timar import TIMAR
from timar_ros.model.token_layout import KIND


def batch(model, B=2, S=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    F, spt = model.config.frames_per_turn, model.config.samples_per_turn
    t = torch.arange(S * F, dtype=torch.float32) / 25.0
    am = torch.zeros(B, S * F, 56)
    am[:, :, :50] = (
        0.5 * torch.sin(2 * math.pi * 0.7 * t)[None, :, None] * torch.randn(B, 1, 50, generator=g)
    )
    am[:, :, 50:] = 0.1 * torch.cos(2 * math.pi * 0.4 * t)[None, :, None]
    return {
        "user_audio": 0.1 * torch.randn(B, S * spt, generator=g),
        "agent_audio": 0.1 * torch.randn(B, S * spt, generator=g),
        "user_motion": 0.3 * torch.randn(B, S * F, 56, generator=g),
        "agent_motion": am,
    }


def test_training_loss_contract():
    m = tiny_model().train()
    b = batch(m)
    loss, stats = m.training_loss(b)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(stats) >= {"loss", "mse", "vb", "mask_ratio"}
    assert all(isinstance(v, float) for v in stats.values())
    assert 0.7 <= stats["mask_ratio"] <= 1.0
    loss.backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert all(g is not None for g in grads[:5])
    with pytest.raises(ValueError):
        m.training_loss({**b, "user_audio": b["user_audio"][:, :-1]})
    with pytest.raises(KeyError):
        m.training_loss({"user_audio": b["user_audio"]})


def test_mask_ratio_distribution():
    m = tiny_model()
    torch.manual_seed(0)
    r = torch.tensor([m.sample_mask_ratio() for _ in range(2000)])
    assert r.min() >= 0.7 and r.max() <= 1.0
    assert 0.84 < r.mean() < 0.88  # truncated normal (1, 0.25) on [0.7, 1]: mean ~0.86


def test_parameter_groups():
    m = tiny_model()
    groups = m.parameter_groups(0.02)
    no, yes = groups
    assert no["weight_decay"] == 0.0 and yes["weight_decay"] == 0.02
    ids_no = {id(p) for p in no["params"]}
    names = {id(p): n for n, p in m.named_parameters()}
    for p in yes["params"]:
        assert p.ndim >= 2 and not names[id(p)].startswith("head.")
    assert all(id(p) in ids_no for p in m.head.parameters())
    total = sum(p.numel() for g in groups for p in g["params"])
    assert total == m.num_parameters()


def test_diffusion_schedule():
    b = cosine_betas(1000)
    assert len(b) == 1000 and b.max() <= 0.999 and (b > 0).all()
    assert space_timesteps(1000, 5) == [0, 250, 500, 749, 999]
    s = Schedule.respaced(Schedule(b), 5)
    assert s.num_timesteps == 5 and list(s.timestep_map) == [0, 250, 500, 749, 999]
    # respacing keeps the cumulative alphas at the kept steps
    full = Schedule(b)
    assert abs(s.alphas_cumprod[-1] - full.alphas_cumprod[999]) < 1e-12


def test_grouped_mse_weights_groups_equally():
    p = torch.zeros(1, 56)
    t = torch.zeros(1, 56)
    t[0, 0] = 1.0  # one expression dim
    a = grouped_mse(p, t)
    t2 = torch.zeros(1, 56)
    t2[0, 50] = 1.0  # one jaw dim
    assert torch.allclose(grouped_mse(p, t2) / a, torch.tensor(50 / 3))


@pytest.fixture
def one_thread():
    """Small models train faster on one thread, and a busy machine does not make it thrash."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("head,steps,drop", [("mlp", 100, 0.15), ("diffusion", 200, 0.4)])
def test_tiny_model_overfits_tiny_batch(head, steps, drop, one_thread):
    torch.manual_seed(0)
    m = TIMAR(
        preset(
            "tiny",
            head=head,
            window_turns=2,
            frames_per_turn=5,
            attn_dropout=0.0,
            proj_dropout=0.0,
            cfg_drop_prob=0.0,
        )
    ).train()
    b = batch(m, B=2, S=2)
    opt = torch.optim.AdamW(m.parameter_groups(0.0), lr=3e-3)

    def eval_loss(n=8):
        torch.manual_seed(123)
        with torch.no_grad():
            return sum(float(m.training_loss(b)[1]["mse"]) for _ in range(n)) / n

    before = eval_loss()
    for _ in range(steps):
        loss, _ = m.training_loss(b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = eval_loss()
    assert after < drop * before, (before, after)


@pytest.mark.parametrize(
    "overrides", [dict(architecture="mae_encdec"), dict(attention="bidirectional")]
)
def test_ablations_train(overrides):
    m = tiny_model(**overrides).train()
    loss, stats = m.training_loss(batch(m))
    loss.backward()
    assert math.isfinite(stats["loss"])


def test_mae_training_matches_inference_path_when_all_masked():
    """MAE parallel forward with per-sample indices == the shared-index inference path."""
    m = tiny_model(architecture="mae_encdec")
    ua, aa, um = conversation(m, 3)
    with torch.no_grad():
        x, _ = m.embed_turns(
            torch.from_numpy(ua)[None], torch.from_numpy(aa)[None], torch.from_numpy(um)[None], 3
        )
        masked = m.am_tok.expand(1, 3, -1)
        a = m.backbone_parallel(x, None)
        b = m.backbone_parallel(x, masked)
    assert torch.allclose(a, b, atol=1e-5)


def test_streaming_training_cuts_only_the_last_turn():
    """stream_train_prob=1: the last turn is seen as a tick sees it (its loss reported apart);
    the earlier turns, the history, are as in the 1-s mode: their features do not change."""
    m = tiny_model(stream_train_prob=1.0).train()
    b = batch(m, B=2, S=3)
    torch.manual_seed(0)
    loss, stats = m.training_loss(b)
    assert "loss_stream" in stats and torch.isfinite(loss)
    loss.backward()
    F = m.config.frames_per_turn
    with torch.no_grad():
        tok = m.build_tokens(b["user_audio"], b["agent_audio"], b["user_motion"], None, 3)
        masked = m.am_tok.expand(2, 3, -1)
        m.eval()
        whole = m.backbone_parallel(m.embed(tok, masked))
        torch.manual_seed(1)
        cut, cmask, _, rows = m._cut_last_turn(
            b, tok, masked, torch.ones(2, 3 * F, dtype=torch.bool), 3
        )
        streamed = m.backbone_parallel(m.embed(cut, cmask))
    assert rows.any()
    torch.testing.assert_close(streamed[:, :2], whole[:, :2], atol=0, rtol=0)
    assert not torch.allclose(streamed[:, 2], whole[:, 2])


@pytest.mark.parametrize("prefix", ["truth", "own"])
def test_streaming_training_prefix_is_the_truth_or_the_models_own_sample(prefix):
    """stream_prefix="own" (scheduled sampling): the cut turn's visible prefix is the model's own
    sample, so the last turn's ground truth cannot reach the cut turn's tokens; "truth" shows
    it. Sampling the prefix leaves the model in training mode."""
    m = tiny_model(stream_train_prob=1.0, stream_prefix=prefix).train()
    F = m.config.frames_per_turn
    b = batch(m, B=2, S=3)
    other = dict(b, agent_motion=b["agent_motion"].clone())
    other["agent_motion"][:, -F:] += 3.0

    def cut_turn(bt):
        tok = m.build_tokens(
            bt["user_audio"], bt["agent_audio"], bt["user_motion"], bt["agent_motion"], 3
        )
        masked = m.am_tok.expand(2, 3, -1).clone()
        torch.manual_seed(4)
        t, mk, _, _ = m._cut_last_turn(bt, tok, masked, torch.ones(2, 3 * F, dtype=torch.bool), 3)
        return m.embed(t, mk)[:, -1]

    with torch.no_grad():
        a, c = cut_turn(b), cut_turn(other)
    assert m.training
    if prefix == "own":
        torch.testing.assert_close(a, c, atol=0, rtol=0)
    else:
        assert not torch.allclose(a, c)
    loss, _ = m.training_loss(b)
    loss.backward()


def test_streaming_training_needs_the_cached_encoder_only_model():
    with pytest.raises(ValueError, match="stream_train_prob > 0"):
        preset("tiny", stream_train_prob=0.5, architecture="mae_encdec")
    with pytest.raises(ValueError, match="stream_max_ahead"):
        preset("tiny", stream_max_ahead=0)


@pytest.mark.parametrize("stream", [0.0, 1.0])
def test_windows_without_the_partners_motion_train_as_inference_runs_them(stream):
    """user_motion_drop_prob: a window drawn without the partner's motion (a robot without a
    camera) is trained on exactly the tokens inference builds with user_motion=None (the null
    token, never masked), the streamed last turn too; the batch's motion then changes nothing."""
    kw = dict(stream_train_prob=stream, cfg_drop_prob=0.0)
    b = batch(tiny_model(**kw), B=3)
    other = {**b, "user_motion": -b["user_motion"] + 0.5}

    def loss(m, data):
        torch.manual_seed(5)  # the same masks, cuts and diffusion noise for both batches
        return m.training_loss(data)[1]["loss"]

    without = tiny_model(user_motion_drop_prob=1.0, **kw).train()
    assert loss(without, b) == loss(without, other)
    m = tiny_model(**kw).train()
    assert loss(m, b) != loss(m, other)  # with the motion, it matters
    # the tokens: those of inference without user motion, unmasked
    tok = m.build_tokens(b["user_audio"], b["agent_audio"], None, b["agent_motion"], 2)
    ref = m.build_tokens(b["user_audio"], b["agent_audio"], b["user_motion"], b["agent_motion"], 2)
    masked = torch.ones(3, 2, m.layout.tokens_per_turn, dtype=torch.bool)
    got, got_masked = m._without_user_motion(ref, masked, torch.tensor([True, False, True]))
    um = m.tok_kind == KIND["user_motion"]
    assert torch.equal(got[[0, 2]], tok[[0, 2]]) and torch.equal(got[1], ref[1])
    assert not got_masked[[0, 2]][..., um].any() and got_masked[1].all()
    with pytest.raises(ValueError, match="user_motion_drop_prob"):
        preset("tiny", user_motion_drop_prob=1.5).validate()
