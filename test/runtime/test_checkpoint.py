"""Checkpoints: safetensors + config.json, no unpickling, clear errors for bad files."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers.model import (
    conversation,
    one_thread_module,  # noqa: E402,F401
    stream,
)
from timar_ros.runtime import CheckpointError, StreamingPolicy, load_checkpoint_config, model_id
from timar_ros.runtime.checkpoint import (
    CONFIG,
    WEIGHTS,
    load_checkpoint,
    make_random_checkpoint,
    read_model_card,
)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_random_checkpoint(
        "tiny", tmp_path_factory.mktemp("ck") / "tiny-test", seed=1, window_turns=3
    )


def test_roundtrip_and_model_id(ckpt, monkeypatch):
    # loading must never unpickle
    def no_pickle(*a, **k):
        raise AssertionError("torch.load called")

    monkeypatch.setattr(torch, "load", no_pickle)
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "config.json",
        "model.safetensors",
        "model_card.json",
    ]
    pol = StreamingPolicy.from_checkpoint(ckpt, seed=4)
    assert pol.model_id == model_id(ckpt) and pol.model_id.startswith("tiny-test-")
    assert len(pol.model_id.split("-")[-1]) == 8
    assert load_checkpoint_config(ckpt).window_turns == 3
    card = read_model_card(ckpt)
    assert card["trained"] is False and card["preset"] == "tiny"
    m, _ = load_checkpoint(ckpt)
    ua, aa, um = conversation(m, 4)
    a = stream(pol, ua, aa, um)
    b = stream(StreamingPolicy.from_checkpoint(ckpt / WEIGHTS, seed=4), ua, aa, um)
    assert np.array_equal(a, b)
    # the same seed at init gives the same weights (same id)
    again = make_random_checkpoint("tiny", ckpt.parent / "again", seed=1, window_turns=3)
    assert model_id(again).split("-")[-1] == pol.model_id.split("-")[-1]


def copy(ckpt, dst):
    dst.mkdir()
    for p in ckpt.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def test_missing_things(ckpt, tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        StreamingPolicy.from_checkpoint(tmp_path / "nope")
    d = copy(ckpt, tmp_path / "no_weights")
    (d / WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*missing"):
        StreamingPolicy.from_checkpoint(d)
    d = copy(ckpt, tmp_path / "no_config")
    (d / CONFIG).unlink()
    with pytest.raises(CheckpointError, match=r"config\.json.*missing"):
        StreamingPolicy.from_checkpoint(d)


@pytest.mark.parametrize("cut", [4, 100, -10])
def test_truncated_weights(ckpt, tmp_path, cut):
    d = copy(ckpt, tmp_path / "trunc")
    data = (d / WEIGHTS).read_bytes()
    (d / WEIGHTS).write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*truncated"):
        StreamingPolicy.from_checkpoint(d)


def test_corrupt_and_mismatched_config(ckpt, tmp_path):
    d = copy(ckpt, tmp_path / "badjson")
    (d / CONFIG).write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json.*JSON"):
        StreamingPolicy.from_checkpoint(d)
    d = copy(ckpt, tmp_path / "unknown")
    cfg = json.loads((d / CONFIG).read_text())
    cfg["bogus"] = 1
    (d / CONFIG).write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="unknown keys"):
        StreamingPolicy.from_checkpoint(d)
    d = copy(ckpt, tmp_path / "mismatch")
    cfg = json.loads((d / CONFIG).read_text())
    cfg["d_model"] = 64
    cfg["token_dim"] = 48
    (d / CONFIG).write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"do not match.*shape mismatch"):
        StreamingPolicy.from_checkpoint(d)
    d = copy(ckpt, tmp_path / "layers")
    cfg = json.loads((d / CONFIG).read_text())
    cfg["decoder_depth"] = 2
    (d / CONFIG).write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="missing .* tensors"):
        StreamingPolicy.from_checkpoint(d)


def test_nan_weights_rejected(ckpt, tmp_path):
    from safetensors.torch import load_file, save_file

    d = copy(ckpt, tmp_path / "nan")
    sd = load_file(str(d / WEIGHTS))
    k = next(iter(sd))
    sd[k] = torch.full_like(sd[k], float("nan"))
    save_file(sd, str(d / WEIGHTS))
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(d)


def test_init_checkpoint_cli(tmp_path):
    out = tmp_path / "cli-ck"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "timar_ros.cli",
            "init-checkpoint",
            "--preset",
            "tiny",
            "--set",
            "frames_per_turn=10",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "cli-ck-" in r.stdout
    assert load_checkpoint_config(out).frames_per_turn == 10
