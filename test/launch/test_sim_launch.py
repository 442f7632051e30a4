"""sim.launch.xml (the head in MuJoCo, or the commands only) and gazebo.launch.xml under the real
`ros2 launch`, started as a user starts them: every node up, the managed retargeter active,
HeadMotion blocks tiling the 1-s turns, servo commands and joint states at ~100 Hz, the head
turned to the simulated partner (partner_path); Ctrl-C ends
everything within 5 s with exit 0 and no traceback. A launch whose other packages
(robot_state_publisher, Gazebo, ros2_control) are not installed fails at once, names them, and
starts nothing."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from helpers import graph
from helpers.launch import Launch, record_figures, ros2
from timar_ros.msg import HeadMotion

NS = "/timar"
PIPELINE = {f"{NS}/audio_file_player", f"{NS}/conversation_policy", f"{NS}/head_retargeter"}
WINDOW_S = 6.0


def check_running_pipeline(launch, probe, nodes: set[str], topics: dict, hz: dict) -> dict:
    """Every node in ``nodes`` up, the retargeter active, HeadMotion blocks tiling the turns
    and keeping up with the audio, each other topic's rate over WINDOW_S within ``hz[topic]`` =
    (low, high); returns the figures."""
    motion = graph.receive_times(probe, {f"{NS}/head_motion": (HeadMotion, True)})[
        f"{NS}/head_motion"
    ]
    up_s = graph.wait_for_nodes(launch, probe, nodes)
    assert graph.lifecycle_state(f"{NS}/head_retargeter") == "active"
    measured, got = graph.measure_rates(
        launch, probe, topics, WINDOW_S, {f"{NS}/head_motion": motion}
    )
    for topic, (low, high) in hz.items():
        assert low <= measured[topic] <= high, (topic, measured)
    lag_s = graph.check_motion_keeps_up(motion, measured[f"{NS}/head_motion"], WINDOW_S)
    graph.check_turn_blocks([m for _, m in motion])
    # where the head pointed (scripted_partner's person, TIMAR's motion on top)
    states = next(got[t] for t, (typ, _) in topics.items() if typ is JointState)
    yaw = [m.position[list(m.name).index("neck_yaw")] for _, m in states[len(states) // 2 :]]
    return {
        "up_s": round(up_s, 1),
        "hz": {t: round(v, 1) for t, v in measured.items()},
        "neck_yaw_deg_p50": round(math.degrees(float(np.median(yaw))), 1),
        "motion_lag_min_s": round(lag_s, 3),
    }


@pytest.mark.parametrize("simulator", ["mujoco", "none"])
def test_sim_launch_runs_the_pipeline_and_stops_on_ctrl_c(simulator, ros2_cli, ros_probe, tmp_path):
    if simulator == "mujoco":
        pytest.importorskip("mujoco", reason="sim_head needs mujoco (requirements.txt)")
        # the simulated head takes the commands where a controller manager would
        topics = {
            "/forward_position_controller/commands": (Float64MultiArray, True),
            "/joint_states": (JointState, True),
        }
        hz = {"/forward_position_controller/commands": (85, 115), "/joint_states": (85, 115)}
        nodes = PIPELINE | {"/sim_head"}
    else:
        topics = {f"{NS}/joint_states": (JointState, True)}
        hz = {f"{NS}/joint_states": (85, 115)}
        nodes = PIPELINE
    launch = Launch(
        "sim.launch.xml",
        f"simulator:={simulator}",
        "use_robot_state_publisher:=false",  # not installable here (C++)
        "partner_path:=0:30",  # a person 30 degrees to the left: the head faces them
        log=tmp_path / "launch.log",
    )
    try:
        figures = check_running_pipeline(launch, ros_probe, nodes, topics, hz)
        assert abs(figures["neck_yaw_deg_p50"] - 30.0) < 5.0, figures
        figures["down_s"] = launch.ctrl_c_and_check()
    finally:
        left = launch.kill()
    assert not left, left
    record_figures(f"sim.launch.xml simulator:={simulator}", figures)


def _installed(package: str) -> bool:
    return "not found" not in ros2("pkg", "prefix", package, check=False)


@pytest.mark.parametrize(
    "file,args,needs",
    [
        (
            "gazebo.launch.xml",
            [],
            ["ros_gz_sim", "ros_gz_bridge", "gz_ros2_control", "controller_manager"],
        ),
        ("sim.launch.xml", ["simulator:=none"], ["robot_state_publisher"]),
    ],
    ids=["gazebo", "sim-with-robot_state_publisher"],
)
def test_a_launch_missing_other_packages_fails_at_once_and_starts_nothing(
    file, args, needs, ros2_cli, tmp_path
):
    missing = [p for p in needs if not _installed(p)]
    if not missing:
        pytest.skip(f"{', '.join(needs)} installed here: {file} would run")
    launch = Launch(file, *args, log=tmp_path / "launch.log")
    try:
        rc = launch.wait_exit(20.0)
        took = time.monotonic() - launch.started
        out = launch.output()
        assert rc not in (None, 0), out
        assert f"{file} cannot start: missing ROS 2 packages" in out, out
        assert all(p in out for p in missing), out
        assert "process started" not in out and "Traceback" not in out, out
        assert not launch.still_running()
    finally:
        left = launch.kill()
    assert not left, left
    record_figures(file, {"failed_in_s": round(took, 2), "named": missing})


def test_a_node_that_cannot_start_ends_the_launch(ros2_cli, tmp_path):
    """Every timar_ros node is required: the policy refusing a checkpoint that does not exist
    ends the whole launch at once, with its reason, and leaves nothing running."""
    missing = tmp_path / "no_such_checkpoint"
    launch = Launch(
        "sim.launch.xml",
        "simulator:=none",
        "use_robot_state_publisher:=false",
        f"checkpoint:={missing}",
        log=tmp_path / "launch.log",
    )
    try:
        assert launch.wait_exit(60.0) is not None, launch.output()
        took = time.monotonic() - launch.started
        out = launch.output()
        assert "conversation_policy: cannot start:" in out and str(missing) in out, out
        assert "Traceback" not in out, out
        assert not launch.still_running()
    finally:
        left = launch.kill()
    assert not left, left
    record_figures("sim.launch.xml checkpoint:=<missing>", {"ended_in_s": round(took, 2)})
