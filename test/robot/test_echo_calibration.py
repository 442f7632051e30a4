"""`timar echo calibrate` (robot/echo_calibration.py): the echo path measured from a recording,
on synthetic echoes and live through a real sound server whose loopback carries the
loudspeaker back into the microphone's room."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers.echo_signals import RATE, room_echo
from timar_ros.robot.echo import AEC3_REACH_S
from timar_ros.robot.echo_calibration import SILENCE_S, calibration_signal, measure


def _recording(delay_s: float, gain: float):
    played = calibration_signal(6.0, RATE)
    noise = 1e-4 * np.random.default_rng(0).standard_normal(len(played))
    return (room_echo(played, delay_s, gain) + noise).astype(np.float32), played


def test_an_echo_within_reach_needs_no_setting():
    f = measure(*_recording(0.02, 0.5), RATE)
    assert f["echo_found"] and f["delay_s"] == pytest.approx(0.02, abs=0.002)
    assert f["echo_level_db"] == pytest.approx(-6.0, abs=1.5)
    assert f["reference_delay_s"] == 0.0 and f["erle_db"] >= 25.0, f
    assert f["advice"] == ["the echo path is fine for echo_mode:=aec with the defaults"]


def test_an_echo_beyond_reach_gets_the_reference_delay_to_set():
    f = measure(*_recording(0.7, 0.5), RATE)
    assert f["delay_s"] == pytest.approx(0.7, abs=0.002)
    assert f["reference_delay_s"] == pytest.approx(0.7, abs=0.002)
    assert f["erle_db"] >= 25.0, f  # AEC3 with that setting
    assert any("reference_delay_s to 0.7" in a for a in f["advice"]), f["advice"]


def test_no_echo_and_a_clipped_echo_are_said():
    played = calibration_signal(4.0, RATE)
    quiet = 1e-4 * np.random.default_rng(1).standard_normal(len(played)).astype(np.float32)
    f = measure(quiet, played, RATE)
    assert not f["echo_found"] and f["erle_db"] is None and "no echo found" in f["advice"][0]
    assert f["noise_floor_dbfs"] == pytest.approx(-80.0, abs=1.0)
    loud, played = _recording(0.01, 20.0)
    f = measure(np.clip(loud, -1.0, 1.0), played, RATE)
    assert f["clipped"] > 0 and any("full scale" in a for a in f["advice"])
    assert len(played) == int((6.0 + 2 * SILENCE_S) * RATE)


@pytest.mark.parametrize("echo", [True, False])
def test_calibrate_on_a_real_sound_server(tmp_path, echo):
    """The command plays on the loudspeaker's sink and records the room's monitor: with a
    loopback (80 ms, -6 dB) it finds the echo at that level and AEC3 cancels it; without one
    it says there is no echo."""
    from timar_ros.demo.sound_server import SoundServer

    why = SoundServer.missing()
    if why:
        pytest.skip(f"no sound server here: {why}")
    server = SoundServer(tmp_path / "pulse", sinks=("robot", "room")).start()
    try:
        server.set_defaults("robot", "room.monitor")
        if echo:
            server.loopback("robot.monitor", "room", 0.08, -6.0)
        r = subprocess.run(
            [sys.executable, "-m", "timar_ros.cli", "echo", "calibrate", "--seconds", "4"]
            + ["--output-device", "pulse", "--input-device", "pulse"]
            + ["--json", str(tmp_path / "cal.json")],
            env=dict(os.environ, **server.env),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.stop()
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    f = json.loads((tmp_path / "cal.json").read_text())
    if echo:
        assert f["echo_found"] and abs(f["echo_level_db"] + 6.0) < 2.0, f
        assert AEC3_REACH_S[0] <= f["delay_s"] <= AEC3_REACH_S[1], f  # within reach:
        assert f["reference_delay_s"] == 0.0, f  # nothing to set
        assert f["erle_db"] >= 25.0, f
        assert "ERLE" in r.stdout
    else:
        assert not f["echo_found"], f
        assert "no echo found" in r.stdout
