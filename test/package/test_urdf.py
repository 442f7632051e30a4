"""urdf/expressive_head.urdf: parses with an independent library (yourdfpy), agrees with
config/retarget_default.yaml and config/ros2_controllers.yaml, and its kinematics match the
retargeter's REP-103 convention."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import yaml

from timar_ros.resources import share_dir
from timar_ros.robot.retarget import Retargeter
from timar_ros.robot.retarget_config import load_retarget_config
from timar_ros.robot.rotations import flame_to_rep103_matrix

yourdfpy = pytest.importorskip("yourdfpy")

URDF = share_dir() / "urdf" / "expressive_head.urdf"
CONTROLLERS = share_dir() / "config" / "ros2_controllers.yaml"
CFG = load_retarget_config()


@pytest.fixture(scope="module")
def robot():
    return yourdfpy.URDF.load(str(URDF), build_scene_graph=True, load_meshes=False)


SENSOR_FRAMES = ("camera_link", "mic_array_link")  # frames without geometry


def test_urdf_parses_and_is_valid(robot):
    assert robot.validate()
    assert robot.base_link == "base_link"
    for name in (
        "head_link",
        "jaw_link",
        "brow_left_link",
        "eyelid_right_link",
        "lip_corner_left_link",
    ):
        assert name in robot.link_map
    for link in robot.robot.links:
        inertial = link.inertial
        assert inertial is not None and inertial.mass > 0, link.name
        eig = np.linalg.eigvalsh(inertial.inertia)
        assert np.all(eig > 0), link.name
        a, b, c = eig
        assert a + b >= c - 1e-12, f"{link.name}: inertia violates the triangle inequality"
        assert link.visuals or link.name in SENSOR_FRAMES, link.name


def test_the_sensor_frames_of_the_attention_defaults_are_fixed_on_the_head_and_the_base(robot):
    # head_retargeter's gaze_frame looks along the head, the microphone array sits on the base
    assert robot.joint_map["camera_joint"].parent == "head_link"
    assert robot.joint_map["mic_array_joint"].parent == "base_link"
    assert {robot.joint_map[f"{n}_joint"].type for n in ("camera", "mic_array")} == {"fixed"}


def test_joints_and_limits_agree_with_retarget_config(robot):
    assert robot.actuated_joint_names == CFG.joint_names
    for spec in CFG.joints:
        j = robot.joint_map[spec.name]
        assert j.type == "revolute"
        assert (j.limit.lower, j.limit.upper) == (spec.min, spec.max), spec.name
        assert j.limit.velocity == spec.max_velocity, spec.name
        assert j.limit.effort > 0
        assert j.limit.lower <= spec.neutral <= j.limit.upper


def test_ros2_control_block_and_controllers():
    root = ET.parse(URDF).getroot()
    (rc,) = root.findall("ros2_control")
    assert rc.find("hardware/plugin").text.strip() == "mock_components/GenericSystem"
    joints = rc.findall("joint")
    assert [j.get("name") for j in joints] == CFG.joint_names
    for j, spec in zip(joints, CFG.joints):
        (cmd,) = j.findall("command_interface")
        assert cmd.get("name") == "position"
        params = {p.get("name"): float(p.text) for p in cmd.findall("param")}
        assert params == {"min": spec.min, "max": spec.max}
        states = [s.get("name") for s in j.findall("state_interface")]
        assert states == ["position", "velocity"]
    ctl = yaml.safe_load(CONTROLLERS.read_text())
    cm = ctl["controller_manager"]["ros__parameters"]
    assert cm["joint_state_broadcaster"]["type"] == "joint_state_broadcaster/JointStateBroadcaster"
    assert (
        cm["forward_position_controller"]["type"]
        == "forward_command_controller/ForwardCommandController"
    )
    assert (
        cm["joint_trajectory_controller"]["type"]
        == "joint_trajectory_controller/JointTrajectoryController"
    )
    fwd = ctl["forward_position_controller"]["ros__parameters"]
    assert fwd["joints"] == CFG.joint_names and fwd["interface_name"] == "position"
    jtc = ctl["joint_trajectory_controller"]["ros__parameters"]
    assert jtc["joints"] == CFG.joint_names and jtc["command_interfaces"] == ["position"]
    assert cm["update_rate"] >= CFG.servo_rate_hz


def test_kinematics_match_the_retarget_convention(robot):
    """FLAME head rotation -> retargeted neck joints -> URDF forward kinematics: same rotation."""
    rt = Retargeter(CFG)
    rng = np.random.default_rng(0)
    rot = rng.uniform(-0.3, 0.3, (20, 3))
    targets, valid = rt.map(np.zeros((20, 50)), np.zeros((20, 3)), rot)
    assert valid.all()
    names = CFG.joint_names
    for r, q in zip(rot, targets):
        robot.update_cfg(dict(zip(names, q)))
        tf = robot.get_transform(frame_to="head_link", frame_from="base_link")
        base = robot.get_transform(frame_to="neck_pitch_link", frame_from="neck_yaw_link")
        np.testing.assert_allclose(tf[:3, :3], flame_to_rep103_matrix(r), atol=1e-9)
        assert np.allclose(base[:3, 3], [0, 0, 0.07])


def test_joint_directions(robot):
    names = CFG.joint_names

    def pos(link, **q):
        cfg = dict.fromkeys(names, 0.0)
        cfg.update(q)
        robot.update_cfg(cfg)
        return robot.get_transform(frame_to=link, frame_from="head_link")

    # jaw > 0 opens: a point at the front of the jaw moves down
    front = np.array([0.07, 0, -0.01, 1.0])
    assert (pos("jaw_link", jaw=0.3) @ front)[2] < (pos("jaw_link") @ front)[2]
    # brows / lip corners > 0 raise their outer ends, on both sides
    for side, y in (("left", 0.03), ("right", -0.03)):
        outer = np.array([0, y, 0, 1.0])
        for part in ("brow", "lip_corner"):
            up = pos(f"{part}_{side}_link", **{f"{part}_{side}": 0.2}) @ outer
            assert up[2] > (pos(f"{part}_{side}_link") @ outer)[2], f"{part}_{side}"
    # eyelids > 0 close: the lid's front edge moves down
    edge = np.array([0.02, 0, 0, 1.0])
    assert (pos("eyelid_left_link", eyelid_left=0.5) @ edge)[2] < (pos("eyelid_left_link") @ edge)[
        2
    ]
    # neck yaw > 0 turns the face to the robot's left (+y)
    robot.update_cfg({**dict.fromkeys(names, 0.0), "neck_yaw": 0.5})
    face = robot.get_transform(frame_to="head_link", frame_from="base_link")[:3, :3] @ [1.0, 0, 0]
    assert face[1] > 0
