"""Voice activity (webrtcvad + energy fallback) and the expression-map calibration."""

import numpy as np
import pytest
import yaml

from timar_ros.cli import main as timar_main
from timar_ros.resources import config_path
from timar_ros.robot import vad as vad_mod
from timar_ros.robot.calibration import fit_expression_map, write_expression_map
from timar_ros.robot.retarget import Retargeter
from timar_ros.robot.retarget_config import RetargetConfig, RetargetConfigError
from timar_ros.robot.segmenter import TurnSegmenter
from timar_ros.robot.vad import TurnVoiceActivity, VoiceActivity

SR = 16000


def speechlike(seconds, seed=0):
    """Voiced, speech-band harmonic signal with a syllable-rate envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    f0 = 140 + 20 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.3 * env * x / np.abs(x).max() + 0.002 * rng.normal(size=t.size)).astype(np.float32)


@pytest.mark.skipif(not vad_mod.WEBRTC_AVAILABLE, reason="webrtcvad not installed")
def test_webrtc_voiced_fraction():
    v = VoiceActivity(aggressiveness=2)
    assert v.backend == "webrtc"
    x = np.concatenate([speechlike(0.5), np.zeros(SR // 2, np.float32)])
    assert v.voiced_fraction(np.zeros(SR, np.float32)) == 0.0
    frac = v.voiced_fraction(x)
    assert 0.35 <= frac <= 0.65
    assert VoiceActivity(frame_ms=10).frames(x).shape == (100,)


def test_energy_fallback_when_webrtcvad_missing(monkeypatch):
    monkeypatch.setattr(vad_mod, "WEBRTC_AVAILABLE", False)
    v = VoiceActivity(backend="auto")
    assert v.backend == "energy"
    x = np.concatenate([speechlike(0.6), np.zeros(int(0.4 * SR), np.float32)])
    assert v.voiced_fraction(x) == pytest.approx(0.6, abs=0.04)
    with pytest.raises(ImportError, match="webrtcvad-wheels"):
        VoiceActivity(backend="webrtc")


def test_turn_voice_activity_on_segmented_turns():
    seg = TurnSegmenter()
    (turn,) = seg.push("user", 0.0, speechlike(1.0)) + seg.push(
        "agent", 0.0, np.zeros(SR, np.float32)
    )
    tva = TurnVoiceActivity(threshold=0.2)
    fr = tva(turn)
    assert fr[0] > 0.8 and fr[1] == 0.0
    assert tva.speaking(fr) == (True, False)


def test_vad_parameter_errors():
    with pytest.raises(ValueError, match="frame_ms"):
        VoiceActivity(frame_ms=25)
    with pytest.raises(ValueError, match="aggressiveness"):
        VoiceActivity(aggressiveness=4)


JOINTS = [
    "brow_left",
    "brow_right",
    "eyelid_left",
    "eyelid_right",
    "lip_corner_left",
    "lip_corner_right",
]


def test_calibration_recovers_a_known_matrix(tmp_path):
    rng = np.random.default_rng(0)
    m = rng.normal(0, 0.05, (6, 50))
    b = rng.normal(0, 0.05, 6)
    x = rng.normal(0, 1, (400, 50))
    y = x @ m.T + b
    fit = fit_expression_map(x, y, JOINTS)
    np.testing.assert_allclose(fit.matrix, m, atol=1e-10)
    np.testing.assert_allclose(fit.bias, b, atol=1e-10)
    assert fit.rank == 50 and fit.rms_error.max() < 1e-10
    noisy = fit_expression_map(x, y + rng.normal(0, 0.01, y.shape), JOINTS, ridge=1.0)
    assert np.abs(noisy.matrix - m).max() < 0.01
    # written into a retarget YAML, loaded back, and used by the retargeter
    out = write_expression_map(config_path("retarget_default.yaml"), tmp_path / "robot.yaml", fit)
    np.testing.assert_allclose(out.expression.matrix, m, atol=1e-6)
    e = 0.1 * rng.normal(0, 1, (5, 50))
    targets, _ = Retargeter(out).map(e, np.zeros((5, 3)), np.zeros((5, 3)))
    cols = [out.index(j) for j in JOINTS]
    lim = out.limits()
    np.testing.assert_allclose(
        targets[:, cols], np.clip(e @ m.T + b, lim["min"][cols], lim["max"][cols]), atol=1e-5
    )
    # everything but the expression section is kept
    a = yaml.safe_load(open(config_path("retarget_default.yaml")))
    c = yaml.safe_load(open(tmp_path / "robot.yaml"))
    assert a["joints"] == c["joints"] and a["head_rotation"] == c["head_rotation"]


def test_calibration_cli_and_errors(tmp_path, capsys):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (100, 50))
    y = x[:, :2] * 0.1
    args = [
        "--config",
        str(config_path("retarget_default.yaml")),
        "--out",
        str(tmp_path / "cal.yaml"),
    ]
    np.savez(
        tmp_path / "pairs.npz",
        expression=x,
        actuators=y,
        joints=np.array(["brow_left", "brow_right"]),
    )
    assert timar_main(["calibrate", str(tmp_path / "pairs.npz")] + args) == 0
    cfg = RetargetConfig.from_yaml(tmp_path / "cal.yaml")
    assert cfg.expression.joints == ["brow_left", "brow_right"]
    np.testing.assert_allclose(cfg.expression.matrix[1, 1], 0.1, atol=1e-6)
    # a map onto a joint that another source already drives is rejected before anything is written
    np.savez(tmp_path / "bad.npz", expression=x, actuators=y, joints=np.array(["brow_left", "jaw"]))
    capsys.readouterr()
    assert (
        timar_main(
            ["calibrate", str(tmp_path / "bad.npz")]
            + args[:2]
            + ["--out", str(tmp_path / "bad.yaml")]
        )
        == 2
    )
    assert "timar calibrate: error:" in capsys.readouterr().err  # one line, no traceback
    with pytest.raises(RetargetConfigError, match="'jaw' is already driven by jaw"):
        write_expression_map(
            config_path("retarget_default.yaml"),
            tmp_path / "bad.yaml",
            fit_expression_map(x, y, ["brow_left", "jaw"]),
        )
    assert not (tmp_path / "bad.yaml").exists()
    with pytest.raises(ValueError, match=r"\[N, 50\]"):
        fit_expression_map(np.zeros((10, 49)), np.zeros((10, 1)), ["jaw"])
    with pytest.raises(ValueError, match="NaN"):
        fit_expression_map(np.full((10, 50), np.nan), np.zeros((10, 1)), ["jaw"])
