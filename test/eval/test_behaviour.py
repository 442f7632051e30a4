"""Behaviour metrics: the reaction detector finds the rules' listener reactions in the ground
truth, a jittery or frozen prediction scores as such, mimicry peaks at the rules' lag."""

import numpy as np
import pytest

from timar_ros.data.dualtalk import iter_test
from timar_ros.data.synthetic import SyntheticConfig, generate_dataset
from timar_ros.eval import behaviour as B
from timar_ros.motion import FPS


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("beh") / "test"
    cfg = SyntheticConfig()
    cfg.turns.duration_s = (40.0, 50.0)
    cfg.mood.warm_prob = 1.0  # smiles to mimic in every conversation
    generate_dataset(d, cfg, 4, seed=21)
    return B.load_files(list(iter_test(d)), {}, d)


def test_detector_on_a_clean_nod():
    m = np.zeros((200, 56))
    u = np.arange(15) / 15
    m[100:115, B.PITCH] = 0.1 * np.sin(np.pi * u) ** 2
    m[150:175, B.ROLL] = 0.06 * np.hanning(25)
    ev = B.detect_reactions(m, np.ones(200, bool))
    assert [(o, k) for o, k, _ in ev] == [(100, "nod"), (150, "tilt")] or (
        [k for _, k, _ in ev] == ["nod", "tilt"] and abs(ev[0][0] - 100) <= 1
    )
    assert B.detect_reactions(m, np.zeros(200, bool)) == []  # not while speaking


def test_matching_is_one_to_one_within_tolerance():
    assert B.match_onsets([10, 50], [12, 13, 90], 7.5) == [(0, 0)]


def test_oracle_finds_the_rules(files):
    o = B.oracle(files)
    assert o["reactions_reference"] > 20
    assert o["reaction_f1"] > 0.75 and o["kind_acc"] > 0.95
    assert 0.2 <= o["lag_median_s"] <= 0.45  # the rules: 0.3 s after the pause
    assert o["mimicry_peak_lag_s"] >= 1.6 and o["mimicry_peak_r"] > 0.25  # lag 2 s, tau 3 s
    lags = B.rule_lags(files)
    assert 0.2 <= lags["lag_median_s"] <= 0.4


def test_frozen_and_jittery_predictions(files):
    mean = {f.name: np.repeat(f.gt.mean(0, keepdims=True), len(f.gt), 0) for f in files}
    z = B.score(B.with_pred(files, mean))
    assert z["reaction_f1"] == 0 and z["var_ratio_pose"] < 1e-6 and z["r_pose"] == 0
    rng = np.random.default_rng(0)
    noisy = {f.name: f.gt + rng.normal(0, 0.01, f.gt.shape) for f in files}
    j = B.score(B.with_pred(files, noisy))
    assert j["jitter_ratio_pose"] > 2 and j["jitter_ratio_exp"] > 1.2
    assert j["var_ratio_pose"] > 1 and j["r_jaw"] > 0.9
    late = {f.name: np.roll(f.gt, int(0.6 * FPS), axis=0) for f in files}
    assert B.score(B.with_pred(files, late))["reaction_f1"] < 0.3  # 0.6 s late: no match


def test_aggregate_and_table():
    a = B.aggregate([{"reaction_f1": 0.5}, {"reaction_f1": 0.7}])
    assert a["reaction_f1"]["mean"] == pytest.approx(0.6)
    assert a["reaction_f1"]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    md = B.markdown([("x", a)])
    assert "| x | 0.60 ± 0.14 |" in md


def test_jaw_lag_sees_a_delay(files):
    assert B.oracle(files)["jaw_lag_s"] == 0.0
    late = {f.name: np.concatenate([f.gt[:3], f.gt[:-3]]) for f in files}  # 3 frames late
    assert B.score(B.with_pred(files, late))["jaw_lag_s"] == pytest.approx(3 / FPS)
