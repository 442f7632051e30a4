"""`timar evaluate`: predictions, JSON and Markdown with the reference's key names, numbers equal
to `timar metrics` on the same predictions, stepping == offline, context handling, errors.
A tiny random checkpoint and a short synthetic conversation in tmp dirs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from timar_ros.cli import main as cli_main
from timar_ros.data.synthetic import SyntheticConfig, generate_conversation, write_conversation
from timar_ros.eval.metrics import METRIC_KEYS, format_for_pub
from timar_ros.eval.progressive import EvaluateError, evaluate
from timar_ros.runtime.checkpoint import make_random_checkpoint

CONTEXTS = [0, 2]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data = root / "test"
    conv = generate_conversation(SyntheticConfig(), np.random.default_rng([11, 0]), duration_s=5.0)
    write_conversation(conv, data, "clip0")
    ckpt = make_random_checkpoint("tiny", root / "ckpt", seed=1, perturb=0.05)
    out = root / "stepping"
    rep = evaluate(ckpt, data, CONTEXTS, out, seed=0, plot_files=1)
    return data, ckpt, out, rep


def test_outputs_and_key_names(setup):
    data, _, out, rep = setup
    names = ["clip0_speaker1", "clip0_speaker2"]
    for n in CONTEXTS:
        for name in names:
            p = np.load(out / f"context_{n}" / f"{name}.npy")
            assert p.shape == (125, 56) and p.dtype == np.float32 and np.isfinite(p).all()
    saved = json.loads((out / "report.json").read_text())
    assert saved["mode"] == "stepping" and saved["files"] == 2 and saved["turns"] == 10
    for n in CONTEXTS:
        c = saved["contexts"][str(n)]
        assert list(c["metrics"]) == METRIC_KEYS
        assert c["pub"] == dict(format_for_pub(c["metrics"]))
    md = (out / "table.md").read_text()
    assert "| setting | FD | P-FD | MSE | SID | rPCC |" in md
    row = next(line for line in md.splitlines() if line.startswith("| n = 2 |"))
    pub = saved["contexts"]["2"]["pub"]
    assert row.split(" | ")[1] == f"{pub['fid_exp']:.2f}/{pub['fid_jaw']:.2f}/{pub['fid_pose']:.2f}"
    assert (out / "plots" / "clip0_speaker1.png").stat().st_size > 5000


def test_numbers_equal_timar_metrics(setup, tmp_path):
    data, _, out, rep = setup
    for n in CONTEXTS:
        js = tmp_path / f"m{n}.json"
        assert cli_main(["metrics", str(out / f"context_{n}"), str(data), "--json", str(js)]) == 0
        assert json.loads(js.read_text())["metrics"] == rep["contexts"][str(n)]["metrics"]


def test_offline_agrees_with_stepping(setup, tmp_path):
    data, ckpt, out, _ = setup
    evaluate(ckpt, data, CONTEXTS, tmp_path / "off", offline=True, seed=0, plot_files=0)
    for n in CONTEXTS:
        for f in (out / f"context_{n}").glob("*.npy"):
            a, b = np.load(f), np.load(tmp_path / "off" / f"context_{n}" / f.name)
            np.testing.assert_allclose(b, a, atol=1e-4, rtol=1e-4)


def test_context_changes_only_turns_with_history(setup):
    _, _, out, _ = setup
    a = np.load(out / "context_0" / "clip0_speaker1.npy")
    b = np.load(out / "context_2" / "clip0_speaker1.npy")
    np.testing.assert_allclose(a[:25], b[:25], atol=1e-5)  # turn 0: no history either way
    assert np.abs(a[25:] - b[25:]).max() > 1e-4


def test_errors(setup, tmp_path):
    data, ckpt, _, _ = setup
    with pytest.raises(EvaluateError, match="0..7"):
        evaluate(ckpt, data, [8], tmp_path / "x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvaluateError, match="speaker pairs"):
        evaluate(ckpt, tmp_path / "empty", [0], tmp_path / "x")
    assert (
        cli_main(
            [
                "evaluate",
                "--checkpoint",
                str(tmp_path / "nope"),
                "--data",
                str(data),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )


def test_seeds_stream_and_behaviour_table(setup, tmp_path):
    """--seeds gives behaviour metrics with a spread; 'stream' is the full streamed history;
    the oracle (ground truth) row scores 1 on every ratio."""
    data, ckpt, _, _ = setup
    out = tmp_path / "seeds"
    assert (
        cli_main(
            ["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(out)]
            + ["--context", "0", "stream", "--seeds", "0", "1", "--plots", "0", "--offline"]
        )
        == 0
    )
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["contexts"]) == {"0", "stream"} and rep["seeds"] == [0, 1]
    assert sorted(p.name for p in (out / "context_stream" / "seed_1").glob("*.npy")) == [
        "clip0_speaker1.npy",
        "clip0_speaker2.npy",
    ]
    b = rep["contexts"]["stream"]["behaviour"]
    assert len(b["jitter_ratio_exp"]["values"]) == 2 and b["jitter_ratio_exp"]["std"] > 0
    o = rep["behaviour"]["oracle"]
    assert o["var_ratio_pose"] == o["jitter_ratio_exp"] == o["r_jaw"] == 1.0
    md = (out / "table.md").read_text()
    assert "| oracle (ground truth) |" in md and "| stream |" in md and " ± " in md
    with pytest.raises(SystemExit):  # argparse: --seeds needs ints
        cli_main(["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--seeds", "x"])
    with pytest.raises(EvaluateError, match="each seed once"):
        evaluate(ckpt, data, [0], tmp_path / "dup", seeds=[1, 1], plot_files=0)
    with pytest.raises(EvaluateError, match="'stream'"):
        evaluate(ckpt, data, [9], tmp_path / "big", plot_files=0)
