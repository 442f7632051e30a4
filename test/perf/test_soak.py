"""`timar soak` (short): two minutes of synthetic conversation through the composed pipeline on
simulated time: no dropped turns, bounded memory, the report's keys."""

import json
import subprocess
import sys

from helpers.ros import REPO, ros_env


def test_short_soak_drops_no_turn_and_memory_is_bounded(tiny_checkpoint, tmp_path):
    ckpt = tiny_checkpoint
    out = tmp_path / "soak.json"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "timar_ros.cli",
            "soak",
            "--minutes",
            "2",
            "--rate",
            "30",
            "--checkpoint",
            str(ckpt),
            "--json",
            str(out),
        ],
        cwd=REPO,
        env={**ros_env(), "TMPDIR": str(tmp)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not [
        p.name for p in tmp.iterdir() if p.name.startswith("timar-soak-")
    ]  # its scratch is gone
    r = json.loads(out.read_text())
    for key in (
        "turns",
        "dropped_turns",
        "rss_growth_mb",
        "p99_ms_turn",
        "p50_ms_turn",
        "per_minute",
    ):
        assert key in r
    assert r["expected_turns"] == 120 and r["turns"] == 120 and r["dropped_turns"] == 0
    assert (
        r["skipped_turns"] == 0 and r["joint_limit_violations"] == 0 and r["joint_state_msgs"] > 0
    )
    assert r["rss_growth_mb"] < 20
    assert [m["minute"] for m in r["per_minute"]] == [1, 2]
    # in simulated time the policy is never late, so the retargeter plays every frame
    assert (
        r["retargeter"]["blocks"] == 120
        and r["retargeter"]["late_frames"] <= 0.01 * r["retargeter"]["frames"]
    )
    assert (
        r["retargeter"]["watchdog_trips"] == 1
    )  # once, after the end: the head went back to neutral
    assert r["segmenter"]["dropped_audio_s"] == 0 and r["segmenter"]["user_padded_s"] == 0
    assert r["checkpoint_note"] == f"given: {ckpt}"
