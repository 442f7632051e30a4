"""Every node's parameters: described, defaulted in config/timar.yaml (the one source), in range."""

import importlib
from pathlib import Path

import pytest

from timar_ros.nodes.params import node_defaults

NODES = sorted(
    p.stem
    for p in (Path(__file__).resolve().parents[2] / "timar_ros" / "nodes").glob("*.py")
    if "PARAMS = {" in p.read_text()
)


def test_all_nodes_found():
    assert {
        "microphone",
        "audio_file_player",
        "conversation_policy",
        "head_retargeter",
        "bag_player",
        "bag_recorder",
    } <= set(NODES)


@pytest.mark.parametrize("name", NODES)
def test_parameters_are_documented_and_defaulted(name):
    module = importlib.import_module(f"timar_ros.nodes.{name}")
    defaults = node_defaults(module.NAME)
    assert set(defaults) == set(module.PARAMS), "config/timar.yaml and the node's PARAMS differ"
    for key, spec in module.PARAMS.items():
        assert len(spec.description) > 10, f"{name}.{key} needs a description"
        value = defaults[key]
        if spec.min is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            assert spec.min <= value <= spec.max, (
                f"{name}.{key} default {value} outside [{spec.min}, {spec.max}]"
            )


def test_an_unknown_parameter_is_reported_not_silently_ignored():
    """A typo in a params file or -p is named in one warning at start-up (rclpy ignores it)."""
    import rclpy

    from timar_ros.nodes.microphone import Microphone
    from timar_ros.nodes.params import stray_overrides

    rclpy.init()
    try:
        from rclpy.parameter import Parameter

        node = Microphone(
            parameter_overrides=[
                Parameter("sample_rat", value=16000),
                Parameter("use_sim_time", value=False),
            ]
        )
        assert stray_overrides(node) == ["sample_rat"]
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


def test_unknown_parameter_warning_through_ros_args():
    """Through --ros-args: the warning comes before the node's own start-up error."""
    import subprocess
    import sys

    from helpers.ros import ros_env

    r = subprocess.run(
        [sys.executable, "-m", "timar_ros.nodes.bag_player", "--ros-args", "-p", "rat:=2.0"],
        env=ros_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert "ignoring parameter(s) ['rat']: bag_player has no such parameter" in r.stderr, r.stderr
    assert "bag_player: cannot start: set the 'bag' parameter" in r.stderr


@pytest.mark.parametrize(
    "node, args, message",
    [
        ("conversation_policy", ["-p", "max_latency_s:=-1.0"], "max_latency_s out of range"),
        (
            "conversation_policy",
            ["-p", "backend:=tensorrt"],
            "backend must be one of 'auto', 'torch', 'onnx', got 'tensorrt'",
        ),
        (
            "conversation_policy",
            ["-p", "audio_qos:=fast"],
            "audio_qos must be one of 'sensor_data', 'reliable'",
        ),
        ("bag_recorder", ["-p", "output:=/proc/no_bag_here"], "cannot create bag"),
    ],
    ids=["out-of-range", "backend", "audio-qos", "unwritable-bag"],
)
def test_bad_parameters_exit_2_with_one_line(node, args, message):
    import subprocess
    import sys

    from helpers.ros import ros_env

    r = subprocess.run(
        [sys.executable, "-m", f"timar_ros.nodes.{node}", "--ros-args", *args],
        env=ros_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert f"{node}: cannot start:" in r.stderr and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("name", NODES)
def test_start_up_parameters_are_read_only_and_say_how_to_change_them(name):
    """A parameter the node reads once at start-up refuses `ros2 param set` (it would change
    nothing); `ros2 param describe` tells how to change it."""
    import rclpy
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from timar_ros.nodes.params import START, declare

    module = importlib.import_module(f"timar_ros.nodes.{name}")
    rclpy.init()
    try:
        node = Node(f"probe_{name}")
        values = declare(node, module.NAME, module.PARAMS)
        for key, spec in module.PARAMS.items():
            d = node.describe_parameters([key])[0]
            assert d.read_only == (spec.read_at == START), key
            assert (
                "read once at start-up" in d.additional_constraints
                or "read on configure" in d.additional_constraints
            ), key
            if spec.read_at == START:
                r = node.set_parameters([Parameter(key, value=values[key])])[0]
                assert not r.successful and "read-only" in r.reason, (key, r.reason)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
