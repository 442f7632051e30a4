"""`timar echo calibrate` (robot/echo_calibration.py): the echo path measured from a recording,
on synthetic echoes and live through a real sound server whose loopback carries the
loudspeaker back into the microphone's room; the echo against a partner's voice recorded after
it (whether a partner talking over the robot would be heard)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers.echo_signals import RATE, room_echo
from timar_ros.robot.echo import AEC3_REACH_S
from timar_ros.robot.echo_calibration import (
    SILENCE_S,
    calibration_signal,
    measure,
    partner_figures,
)


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


def _partner_voice(dbfs: float, seconds: float = 4.0) -> np.ndarray:
    """The demo partner's voice at ``dbfs`` RMS while speaking, over a -80 dBFS floor."""
    from timar_ros.eval.echo_rooms import demo_voices, voiced

    v = demo_voices(RATE)[1][: int(seconds * RATE)].astype(np.float64)
    rms = np.sqrt(np.mean(voiced(v, RATE) ** 2))
    noise = 1e-4 * np.random.default_rng(2).standard_normal(len(v))
    return (v * 10 ** (dbfs / 20) / rms + noise).astype(np.float32)


def test_the_echo_over_a_partners_voice_says_whether_double_talk_is_heard():
    echo = measure(*_recording(0.02, 0.5), RATE)  # the echo 6 dB under the -20 dBFS signal
    assert echo["echo_dbfs"] == pytest.approx(-20.0 + echo["echo_level_db"], abs=1.5), echo
    near = partner_figures(_partner_voice(-60.0), RATE, echo)  # a voice 34 dB under the echo
    assert near["partner_dbfs"] == pytest.approx(-60.0, abs=0.5) and near["voice_heard"]
    assert near["echo_over_partner_db"] == pytest.approx(echo["echo_dbfs"] + 60.0, abs=0.6)
    assert near["double_talk_heard"] == 0.0
    assert any("lower the loudspeaker's volume" in a for a in near["advice"]), near
    loud = partner_figures(_partner_voice(echo["echo_dbfs"] + 6.0), RATE, echo)  # 6 dB over it
    assert loud["echo_over_partner_db"] == pytest.approx(-6.0, abs=0.6)
    assert loud["double_talk_heard"] == 0.63  # the bench's share at -5.3 dB, held below it
    assert not any("volume" in a for a in loud["advice"]), loud
    silent = partner_figures(1e-4 * np.ones(4 * RATE, np.float32), RATE, echo)
    assert not silent["voice_heard"] and "no voice over the noise floor" in silent["advice"][0]


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


def test_calibrate_with_a_partner_on_a_real_sound_server(tmp_path):
    """`--partner-seconds`: once the command asks for the partner, a voice is played into the
    microphone's room at -30 dBFS; the echo (the -20 dBFS signal through a -6 dB loopback) is
    ~4 dB over it, and the figures say so."""
    import soundfile as sf

    from timar_ros.demo.sound_server import SoundServer

    why = SoundServer.missing()
    if why:
        pytest.skip(f"no sound server here: {why}")
    wav = tmp_path / "partner.wav"
    sf.write(wav, _partner_voice(-30.0, 6.0), RATE)
    server = SoundServer(tmp_path / "pulse", sinks=("robot", "room")).start()
    try:
        server.set_defaults("robot", "room.monitor")
        server.loopback("robot.monitor", "room", 0.08, -6.0)
        proc = subprocess.Popen(
            [sys.executable, "-m", "timar_ros.cli", "echo", "calibrate", "--seconds", "4"]
            + ["--output-device", "pulse", "--input-device", "pulse", "--partner-seconds", "4"]
            + ["--json", str(tmp_path / "cal.json")],
            env=dict(os.environ, **server.env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines, player = [], None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("partner:"):
                player = server.play(wav, "room")
                break
        rest, _ = proc.communicate(timeout=120)
        lines.append(rest)
        assert player is not None, "".join(lines)[-3000:]  # it never asked for the partner
        player.wait(timeout=30)
    finally:
        server.stop()
    out = "".join(lines)
    assert proc.returncode == 0, out[-3000:]
    f = json.loads((tmp_path / "cal.json").read_text())
    p = f["partner"]
    assert p["voice_heard"] and p["partner_dbfs"] == pytest.approx(-30.0, abs=3.0), p
    assert p["echo_over_partner_db"] == pytest.approx(f["echo_dbfs"] - p["partner_dbfs"], abs=0.2)
    assert -1.0 <= p["echo_over_partner_db"] <= 9.0, (f, p)  # measured 4.8 (echo -25.2 dBFS)
    assert "over this voice at the microphone" in out, out[-2000:]


def test_calibrate_refuses_negative_partner_seconds():
    r = subprocess.run(
        [sys.executable, "-m", "timar_ros.cli", "echo", "calibrate", "--partner-seconds", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0 and "--partner-seconds -1 is negative" in r.stderr, r.stderr
