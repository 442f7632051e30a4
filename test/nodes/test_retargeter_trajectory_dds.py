"""head_retargeter with command_interface 'trajectory': one JointTrajectory per HeadMotion block,
its points produced by the same safe player (within position and speed limits), for a
ros2_control JointTrajectoryController."""

import time

import numpy as np
from trajectory_msgs.msg import JointTrajectory

from helpers.ros import spin_until, start_python, stop
from timar_ros.msg import HeadMotion
from timar_ros.nodes.convert import head_motion, stamp_to_s
from timar_ros.robot.retarget_config import load_retarget_config


def test_one_safe_trajectory_per_block(ros_probe):
    node = ros_probe.node
    got = []
    reliable = ros_probe.qos(100)
    node.create_subscription(
        JointTrajectory, "/traj/joint_trajectory_controller/joint_trajectory", got.append, reliable
    )
    pub = node.create_publisher(HeadMotion, "/traj/head_motion", reliable)
    proc = start_python(
        [
            "-m",
            "timar_ros.nodes.head_retargeter",
            "--ros-args",
            "-r",
            "__ns:=/traj",
            "-p",
            "command_interface:=trajectory",
        ]
    )
    try:
        assert spin_until(node, lambda: pub.get_subscription_count() > 0, 30)
        spin_until(node, lambda: False, 0.5)
        # A nod with the mouth wide open: big enough that the limits shape the trajectory.
        frames = np.zeros((25, 56), np.float32)
        frames[:, 50] = 0.8  # jaw beyond the jaw joint's 0.45 rad limit
        frames[:, 53] = 0.5 * np.sin(np.linspace(0, 2 * np.pi, 25))  # head pitch, fast
        start = time.time() + 0.3
        pub.publish(head_motion(frames, stamp_s=start, turn_index=0, model_id="test"))
        assert spin_until(node, lambda: len(got) >= 1, 20)
    finally:
        out = stop(proc)
    cfg = load_retarget_config()
    lim = cfg.limits()
    traj = got[0]
    assert list(traj.joint_names) == cfg.joint_names, out
    pos = np.array([p.positions for p in traj.points])
    t = np.array([p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in traj.points])
    assert stamp_to_s(traj.header.stamp) >= start - 1e-6
    assert (np.diff(t) > 0).all() and t[-1] >= 0.95  # covers the block (25 frames at 25 fps)
    assert (pos >= lim["min"] - 1e-9).all() and (pos <= lim["max"] + 1e-9).all()
    dt = np.diff(np.concatenate([[0.0], t]))
    speed = np.abs(np.diff(np.vstack([pos[:1], pos]), axis=0))[1:] / dt[1:, None]
    assert (speed <= lim["max_velocity"] * (1 + 1e-6) + 1e-6).all()
    jaw = cfg.joint_names.index("jaw")
    assert (
        pos[:, jaw].max() > 0.3 and pos[:, jaw].max() <= lim["max"][jaw] + 1e-9
    )  # opened, clipped
