"""DualTalk metrics against hand-computed values on small arrays."""

import json
import math

import numpy as np
import pytest

from timar_ros.cli import main as timar_main
from timar_ros.data.dualtalk_files import save_motion
from timar_ros.eval import metrics as M


def _white(n_cols):
    """Columns with zero mean, unit sample variance (ddof=1) and zero sample correlation."""
    from scipy.linalg import hadamard

    h = hadamard(8)[:, 1 : 1 + n_cols].astype(np.float64) * math.sqrt(7 / 8)
    return h


def test_fd_of_known_gaussians():
    z = _white(3)
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 2.0, 1.0])
    x1, x2 = mu1 + z * s1, mu2 + z * s2
    # diagonal covariances: FD = |dmu|^2 + sum (s1 - s2)^2
    expected = 1 + 0 + 4 + (4 + 0 + 0.25)
    assert M.fd(x1, x2) == pytest.approx(expected, abs=1e-9)
    assert M.fd(x1, x1) == pytest.approx(0.0, abs=1e-9)
    mu, cov = M.gaussian_stats(x1)
    np.testing.assert_allclose(mu, mu1, atol=1e-12)
    np.testing.assert_allclose(cov, np.diag(s1**2), atol=1e-12)


def test_paired_fd_sees_the_partner_relation():
    z = _white(2)
    c = 1 / math.sqrt(2)
    anchor = z[:, :1]
    gt = c * z[:, :1] + c * z[:, 1:]  # corr(gt, anchor) = +1/sqrt(2)
    pred = -c * z[:, :1] + c * z[:, 1:]  # same marginal, corr -1/sqrt(2)
    assert M.fd(pred, gt) == pytest.approx(0.0, abs=1e-9)
    pfd = M.fd(np.c_[anchor, gt], np.c_[anchor, pred])
    assert pfd == pytest.approx(4 - 2 * math.sqrt(2), abs=1e-9)  # tr: 1+1+1+1 - 2*2*sqrt(1-c^2)


def test_mse_sts_variance_rpcc():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(30, 3))
    pred = gt.copy()
    pred[:, 1] += 0.5 * np.arange(30)  # a ramp: every frame difference is off by 0.5
    assert M.sts(pred, gt) == pytest.approx(math.sqrt(29 * 0.25 / 0.1))
    assert M.sts(gt, gt) == 0.0
    x = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    assert M.variance(x) == pytest.approx((8 / 3 + 0) / 2)
    a = rng.normal(size=(40, 3))
    assert M.rpcc(a, -a, a) == pytest.approx(2.0)  # |1 - (-1)|
    assert M.rpcc(a, a, a) == pytest.approx(0.0)
    half = a.copy()
    half[:, 0] = 0.0
    r = np.corrcoef(half.ravel(), a.ravel())[0, 1]
    assert M.rpcc(a, half, a) == pytest.approx(1 - r)


def test_sid_on_constructed_clusters():
    rng = np.random.default_rng(1)
    centres = np.array([[10.0 * i, (i % 3) * 7.0, (i % 2) * 5.0] for i in range(10)])
    gt = np.repeat(centres, 10, axis=0) + 0.01 * rng.normal(size=(100, 3))
    # prediction uses all 10 clusters equally -> entropy log2(10)
    pred_all = centres[np.arange(50) % 10] + 0.01 * rng.normal(size=(50, 3))
    exp_all = -10 * 0.1 * math.log2(0.1 + 1e-6)
    assert M.sid(gt, pred_all, 10) == pytest.approx(exp_all, abs=1e-9)
    # prediction collapsed on one cluster -> entropy ~0
    pred_one = centres[[3] * 50] + 0.01 * rng.normal(size=(50, 3))
    assert M.sid(gt, pred_one, 10) == pytest.approx(-math.log2(1 + 1e-6), abs=1e-9)
    # 4 clusters with shares 1/2, 1/4, 1/8, 1/8 -> 1.75 bits
    idx = [0] * 8 + [1] * 4 + [2] * 2 + [3] * 2
    pred_q = centres[idx] + 0.01 * rng.normal(size=(16, 3))
    p = np.array([0.5, 0.25, 0.125, 0.125])
    assert M.sid(gt, pred_q, 10) == pytest.approx(-np.sum(p * np.log2(p + 1e-6)), abs=1e-9)
    # reverse SID: fitted on the prediction (5 clusters), histogram of GT's 100 frames
    pred5 = np.repeat(centres[[0, 2, 4, 6, 8]], 4, axis=0) + 0.01 * rng.normal(size=(20, 3))
    notes = []
    v = M.sid(pred5, gt, 10, notes)  # only 20 distinct points >= 10 clusters: k stays 10
    assert notes == [] and 0.0 < v <= math.log2(10) + 1e-9
    # fewer distinct frames than k: k is reduced and noted (the reference would crash)
    const = np.zeros((30, 3))
    notes = []
    assert M.sid(const, gt, 10, notes) == pytest.approx(-math.log2(1 + 1e-6))
    assert notes and "k reduced" in notes[0]


def test_diversity_seeded():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 5))
    a = M.diversity(x, np.random.default_rng(7))
    assert a == M.diversity(x, np.random.default_rng(7))
    assert a != M.diversity(x, np.random.default_rng(8))
    assert M.diversity(np.ones((150, 4)), np.random.default_rng(0)) == 0.0
    # two points at distance 2, 100 each: E|xi - xj| over independent draws ~ 2 * P(differ) = 1
    two = np.r_[np.zeros((100, 1)), 2 * np.ones((100, 1))]
    vals = [M.diversity(two, np.random.default_rng(s)) for s in range(50)]
    assert np.mean(vals) == pytest.approx(1.0, abs=0.05)


