"""`timar train`: loss goes down, exact resume, EMA/schedule math, the checkpoint loads in
StreamingPolicy, clear data errors, the DDP path (gloo: world size 1 in process, and two real
processes under torchrun with exact resume). Tiny preset, small
synthetic DualTalk fixtures written into tmp dirs."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from timar_ros.cli import main as cli_main
from timar_ros.data.synthetic import SyntheticConfig, generate_conversation, write_conversation
from timar_ros.training.ema import EMA
from timar_ros.training.loop import TrainConfig, TrainError, train
from timar_ros.training.schedule import lr_at
from timar_ros.training.setup import build_dataset, val_loss

S = 2  # window turns in these tests (2 s windows)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("train_data")
    cfg = SyntheticConfig()
    for i in range(2):
        conv = generate_conversation(cfg, np.random.default_rng([7, i]), duration_s=8.0)
        write_conversation(conv, d, f"clip{i}")
    return d


def _cfg(data_dir, out, **kw) -> TrainConfig:
    base = dict(
        data=[str(data_dir)],
        out=str(out),
        preset="tiny",
        turns=S,
        batch_size=2,
        lr=2e-3,
        ema=0.9,
        warmup_steps=1,
        log_every=1,
        save_every=1000,
        progress=False,
        seed=3,
    )
    base.update(kw)
    return TrainConfig(**base)


def _losses(run_dir) -> dict[int, float]:
    log = json.loads((run_dir / "train_log.json").read_text())["log"]
    return {e["step"]: e["loss"] for e in log if e["kind"] == "train"}


@pytest.fixture(scope="module")
def run4(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run4")
    train(_cfg(data_dir, out, steps=4))
    return out


def test_schedule_and_ema_math():
    assert lr_at(0, 1.0, 4, 10) == pytest.approx(0.25)
    assert lr_at(3, 1.0, 4, 10) == pytest.approx(1.0)
    assert lr_at(9, 1.0, 4, 10) == 1.0  # constant after warmup (reference default)
    assert lr_at(4, 1.0, 4, 10, "cosine") == pytest.approx(1.0)
    assert lr_at(7, 1.0, 4, 10, "cosine", 0.1) == pytest.approx(
        0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 0.5))
    )
    with pytest.raises(ValueError):
        lr_at(0, 1.0, 1, 1, "linear")

    net = torch.nn.Linear(3, 2)
    p0 = {k: v.clone() for k, v in net.state_dict().items()}
    ema = EMA(net, 0.9)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net)
    for k, v in ema.state_dict().items():
        torch.testing.assert_close(v, 0.9 * p0[k] + 0.1 * (p0[k] + 1.0))
    assert not any(p.requires_grad for p in ema.model.parameters())
    EMA(net, 0.0).update(net)  # rate 0 copies
    with pytest.raises(ValueError):
        EMA(net, 1.0)


def test_training_reduces_loss(data_dir, tmp_path):
    from timar_ros.model import TIMAR, preset
    from timar_ros.runtime.checkpoint import load_checkpoint

    cfg = _cfg(data_dir, tmp_path / "r", steps=30, ema=0.0, lr=3e-3)
    ds, _ = build_dataset(cfg.data, S, 25)
    torch.manual_seed(cfg.seed)  # the initial weights train() starts from
    init = TIMAR(preset("tiny"))
    summary = train(cfg)
    trained, _ = load_checkpoint(tmp_path / "r")
    before = val_loss(init, ds, 4, 100, torch.device("cpu"), False, 0)["loss"]
    after = val_loss(trained, ds, 4, 100, torch.device("cpu"), False, 0)["loss"]
    assert after < 0.8 * before, (before, after)
    assert summary["step"] == 30 and summary["trained"] is True
    assert (tmp_path / "r" / "loss.png").stat().st_size > 1000


def test_resume_is_exact(data_dir, run4, tmp_path):
    out = tmp_path / "r2"
    train(_cfg(data_dir, out, steps=2))
    # resume through the CLI: the saved config is reused, only --steps changes
    assert cli_main(["train", "--resume", str(out), "--steps", "4", "--no-progress"]) == 0
    a, b = _losses(run4), _losses(out)
    assert sorted(b) == [1, 2, 3, 4]
    for s in (1, 2, 3, 4):
        assert b[s] == a[s], (s, a, b)
    ta = load_file(str(run4 / "train_state.safetensors"))
    tb = load_file(str(out / "train_state.safetensors"))
    assert sorted(ta) == sorted(tb)
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    assert json.loads((out / "train_state.json").read_text())["step"] == 4


def test_a_saved_option_this_version_does_not_know_stops_the_resume(run4, tmp_path, capsys):
    """A renamed option in a run's saved config is named, not silently dropped on resume."""
    import shutil

    with pytest.raises(ValueError, match=r"unknown keys \['warmup'\]"):
        TrainConfig.from_dict({**TrainConfig().to_dict(), "warmup": 5})
    run = tmp_path / "old_run"
    shutil.copytree(run4, run)
    state = json.loads((run / "train_state.json").read_text())
    state["train_config"]["warmup"] = state["train_config"].pop("warmup_steps")
    (run / "train_state.json").write_text(json.dumps(state))
    assert cli_main(["train", "--resume", str(run), "--steps", "5", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "unknown keys ['warmup']" in err and "train_state.json" in err and str(run) in err, err


def test_checkpoint_is_the_ema_and_loads_in_policy(run4):
    from timar_ros.runtime import StreamingPolicy

    w = load_file(str(run4 / "model.safetensors"))
    st = load_file(str(run4 / "train_state.safetensors"))
    for k, v in w.items():
        assert torch.equal(v, st[f"ema.{k}"]), k
    assert any(not torch.equal(w[k], st[f"model.{k}"]) for k in w)  # EMA != raw weights
    card = json.loads((run4 / "model_card.json").read_text())
    assert card["step"] == 4 and card["weights"].startswith("EMA") and card["windows"] > 0
    pol = StreamingPolicy.from_checkpoint(run4, seed=0)
    rng = np.random.default_rng(0)
    m = pol.step(rng.normal(0, 0.1, pol.samples_per_turn), rng.normal(0, 0.1, pol.samples_per_turn))
    assert m.shape == (25, 56) and np.isfinite(m).all()


def test_normalized_motion_run_keeps_the_data_scale(data_dir, tmp_path):
    """normalize_motion: the run stores the training data's per-dimension mean and per-group
    scale with the weights (a resume keeps them); the policy's motion is in radians again."""
    from timar_ros.data.dualtalk import motion_stats
    from timar_ros.runtime import StreamingPolicy

    out = tmp_path / "norm"
    cfg = _cfg(data_dir, out, steps=2, stride_turns=1, overrides={"normalize_motion": True})
    train(cfg)
    w = load_file(str(out / "model.safetensors"))
    ds, _ = build_dataset([str(data_dir)], S, 25, 1)
    mean, std = motion_stats(ds.datasets)
    np.testing.assert_allclose(w["motion_mean"].numpy(), mean, atol=1e-6)
    for sl in (slice(0, 50), slice(50, 53), slice(53, 56)):  # one scale per group: its RMS std
        rms = max(float(np.sqrt(np.mean(std[sl] ** 2))), 1e-3)
        np.testing.assert_allclose(w["motion_std"].numpy()[sl], rms, rtol=1e-5)
    card = json.loads((out / "model_card.json").read_text())
    assert card["data"][0]["stride_turns"] == 1 and card["recipe"]["stride_turns"] == 1
    pol = StreamingPolicy.from_checkpoint(out, seed=0)
    rng = np.random.default_rng(0)
    m = pol.step(rng.normal(0, 0.1, pol.samples_per_turn), rng.normal(0, 0.1, pol.samples_per_turn))
    # an untrained head predicts ~0 in the model's scale: the data's mean in radians
    np.testing.assert_allclose(m.mean(0), mean, atol=0.5 * w["motion_std"].numpy().max())
    cli_main(["train", "--resume", str(out), "--steps", "3", "--no-progress"])
    w3 = load_file(str(out / "model.safetensors"))
    assert torch.equal(w3["motion_std"], w["motion_std"])
    with pytest.raises(TrainError, match="stride-turns"):
        train(_cfg(data_dir, tmp_path / "o", steps=1, stride_turns=S + 1))


def test_init_fine_tunes_from_a_checkpoint(data_dir, run4, tmp_path, capsys):
    """--init: the run starts from the checkpoint's weights and motion scale with --set on top
    of its config (here every agent frame masked, as single-pass inference sees them); the
    optimizer starts fresh. --init with --preset or --resume is refused with the reason."""
    from timar_ros.runtime.checkpoint import load_checkpoint

    out = tmp_path / "ft"
    assert (
        cli_main(
            ["train", "--init", str(run4), "--set", "mask_ratio_min=1.0", "--data", str(data_dir)]
            + ["--out", str(out), "--turns", str(S), "--batch-size", "2", "--steps", "1"]
            + ["--lr", "1e-12", "--warmup-steps", "1", "--ema", "0", "--no-progress"]
        )
        == 0
    )
    base, _ = load_checkpoint(run4)
    tuned, _ = load_checkpoint(out)
    assert tuned.config.mask_ratio_min == 1.0 and base.config.mask_ratio_min == 0.7
    assert tuned.config.replace(mask_ratio_min=0.7) == base.config
    # one step at lr 1e-12: the weights are the checkpoint's (a fresh init would differ by ~1)
    for (k, a), b in zip(base.state_dict().items(), tuned.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=k)
    log = json.loads((out / "train_log.json").read_text())["log"]
    assert [e["mask_ratio"] for e in log if e["kind"] == "train"] == [1.0]
    card = json.loads((out / "model_card.json").read_text())
    assert card["initialised_from"].startswith(run4.name) and card["recipe"]["init"] == str(run4)
    capsys.readouterr()
    args = ["train", "--init", str(run4), "--data", str(data_dir), "--steps", "1"]
    assert cli_main([*args, "--out", str(tmp_path / "x"), "--preset", "tiny"]) == 2
    assert "--preset and --init" in capsys.readouterr().err
    assert cli_main(["train", "--resume", str(out), "--init", str(run4), "--steps", "2"]) == 2
    assert "cannot change the model of a resumed run" in capsys.readouterr().err
    assert cli_main([*args, "--out", str(tmp_path / "y"), "--init", str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err


def test_streaming_option_trains_for_ticks(data_dir, run4, tmp_path):
    """--streaming P: the model's stream_train_prob (the last turn of a share P of the windows
    cut as a tick sees it); the run's log carries the cut turns' loss."""
    from timar_ros.runtime.checkpoint import load_checkpoint

    out = tmp_path / "stream"
    assert (
        cli_main(
            ["train", "--init", str(run4), "--streaming", "1.0", "--data", str(data_dir)]
            + ["--out", str(out), "--turns", str(S), "--batch-size", "2", "--steps", "2"]
            + ["--warmup-steps", "1", "--log-every", "1", "--no-progress"]
        )
        == 0
    )
    tuned, _ = load_checkpoint(out)
    assert tuned.config.stream_train_prob == 1.0
    log = json.loads((out / "train_log.json").read_text())["log"]
    assert all("loss_stream" in e for e in log if e["kind"] == "train")


def test_clear_errors(data_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TrainError, match="speaker"):
        train(_cfg(empty, tmp_path / "o", steps=1))
    with pytest.raises(TrainError, match="not found"):
        train(_cfg(tmp_path / "missing", tmp_path / "o", steps=1))
    with pytest.raises(TrainError, match="shorter than one window"):
        train(_cfg(data_dir, tmp_path / "o", steps=1, turns=60))
    with pytest.raises(TrainError, match="--steps N or --epochs"):
        train(_cfg(data_dir, tmp_path / "o"))
    with pytest.raises(TrainError, match="batch"):
        train(_cfg(data_dir, tmp_path / "o", steps=1, batch_size=10_000))
    assert (
        cli_main(["train", "--data", str(empty), "--out", str(tmp_path / "o"), "--steps", "1"]) == 2
    )


def test_ddp_world_size_one_matches_single_process(data_dir, run4, tmp_path, monkeypatch):
    import torch.distributed as dist

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in dict(
        RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    ).items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "ddp"
    summary = train(_cfg(data_dir, out, steps=2))
    assert not dist.is_initialized()  # the group train() opened is closed again
    assert summary["world_size"] == 1
    a, b = _losses(run4), _losses(out)
    for s in (1, 2):
        assert b[s] == pytest.approx(a[s], rel=1e-5, abs=1e-7)


def _torchrun(args, tmp_path):
    """`torchrun --nproc_per_node 2 timar train ...` on CPU (gloo): two real processes."""
    import shutil
    import subprocess
    import sys

    timar = shutil.which("timar", path=str(__import__("pathlib").Path(sys.executable).parent))
    assert timar, "the timar console script is not installed next to this python"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        timar,
        "train",
        *args,
        "--no-progress",
        "--threads",
        "1",
    ]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def test_two_process_ddp_trains_validates_saves_and_resumes_exactly(data_dir, tmp_path):
    """Two ranks: periodic validation and saving do not hang or diverge the ranks; each rank's RNG
    is saved, so 2 steps + resume to 4 equals 4 straight steps (losses and weights)."""
    common = [
        "--data",
        str(data_dir),
        "--preset",
        "tiny",
        "--turns",
        str(S),
        "--batch-size",
        "2",
        "--lr",
        "2e-3",
        "--warmup-steps",
        "1",
        "--schedule",
        "constant",
        "--ema",
        "0.9",
        "--log-every",
        "1",
        "--seed",
        "3",
    ]
    _torchrun(
        [
            *common,
            "--out",
            "straight",
            "--steps",
            "4",
            "--val",
            str(data_dir),
            "--val-every",
            "2",
            "--val-batches",
            "1",
            "--save-every",
            "2",
        ],
        tmp_path,
    )
    _torchrun([*common, "--out", "split", "--steps", "2"], tmp_path)
    _torchrun(["--resume", "split", "--steps", "4"], tmp_path)
    a, b = tmp_path / "straight", tmp_path / "split"
    summary = json.loads((a / "train_log.json").read_text())["summary"]
    assert (summary["world_size"], summary["global_batch"], summary["step"]) == (2, 4, 4)
    assert summary["final_val"] is not None
    assert _losses(a) == pytest.approx(_losses(b), rel=1e-6) and len(_losses(a)) == 4
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
