"""`timar echo bench` on one simulated room (pyroomacoustics): AEC3 takes the robot's voice out
(ERLE, the policy's voice activity on the robot's turns), half-duplex mutes the partner in
double talk, no cancellation hears the robot as the partner."""

import json
import subprocess
import sys

from helpers.ros import REPO


def test_echo_bench_on_a_room(tmp_path):
    out = tmp_path / "echo.json"
    r = subprocess.run(
        [sys.executable, "-m", "timar_ros.cli", "echo", "bench", "--rooms", "1"]
        + ["--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "| ERLE dB (robot alone, after 2 s), median |" in r.stdout, r.stdout
    s = json.loads(out.read_text())["summary"]
    # measured on this room (rt60 0.2 s, loudspeaker 5 cm, +100 ppm): 34 dB, 0 %, 100 %
    assert s["aec"]["erle_db"]["value"] >= 25.0
    assert s["aec"]["robot_turns_called_partner"]["value"] <= 0.1
    assert s["aec"]["partner_turns_heard"]["value"] >= 0.9
    assert s["none"]["robot_turns_called_partner"]["value"] >= 0.9
    assert s["half_duplex"]["double_talk_turns_heard"]["value"] == 0.0
    assert s["aec"]["cpu_s_per_s"]["value"] < 0.2
