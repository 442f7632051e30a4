"""urdf/expressive_head.gazebo.urdf.xacro and launch/gazebo.launch.xml: the Gazebo head is the
plain URDF's head (same links, joints, limits, inertias; parsed with yourdfpy), agrees with the
retarget config and the controllers, and the launch file wires the controllers it spawns."""

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import yaml

from timar_ros import topics
from timar_ros.resources import share_dir
from timar_ros.robot.retarget_config import load_retarget_config

yourdfpy = pytest.importorskip("yourdfpy")

SHARE = share_dir()
XACRO = SHARE / "urdf" / "expressive_head.gazebo.urdf.xacro"
PLAIN = SHARE / "urdf" / "expressive_head.urdf"
CONTROLLERS = SHARE / "config" / "ros2_controllers.yaml"
LAUNCH = SHARE / "launch" / "gazebo.launch.xml"
CFG = load_retarget_config()


def expand(text: str) -> str:
    """What `xacro` makes of the file: it uses only $(find timar_ros) and the `controllers` arg."""
    arg = re.search(r'<xacro:arg name="controllers" default="([^"]+)"/>', text)
    assert arg, "the controllers xacro:arg is missing"
    text = text.replace(arg.group(0), "").replace("$(arg controllers)", arg.group(1))
    body = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    assert "xacro:" not in body.replace('xmlns:xacro="http://www.ros.org/wiki/xacro"', ""), (
        "only $(find)/$(arg) are expanded here: extend expand() for other xacro"
    )
    text = text.replace("$(find timar_ros)", str(SHARE))
    assert "$(" not in re.sub(r"<!--.*?-->", "", text, flags=re.S)
    return text


@pytest.fixture(scope="module")
def urdf_text():
    return expand(XACRO.read_text())


@pytest.fixture(scope="module")
def robots(urdf_text, tmp_path_factory):
    path = tmp_path_factory.mktemp("gz") / "expressive_head.gazebo.urdf"
    path.write_text(urdf_text)
    load = lambda p: yourdfpy.URDF.load(str(p), build_scene_graph=True, load_meshes=False)  # noqa: E731
    return load(path), load(PLAIN)


def test_gazebo_urdf_parses_and_is_the_plain_head_fixed_to_the_world(robots):
    gz, plain = robots
    assert gz.validate()
    assert gz.base_link == "world"
    assert gz.joint_map["world_to_base"].type == "fixed"
    assert gz.joint_map["world_to_base"].child == "base_link"
    assert set(gz.link_map) == set(plain.link_map) | {"world"}
    assert set(gz.joint_map) == set(plain.joint_map) | {"world_to_base"}
    for name, j in plain.joint_map.items():
        g = gz.joint_map[name]
        assert (g.type, g.parent, g.child) == (j.type, j.parent, j.child), name
        np.testing.assert_array_equal(g.origin, j.origin)
        if j.axis is not None:
            np.testing.assert_array_equal(g.axis, j.axis)
        if j.limit is not None:
            assert (g.limit.lower, g.limit.upper, g.limit.velocity, g.limit.effort) == (
                j.limit.lower,
                j.limit.upper,
                j.limit.velocity,
                j.limit.effort,
            ), name
    for name, link in plain.link_map.items():
        g = gz.link_map[name]
        assert g.inertial.mass == link.inertial.mass > 0, name
        np.testing.assert_array_equal(g.inertial.inertia, link.inertial.inertia)
        assert len(g.visuals) == len(link.visuals) and len(g.collisions) == len(link.collisions), (
            name
        )


def test_joints_and_limits_agree_with_retarget_config(robots):
    gz, _ = robots
    assert gz.actuated_joint_names == CFG.joint_names
    for spec in CFG.joints:
        j = gz.joint_map[spec.name]
        assert (j.limit.lower, j.limit.upper) == (spec.min, spec.max), spec.name
        assert j.limit.velocity == spec.max_velocity, spec.name


def test_gz_ros2_control_hardware_plugin_and_controllers(urdf_text):
    root = ET.fromstring(urdf_text)
    plain = ET.parse(PLAIN).getroot()
    (rc,) = root.findall("ros2_control")
    assert rc.find("hardware/plugin").text.strip() == "gz_ros2_control/GazeboSimSystem"
    (rc_plain,) = plain.findall("ros2_control")
    strip = lambda e: [ET.tostring(j) for j in e.findall("joint")]  # noqa: E731
    assert strip(rc) == strip(rc_plain)  # same command/state interfaces and limits per joint
    assert [j.get("name") for j in rc.findall("joint")] == CFG.joint_names
    (plugin,) = root.findall("gazebo/plugin")
    assert plugin.get("filename") == "gz_ros2_control-system"
    assert plugin.get("name") == "gz_ros2_control::GazeboSimROS2ControlPlugin"
    params = plugin.find("parameters").text.strip()
    assert params == str(CONTROLLERS)
    ctl = yaml.safe_load(CONTROLLERS.read_text())
    assert ctl["forward_position_controller"]["ros__parameters"]["joints"] == CFG.joint_names


def test_launch_spawns_configured_controllers_and_wires_the_retargeter():
    root = ET.parse(LAUNCH).getroot()
    text = LAUNCH.read_text()
    assert "urdf/expressive_head.gazebo.urdf.xacro" in text and "$(command 'xacro " in text
    assert any((e.get("cmd") or "").startswith("gz sim") for e in root.iter("executable"))
    nodes = {(n.get("pkg"), n.get("exec"), n.get("name")): n for n in root.iter("node")}
    cm = yaml.safe_load(CONTROLLERS.read_text())["controller_manager"]["ros__parameters"]
    spawned = [
        n.get("args").split()[0]
        for (pkg, exe, _), n in nodes.items()
        if (pkg, exe) == ("controller_manager", "spawner")
    ]
    assert spawned == ["joint_state_broadcaster", "forward_position_controller"]
    assert all(c in cm for c in spawned)
    (create,) = [n for (pkg, exe, _), n in nodes.items() if (pkg, exe) == ("ros_gz_sim", "create")]
    assert "-topic robot_description" in create.get("args")
    (bridge,) = [
        n
        for (pkg, exe, _), n in nodes.items()
        if (pkg, exe) == ("ros_gz_bridge", "parameter_bridge")
    ]
    assert bridge.get("args") == "/clock@rosgraph_msgs/msg/Clock[gz.msgs.Clock"
    retargeter = nodes[("timar_ros", "head_retargeter", "head_retargeter")]
    params = {p.get("name"): p.get("value") for p in retargeter.iter("param") if p.get("name")}
    assert params["command_interface"] == "forward"
    (remap,) = retargeter.findall("remap")
    assert (remap.get("from"), remap.get("to")) == (
        topics.FORWARD_COMMANDS,
        "/" + topics.FORWARD_COMMANDS,
    )
    for (pkg, _, name), n in nodes.items():  # everything on Gazebo's clock
        if pkg in ("timar_ros", "robot_state_publisher"):
            sim = [p.get("value") for p in n.iter("param") if p.get("name") == "use_sim_time"]
            assert sim == ["true"], f"{name} is not on use_sim_time"
