"""`timar import-reference`: a checkpoint in the reference implementation's exact format (tiny,
random) becomes our checkpoint, streams like the reference's own sampling loop (an independent
oracle, zero noise, 12 turns: beyond the 8-turn window), and bad files fail by name."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
from transformers import Wav2Vec2Model  # noqa: E402

from helpers.model import one_thread_module  # noqa: E402,F401
from helpers.reference import (  # noqa: E402
    reference_args,
    reference_shapes,
    reference_state_dict,
    reference_turns,
    write_reference_checkpoint,
    write_wav2vec2_dir,
)
from timar_ros.runtime import StreamingPolicy  # noqa: E402
from timar_ros.runtime.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from timar_ros.runtime.reference_import import import_reference, infer_config  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    d = tmp_path_factory.mktemp("reference")
    w2v = write_wav2vec2_dir(d / "w2v")
    model_sd, ema_sd = reference_state_dict(seed=1), reference_state_dict(seed=2)
    path = write_reference_checkpoint(d / "TIMAR.pth", model_sd, ema_sd)
    out = import_reference(path, w2v, d / "imported", num_heads=2, log=lambda *_: None)
    return {"dir": d, "w2v": w2v, "model": model_sd, "ema": ema_sd, "path": path, "out": out}


def _inputs(n=12, seed=0):
    rng = np.random.default_rng(seed)
    env = np.repeat(rng.uniform(0.05, 0.6, n * 25), 640).astype(np.float32)
    ua = rng.standard_normal(n * 16000).astype(np.float32) * env
    aa = rng.standard_normal(n * 16000).astype(np.float32) * env[::-1].copy()
    um = (rng.standard_normal((n * 25, 56)) * 0.3).astype(np.float32)
    return ua, aa, um


def _stream(policy, ua, aa, um):
    n = len(ua) // 16000
    return np.concatenate(
        [
            policy.step(
                ua[t * 16000 : (t + 1) * 16000],
                aa[t * 16000 : (t + 1) * 16000],
                um[t * 25 : (t + 1) * 25],
            )
            for t in range(n)
        ]
    )


def test_imported_model_streams_as_the_reference_beyond_its_window(ref):
    ua, aa, um = _inputs()
    pol = StreamingPolicy.from_checkpoint(ref["out"], noise="zeros", audio_norm="none")
    assert pol.kv_cache is False and "absolute positions" in pol.cache_note
    ours = _stream(pol, ua, aa, um)
    oracle = reference_turns(
        ref["ema"], Wav2Vec2Model.from_pretrained(ref["w2v"]), ua, aa, um, heads=2
    )
    assert ours.shape == (300, 56) and oracle.std() > 0.3  # the motion is not trivially small
    assert np.abs(ours - oracle).max() <= 1e-4
    assert pol.history_turns == 7  # the window: the current turn and 7 past ones
    # the history matters: the same last turn after other past turns differs
    ua2 = ua.copy()
    ua2[: 6 * 16000] *= -0.5
    pol.reset()
    other = _stream(pol, ua2, aa, um)
    assert np.abs(other[-25:] - ours[-25:]).max() > 1e-3
    # turns beyond the window do not: turn 11 sees turns 4..11 only
    ua3 = ua.copy()
    ua3[: 4 * 16000] *= -0.5
    pol.reset()
    far = _stream(pol, ua3, aa, um)
    assert np.abs(far[-25:] - ours[-25:]).max() <= 1e-5


def test_import_maps_every_tensor_by_name_and_writes_a_card(ref):
    model, mid = load_checkpoint(ref["out"])
    c = model.config
    assert (c.positions, c.window_turns, c.frames_per_turn, c.num_heads) == (
        "learned_absolute",
        8,
        25,
        2,
    )
    assert (c.d_model, c.num_blocks, c.head, c.diffusion_width, c.diffusion_depth) == (
        32,
        2,
        "diffusion",
        32,
        2,
    )
    assert c.num_sampling_steps == 5 and c.clamp_variance is False
    assert c.audio_norm == "running"  # causal by default, for live use
    sd = model.state_dict()
    ema = ref["ema"]
    assert torch.equal(sd["z_proj.weight"], ema["z_proj.weight"])
    assert torch.equal(sd["pos_in"], ema["encoder_pos_embed_learned"][0])
    assert torch.equal(sd["mask_token"], ema["mask_token"][0])
    assert torch.equal(sd["stacks.0.blocks.1.qkv.bias"], ema["encoder_blocks.1.attn.qkv.bias"])
    assert torch.equal(
        sd["head.net.res_blocks.1.mlp.2.weight"], ema["diffloss.net.res_blocks.1.mlp.2.weight"]
    )
    card = (ref["out"] / "model_card.json").read_text()
    assert "towards-seamless-interaction" in card and "Apache-2.0" in card
    assert '"weights": "model_ema"' in card and '"epoch": 399' in card


def test_raw_weights_are_the_model_ones(ref, tmp_path):
    out = import_reference(
        ref["path"], ref["w2v"], tmp_path / "raw", weights="model", num_heads=2, log=print
    )
    model, _ = load_checkpoint(out)
    assert torch.equal(model.state_dict()["z_proj.weight"], ref["model"]["z_proj.weight"])


def test_preset_comes_from_args_and_shapes():
    meta = {
        k: torch.empty(s, device="meta")
        for k, s in reference_shapes(
            d=1024, blocks=32, token_dim=1024, speech_dim=1024, width=1024, depth=3
        ).items()
    }
    c = infer_config(meta, vars(reference_args()), "/w2v")
    assert (c.preset, c.d_model, c.encoder_depth, c.decoder_depth, c.num_heads) == (
        "timar_large",
        1024,
        16,
        16,
        16,
    )
    assert c.diffusion_width == 1024 and c.diffusion_depth == 3 and c.motion_hidden == 512
    with pytest.raises(CheckpointError, match=r"args.model=timar_base .*--num-heads"):
        infer_config(meta, vars(reference_args(model="timar_base")), "/w2v")


def _write_corrupt(tmp_path, name, edit):
    sd = reference_state_dict(seed=3)
    edit(sd)
    return write_reference_checkpoint(tmp_path / name, sd)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda sd: sd.pop("encoder_blocks.1.mlp.fc2.bias"), r"missing 1 tensors: .*fc2\.bias"),
        (lambda sd: sd.update(extra=torch.zeros(3)), r"1 unexpected tensors: extra"),
        (
            lambda sd: sd.update({"z_proj_ln.bias": torch.zeros(31)}),
            r"shape mismatch: z_proj_ln\.bias \(31,\)",
        ),
        (
            lambda sd: sd["z_proj.bias"].fill_(float("nan")),
            r"z_proj\.bias holds NaN",
        ),
    ],
)
def test_a_damaged_checkpoint_is_refused_by_name(ref, tmp_path, edit, message):
    path = _write_corrupt(tmp_path, "bad.pth", edit)
    with pytest.raises(CheckpointError, match=message):
        import_reference(path, ref["w2v"], tmp_path / "out", num_heads=2, log=lambda *_: None)
    assert not (tmp_path / "out" / "model.safetensors").exists()


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_pickle_with_a_foreign_global_is_never_run(ref, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    torch.save({"model": reference_state_dict(seed=3), "args": _Payload()}, path)
    with pytest.raises(
        CheckpointError, match=r"refusing to unpickle the global (posix|os)\.system"
    ):
        import_reference(path, ref["w2v"], tmp_path / "out", num_heads=2)
    assert not (tmp_path / "PWNED").exists()
    # not a torch file at all, and a dict without weights
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read it as a torch checkpoint"):
        import_reference(tmp_path / "junk.pth", ref["w2v"], tmp_path / "out", num_heads=2)
    torch.save({"state_dict": {}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a reference training checkpoint"):
        import_reference(tmp_path / "other.pth", ref["w2v"], tmp_path / "out", num_heads=2)
    assert pickle.HIGHEST_PROTOCOL >= 2


def test_the_command_line(ref, tmp_path):
    def timar(*args):
        return subprocess.run(
            [sys.executable, "-m", "timar_ros.cli", "import-reference", *map(str, args)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=300,
        )

    r = timar(
        ref["path"],
        tmp_path / "ck",
        "--wav2vec2",
        ref["w2v"],
        "--num-heads",
        "2",
        "--copy-wav2vec2",
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ck" / "wav2vec2" / "config.json").is_file()
    # the copied folder travels with the checkpoint
    moved = tmp_path / "moved"
    (tmp_path / "ck").rename(moved)
    model, _ = load_checkpoint(moved)
    assert model.config.wav2vec2_path == str(moved / "wav2vec2")

    r = timar(ref["path"], tmp_path / "ck2", "--wav2vec2", tmp_path / "nowhere")
    assert r.returncode == 2 and "no wav2vec2 model there" in r.stderr
    r = timar(ref["path"], tmp_path / "ck2", "--wav2vec2", ref["w2v"])
    assert r.returncode == 2 and "--num-heads" in r.stderr


def test_bench_times_the_window_model_by_history(ref, capsys):
    from timar_ros.perf.bench import format_summary, run_bench

    rep = run_bench(str(ref["out"]), reencode_repeats=1, rss_turns=0, e2e_seconds=0, log=print)
    (row,) = rep["rows"]
    assert row["name"] == "torch+window" and row["kv_cache"] is False
    assert set(row["per_history"]) == {str(h) for h in range(8)}
    assert (
        rep["flops_per_turn_reencode_h7"] > 0 and rep["config"]["positions"] == "learned_absolute"
    )
    text = format_summary(rep)
    assert "real-time factor at a full window" in text and "torch-free" not in text


def test_evaluate_and_the_node_setup_run_the_imported_model(ref, tmp_path):
    from timar_ros.data.synthetic import SyntheticConfig, generate_conversation, write_conversation
    from timar_ros.eval.progressive import evaluate
    from timar_ros.resources import node_defaults
    from timar_ros.robot.policy_setup import load_policy

    data = tmp_path / "test"
    rng = np.random.default_rng([3, 0])
    write_conversation(generate_conversation(SyntheticConfig(), rng, duration_s=4.0), data, "c0")
    rep = evaluate(ref["out"], data, [0, 7], tmp_path / "eval", plot_files=0)
    for n in ("0", "7"):
        assert rep["contexts"][n]["files"] == 2
        pred = np.load(tmp_path / "eval" / f"context_{n}" / "c0_speaker1.npy")
        assert pred.shape == (100, 56) and np.isfinite(pred).all()
    # whole-file statistics, as the reference evaluates: stepping fits them per file
    rep = evaluate(
        ref["out"],
        data,
        [7],
        tmp_path / "file",
        plot_files=0,
        policy_options={"audio_norm": "file"},
    )
    assert rep["contexts"]["7"]["files"] == 2

    # the node's setup: kv_cache true (the default) is not possible here and says so
    p = dict(node_defaults("conversation_policy"), checkpoint=str(ref["out"]))
    policy, backend, _ = load_policy(p)
    assert backend == "torch" and policy.kv_cache is False and policy.cache_note
    assert policy.audio_norm == "running"  # the checkpoint's: causal
    assert policy.guidance_scale == 1.0  # the checkpoint's (-1): the published setting
    assert policy.guidance_every == 1  # the checkpoint's (-1)
    policy, _, _ = load_policy(dict(p, audio_norm="chunk", guidance_scale=2.0, guidance_every=3))
    assert policy.audio_norm == "chunk" and policy.guidance_scale == 2.0
    assert policy.guidance_every == 3


def test_bag_evaluation_runs_the_imported_model(ref, tmp_path):
    import json

    from timar_ros.cli import main
    from timar_ros.data.synthetic import SyntheticConfig, generate_conversation, write_conversation

    cfg = SyntheticConfig()
    cfg.tts.mode = "off"
    write_conversation(generate_conversation(cfg, 0, duration_s=3.5), tmp_path / "dt", "c0")
    assert main(["bag", "from-dualtalk", str(tmp_path / "dt"), str(tmp_path / "bags")]) == 0
    bag = next((tmp_path / "bags").iterdir())
    out = tmp_path / "eval"
    assert (
        main(
            ["bag", "evaluate", str(bag), "--checkpoint", str(ref["out"]), "--out", str(out)]
            + ["-p", "tick_s:=1.0"]  # a window model without a cache: the 1-s mode only
        )
        == 0
    )
    rep = json.loads((out / "report.json").read_text())
    assert rep["turns"] >= 3 and np.isfinite(list(rep["metrics"].values())).all()