def test_file_metrics_groups_and_scaling():
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(120, 56))
    anchor = rng.normal(size=(130, 56))  # longer: cut to the common length
    pred = gt.copy()
    pred[:, 50:53] += 0.1  # only the jaw differs
    r = M.file_metrics(pred, gt, anchor, "x_speaker1", seed=0)
    assert list(r) == M.METRIC_KEYS
    assert r["mse_exp"] == 0 and r["mse_pose"] == 0
    assert r["mse_jaw"] == pytest.approx(0.01)
    assert r["fid_jaw"] == pytest.approx(3 * 0.01, abs=1e-9)  # pure mean shift
    assert r["p_fid_jaw"] == pytest.approx(3 * 0.01, abs=1e-9)
    assert r["fid_exp"] == pytest.approx(0, abs=1e-6) and r["rpcc_pose"] == pytest.approx(0)
    assert r["variance_pre_exp"] == r["variance_gt_exp"]
    assert r == M.file_metrics(pred, gt, anchor, "x_speaker1", seed=0)  # deterministic
    pub = M.format_for_pub({k: 1.0 for k in M.METRIC_KEYS})
    assert list(pub) == list(M.PUB_SCALE)
    assert (pub["fid_exp"], pub["fid_jaw"], pub["fid_pose"]) == (1.0, 1000.0, 100.0)
    assert (pub["mse_exp"], pub["mse_jaw"], pub["mse_pose"]) == (10.0, 1000.0, 100.0)
    assert (pub["rpcc_exp"], pub["rpcc_jaw"], pub["rpcc_pose"]) == (100.0, 10.0, 10.0)
    assert pub["sid_exp"] == 1.0 and pub["reverse_sid_pose"] == 1.0
    avg, excluded = M.average_metrics(
        {"f1": {"a": 1.0, "b": 1.0}, "f2": {"a": 3.0, "b": float("nan")}}
    )
    assert avg == {"a": 2.0, "b": 1.0} and excluded == {"b": ["f2"]}


def test_cli_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(4)
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    pred_dir.mkdir()
    for clip in ("c1", "c2"):
        for k in (1, 2):
            m = rng.normal(size=(110, 56)).astype(np.float32)
            save_motion(gt_dir / f"{clip}_speaker{k}.npz", m)
            np.save(pred_dir / f"{clip}_speaker{k}.npy", m)  # perfect prediction
    bad = np.full((110, 56), np.nan, np.float32)
    np.save(pred_dir / "c3_speaker1.npy", bad)
    out = tmp_path / "m.json"
    assert timar_main(["metrics", str(pred_dir), str(gt_dir), "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["files"] == 4 and list(rep["skipped"]) == ["c3_speaker1"]
    for g in ("exp", "jaw", "pose"):
        assert rep["metrics"][f"mse_{g}"] == 0.0
        assert abs(rep["metrics"][f"fid_{g}"]) < 1e-6
        assert abs(rep["metrics"][f"rpcc_{g}"]) < 1e-9
    assert set(rep["metrics"]) == set(M.METRIC_KEYS)
    text = capsys.readouterr().out
    assert "fid_exp" in text and "p_fid_pose" in text
    assert timar_main(["metrics", str(tmp_path / "nope"), str(gt_dir)]) == 2
    assert timar_main(["metrics", str(pred_dir), str(gt_dir), "--expect", "1066"]) == 2
    assert rep["predictions"] == 5 and rep["excluded_files"] == 1
    assert "1 of 5 predictions skipped: c3_speaker1 (non-finite prediction)" in text


def test_a_constant_prediction_is_left_out_of_rpcc_only_and_every_table_says_so(tmp_path):
    from timar_ros.eval.tables import markdown_table

    rng = np.random.default_rng(5)
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    pred_dir.mkdir()
    for clip in ("c1", "c2"):
        for k in (1, 2):
            m = rng.normal(size=(60, 56)).astype(np.float32)
            save_motion(gt_dir / f"{clip}_speaker{k}.npz", m)
            np.save(
                pred_dir / f"{clip}_speaker{k}.npy",
                m + 0.1 * rng.normal(size=m.shape).astype(np.float32),
            )
    still = np.load(pred_dir / "c2_speaker1.npy")
    still[:, 50:53] = 0.0  # the jaw never moves: its rPCC is undefined
    np.save(pred_dir / "c2_speaker1.npy", still)
    rep = M.evaluate_dirs(pred_dir, gt_dir)
    assert np.isfinite(list(rep["metrics"].values())).all()  # one file cannot make an average NaN
    assert rep["excluded"] == {"rpcc_jaw": ["c2_speaker1"]} and rep["excluded_files"] == 1
    assert rep["files"] == 4  # still counted in every other metric
    one = {n: m for n, m in rep["per_file"].items() if n != "c2_speaker1"}
    assert rep["metrics"]["rpcc_jaw"] == pytest.approx(
        np.mean([m["rpcc_jaw"] for m in one.values()])
    )
    table = markdown_table([("n = 0", rep["metrics"], rep)])
    assert "| 4/4 (1 excluded) |" in table and "rpcc_jaw left out for 1 file(s)" in table
    # The expected file list: a missing prediction is an error, not a smaller average.
    names = sorted(p.stem for p in pred_dir.glob("*.npy"))
    (pred_dir / "c1_speaker2.npy").unlink()
    with pytest.raises(ValueError, match="no prediction for 1 of 4 expected files: c1_speaker2"):
        M.evaluate_dirs(pred_dir, gt_dir, names=names)
