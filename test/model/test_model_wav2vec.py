"""The wav2vec 2.0 speech encoder loads from a local directory (tiny random config) and runs."""

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from helpers.model import (  # noqa: E402
    conversation,
    one_thread_module,  # noqa: E402,F401
    stream,
)
from helpers.reference import write_wav2vec2_dir  # noqa: E402
from timar_ros.model.config import preset  # noqa: E402
from timar_ros.model.timar import TIMAR, perturb_zero_init  # noqa: E402
from timar_ros.runtime.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from timar_ros.runtime.torch_policy import TorchStreamingPolicy  # noqa: E402


@pytest.fixture(scope="module")
def w2v_dir(tmp_path_factory):
    return write_wav2vec2_dir(tmp_path_factory.mktemp("w2v"))


def w2v_model(path, finetune=False):
    torch.manual_seed(0)
    m = TIMAR(
        preset(
            "tiny",
            speech_encoder="wav2vec2",
            wav2vec2_path=str(path),
            wav2vec2_finetune=finetune,
            window_turns=2,
            frames_per_turn=10,
        )
    )
    return perturb_zero_init(m, 0.2)


def test_wav2vec2_local_loads_trains_and_streams(w2v_dir, tmp_path):
    m = w2v_model(w2v_dir)
    enc = m.speech_encoder
    assert enc.out_dim == 32
    feats = enc(torch.randn(3, m.config.samples_per_turn) * 0.1)
    assert feats.shape == (3, 10, 32)
    # frozen by default: no grads, stays in eval mode, not saved in the checkpoint
    assert not any(p.requires_grad for p in enc.w2v.parameters())
    m.train()
    assert not enc.w2v.training
    B, S, F = 1, 2, 10
    batch = {
        "user_audio": 0.1 * torch.randn(B, S * 6400),
        "agent_audio": 0.1 * torch.randn(B, S * 6400),
        "user_motion": torch.randn(B, S * F, 56),
        "agent_motion": torch.randn(B, S * F, 56),
    }
    loss, _ = m.training_loss(batch)
    loss.backward()
    assert all(p.grad is None for p in enc.w2v.parameters())
    assert not any(k.startswith("speech_encoder.w2v.") for k in m.checkpoint_state_dict())

    m.eval()
    ua, aa, um = conversation(m, 4, seed=2)
    pol = TorchStreamingPolicy(m, seed=0)
    s = stream(pol, ua, aa, um)
    assert s.shape == (40, 56) and np.isfinite(s).all()
    assert np.abs(s - pol.run_offline(ua, aa, um)).max() <= 1e-4

    # checkpoint round trip re-loads the frozen encoder from its local directory
    save_checkpoint(m, tmp_path / "ck")
    m2, _ = load_checkpoint(tmp_path / "ck")
    s2 = stream(TorchStreamingPolicy(m2, seed=0), ua, aa, um)
    assert np.abs(s - s2).max() <= 1e-5


def test_wav2vec2_finetune_saves_encoder(w2v_dir):
    m = w2v_model(w2v_dir, finetune=True)
    assert any(p.requires_grad for p in m.speech_encoder.w2v.parameters())
    assert any(k.startswith("speech_encoder.w2v.") for k in m.checkpoint_state_dict())


def test_wav2vec2_missing_dir_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="wav2vec2_path"):
        w2v_model(tmp_path / "nothing")
