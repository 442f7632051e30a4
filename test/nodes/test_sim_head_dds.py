"""sim_head (MuJoCo) as a separate process over real DDS, driven the way head_retargeter drives
a real head: a step and a sine on forward_position_controller/commands are followed within
stated bounds; commands beyond the limits never take a joint out of them; NaN and wrong-length
commands are rejected (the last good one stays), counted in /diagnostics and said once; a
JointTrajectory is followed; the real head_retargeter's watchdog brings the simulated head to
neutral; with publish_clock it drives /clock at the real-time factor asked for."""

from __future__ import annotations

import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from helpers.ros import start_python, stop
from timar_ros.msg import HeadMotion
from timar_ros.nodes.convert import head_motion, stamp_to_s
from timar_ros.robot.retarget import MotionPlayer
from timar_ros.robot.retarget_config import load_retarget_config
from timar_ros.sim.config import SimConfigError, urdf_joint_limits
from timar_ros.sim.head import default_urdf, import_mujoco

try:
    import_mujoco()
except SimConfigError as exc:
    pytest.skip(str(exc), allow_module_level=True)

LIMITS = urdf_joint_limits(default_urdf())
NAMES = [j.name for j in LIMITS]
LOWER = np.array([j.lower for j in LIMITS])
UPPER = np.array([j.upper for j in LIMITS])


def _sim(ns: str, *params: str):
    args = ["-m", "timar_ros.nodes.sim_head", "--ros-args", "-r", f"__ns:={ns}"]
    for p in params:
        args += ["-p", p]
    return start_python(args)


def _series(states):
    t = np.array([stamp_to_s(m.header.stamp) for m in states])
    return t, np.array([m.position for m in states]), np.array([m.effort for m in states])


def _drive(probe, ns, command_of_t, seconds, states):
    """Publish command_of_t(t since start) at 100 Hz for ``seconds``; returns (t0, sent)."""
    pub = probe.publisher(Float64MultiArray, f"{ns}/forward_position_controller/commands")
    assert probe.spin_until(lambda: len(states) > 5 and pub.get_subscription_count() > 0, 60)
    t0, sent = time.time(), []

    def tick():
        t = time.time() - t0
        if t <= seconds:
            c = command_of_t(t)
            sent.append((time.time(), np.asarray(c, float)))
            pub.publish(Float64MultiArray(data=[float(x) for x in c]))

    timer = probe.node.create_timer(0.01, tick)
    probe.spin_for(seconds + 0.3)
    probe.node.destroy_timer(timer)
    return t0, pub


def _diag(diag):
    ours = [s for d in diag for s in d.status if s.name.startswith("sim_head")]
    assert ours, "no sim_head diagnostics"
    return {kv.key: kv.value for kv in ours[-1].values}


def test_step_sine_and_limits_over_dds(ros_probe):
    ns = "/sim_follow"
    states = ros_probe.collect(JointState, f"{ns}/joint_states")
    step = np.array([0.3, 0.2, -0.2, 0.3, 0.2, -0.2, 0.6, 0.6, 0.3, -0.3])
    beyond = np.where(np.arange(10) % 2, UPPER + 0.5, LOWER - 0.5)

    def command(t):
        if t < 1.5:
            return step
        if t < 4.5:  # a nod and a talking jaw around the step's pose
            c = step.copy()
            c[1] = 0.15 * np.sin(2 * np.pi * 0.5 * (t - 1.5))
            c[3] = 0.2 + 0.15 * np.sin(2 * np.pi * 1.0 * (t - 1.5))
            return c
        return beyond

    proc = _sim(ns)
    try:
        t0, _ = _drive(ros_probe, ns, command, 5.5, states)
    finally:
        log = stop(proc)
    t, q, effort = _series(states)
    assert np.all(np.diff(t) > 0) and "Traceback" not in log, log
    # ~100 Hz, stamped on the node's clock (ROS time = wall time here)
    rate = 1 / np.median(np.diff(t))
    assert 80 < rate < 120, rate
    rel = t - t0
    # the step: within 0.015 rad of every target from 0.6 s on (the unit test's bound; the
    # first command arrives a few ms after t0)
    held = (rel > 0.7) & (rel < 1.5)
    assert np.abs(q[held] - step).max() < 0.015, np.abs(q[held] - step).max(0)
    # the sine: the jaw within 0.05 rad, the nod within 0.04 rad at all times after 2.5 s
    s = (rel > 2.5) & (rel < 4.5)
    tt = rel[s] - 1.5
    assert np.abs(q[s, 1] - 0.15 * np.sin(2 * np.pi * 0.5 * tt)).max() < 0.04
    assert np.abs(q[s, 3] - (0.2 + 0.15 * np.sin(2 * np.pi * tt))).max() < 0.05
    # beyond the limits: clipped, the joints reach the limits and never leave them (MuJoCo's
    # soft limit: 5 mrad)
    assert (q >= LOWER - 5e-3).all() and (q <= UPPER + 5e-3).all()
    end = rel > 5.2
    assert np.abs(q[end][-1] - np.clip(beyond, LOWER, UPPER)).max() < 0.03
    assert (np.abs(effort) <= [j.effort for j in LIMITS]).all()


def test_bad_commands_are_rejected_counted_and_said_once(ros_probe):
    ns = "/sim_bad"
    states = ros_probe.collect(JointState, f"{ns}/joint_states")
    diag = ros_probe.collect(DiagnosticArray, "/diagnostics", reliable=False)
    good = np.array([0.2, 0.1, 0.0, 0.2, 0.0, 0.0, 0.3, 0.3, 0.0, 0.0])
    sent = {"nan": 0, "short": 0}

    def command(t):
        if t < 1.0:
            return good
        k = int(t * 100)
        if k % 2:
            sent["nan"] += 1
            return np.where(np.arange(10) == 3, np.nan, good)
        sent["short"] += 1
        return good[:7]

    proc = _sim(ns, "fault_log_period_s:=60.0")
    try:
        _drive(ros_probe, ns, command, 2.5, states)
        ros_probe.spin_for(1.2)  # one more diagnostics period
    finally:
        log = stop(proc)
    t, q, _ = _series(states)
    late = t > t[-1] - 1.0
    assert np.abs(q[late] - good).max() < 0.015  # the last good command stays
    c = _diag(diag)
    assert int(c["rejected_non_finite"]) == sent["nan"] > 50
    assert int(c["rejected_wrong_length"]) == sent["short"] > 50
    assert int(c["commands"]) < 130  # only the good ones reached the servos
    assert log.count("rejected command: non-finite position for jaw (nan)") == 1, log
    assert log.count("rejected command: 7 values for 10 joints") == 1, log
    assert "Traceback" not in log


def test_joint_trajectory_is_followed(ros_probe):
    ns = "/sim_traj"
    states = ros_probe.collect(JointState, f"{ns}/joint_states")
    pub = ros_probe.publisher(JointTrajectory, f"{ns}/joint_trajectory_controller/joint_trajectory")
    proc = _sim(ns, "command_interface:=trajectory")
    try:
        assert ros_probe.spin_until(lambda: len(states) > 5 and pub.get_subscription_count(), 60)
        # by name in reverse order; 1 s ramp of the yaw to 0.4 and the jaw to 0.3, stamped now
        names = NAMES[::-1]
        traj = JointTrajectory(joint_names=names)
        start = time.time() + 0.2
        traj.header.stamp.sec, traj.header.stamp.nanosec = int(start), int(start % 1 * 1e9)
        for k in range(1, 11):
            p = np.zeros(10)
            p[0], p[3] = 0.4 * k / 10, 0.3 * k / 10
            point = JointTrajectoryPoint(positions=p[::-1].tolist())
            point.time_from_start.nanosec = int(k * 1e8) % 1_000_000_000
            point.time_from_start.sec = k // 10
            traj.points.append(point)
        pub.publish(traj)
        partial = JointTrajectory(joint_names=NAMES[:3])
        partial.points.append(JointTrajectoryPoint(positions=[1.0, 1.0, 1.0]))
        partial.points[0].time_from_start.sec = 1
        ros_probe.spin_for(0.6)
        pub.publish(partial)  # rejected: the ramp goes on
        ros_probe.spin_for(1.5)
    finally:
        log = stop(proc)
    t, q, _ = _series(states)
    mid = np.argmin(np.abs(t - (start + 0.5)))
    assert abs(q[mid, 0] - 0.2) < 0.04 and abs(q[mid, 3] - 0.15) < 0.04, q[mid]
    end = t > start + 1.4
    assert np.abs(q[end][:, [0, 3]] - [0.4, 0.3]).max() < 0.015
    assert "partial goals are not allowed" in log and "Traceback" not in log


def test_retargeter_watchdog_brings_the_simulated_head_to_neutral(ros_probe):
    ns = "/sim_watchdog"
    cfg = load_retarget_config()
    bound = MotionPlayer(cfg).neutral_deadline_s
    states = ros_probe.collect(JointState, f"{ns}/joint_states")
    pub = ros_probe.publisher(HeadMotion, f"{ns}/head_motion")
    sim = _sim(ns)
    # the retargeter's own JointState (its commands) moved off the measured joint_states
    retargeter = start_python(
        ["-m", "timar_ros.nodes.head_retargeter", "--ros-args", "-r", f"__ns:={ns}"]
        + ["-r", "joint_states:=servo_targets"]
    )
    try:
        assert ros_probe.spin_until(lambda: len(states) > 5 and pub.get_subscription_count(), 60)
        ros_probe.spin_for(1.0)  # the retargeter's commands are flowing
        frames = np.zeros((25, 56), np.float32)
        frames[:, 53:56] = [0.0, 0.25, 0.0]  # FLAME yaw (y axis) 0.25 rad
        frames[:, 50] = 0.2  # jaw open
        start = time.time() + 0.3
        for k in range(2):
            pub.publish(head_motion(frames, start + k, k, "test"))
        ros_probe.spin_for(0.3 + 2.0 + bound + 1.0)
    finally:
        log = stop(retargeter) + stop(sim)
    t, q, _ = _series(states)
    moving = (t > start + 1.0) & (t < start + 2.0)
    assert q[moving, 0].max() > 0.2 and q[moving, 3].max() > 0.1, "the head never turned"
    neutral = cfg.limits()["neutral"]
    after = t > start + 2.0 + bound + 0.4  # the servos settle 0.4 s after their commands
    assert after.sum() > 20
    assert np.abs(q[after] - neutral).max() < 0.015, np.abs(q[after] - neutral).max(0)
    assert "Traceback" not in log


def test_publish_clock_drives_simulated_time(ros_probe):
    ns = "/sim_clock"
    clock = ros_probe.collect(Clock, "/clock", reliable=False)
    states = ros_probe.collect(JointState, f"{ns}/joint_states")
    proc = _sim(ns, "publish_clock:=true", "real_time_factor:=2.0")
    try:
        assert ros_probe.spin_until(lambda: len(clock) > 10, 60)
        n0, w0 = len(clock), time.monotonic()
        ros_probe.spin_for(2.0)
        c = [stamp_to_s(m.clock) for m in clock]
        wall = time.monotonic() - w0
    finally:
        log = stop(proc)
    sim_dt = c[-1] - c[n0 - 1]
    assert 1.5 < sim_dt / wall < 2.2, (sim_dt, wall)  # 2x real time (at most, under load)
    assert c[0] < 5.0  # from 0, not the wall clock
    js_t = [stamp_to_s(m.header.stamp) for m in states]
    assert js_t[-1] < 10.0  # joint_states in simulated time
    assert "Traceback" not in log


def test_camera_frames_on_a_topic_and_in_an_mp4(ros_probe, tmp_path):
    from sensor_msgs.msg import Image

    from timar_ros.viz.video import find_ffmpeg

    if find_ffmpeg() is None:
        pytest.skip("ffmpeg missing (apt-get install ffmpeg)")
    ns = "/sim_camera"
    images = ros_probe.collect(Image, f"{ns}/sim_head/image", depth=50)
    video = tmp_path / "head.mp4"
    proc = _sim(ns, "render_fps:=10.0", f"video_path:={video}")
    try:
        assert ros_probe.spin_until(lambda: len(images) >= 10, 60)
    finally:
        log = stop(proc)  # Ctrl-C: the node finishes the MP4 as it shuts down
    img = images[-1]
    assert (img.width, img.height, img.encoding) == (320, 240, "rgb8")
    rgb = np.frombuffer(bytes(img.data), np.uint8).reshape(240, 320, 3)
    assert rgb.std() > 10  # the lit head, not a blank frame
    dt = np.diff([stamp_to_s(m.header.stamp) for m in images[-6:]])
    assert np.allclose(dt, 0.1, atol=0.02), dt  # 10 Hz of simulated time
    assert video.stat().st_size > 1000 and "Traceback" not in log, log
    assert not (tmp_path / ".head.mp4.partial").exists()


def test_a_video_without_a_frame_rate_is_refused_at_start(tmp_path):
    proc = _sim("/sim_novideo", f"video_path:={tmp_path / 'x.mp4'}")
    try:
        proc.wait(60)
    finally:
        log = stop(proc)
    assert proc.returncode == 2, log
    assert "video_path" in log and "needs render_fps > 0" in log, log


def test_it_follows_a_sim_clock_through_jumps(ros_probe):
    """use_sim_time with someone else's /clock (a bag_player): the physics follows it, and a
    jump (the clock starting at 1000 s, a bag looping back) restarts it from the new time."""
    ns = "/sim_follow_clock"
    states = ros_probe.collect(JointState, f"{ns}/joint_states")
    diag = ros_probe.collect(DiagnosticArray, "/diagnostics", reliable=False)
    pub = ros_probe.publisher(Clock, "/clock", reliable=False)
    now = {"t": 1000.0, "w": time.monotonic()}

    def tick():
        c = Clock()
        t = now["t"] + time.monotonic() - now["w"]
        c.clock.sec, c.clock.nanosec = int(t), int(t % 1 * 1e9)
        pub.publish(c)

    timer = ros_probe.node.create_timer(0.01, tick)
    proc = _sim(ns, "use_sim_time:=true")
    try:
        assert ros_probe.spin_until(lambda: len(states) > 50, 60)
        now.update(t=1000.0, w=time.monotonic())  # the bag loops back to its start
        ros_probe.spin_for(2.5)
    finally:
        ros_probe.node.destroy_timer(timer)
        log = stop(proc)
    t, _, _ = _series(states)
    assert (t > 999.0).all() and (t < 1100.0).all(), t  # on the sim clock, never the wall's
    assert t[-1] - t[np.argmin(t[-200:]) + len(t) - 200] > 1.5  # went on after the jump back
    assert int(_diag(diag)["clock_resets"]) >= 2  # the start at 1000 s, then the loop
    assert "the clock jumped by" in log and "Traceback" not in log


def test_a_tick_with_no_physics_step_due_publishes_nothing(ros_probe):
    """A timer that fires before a whole physics step is due (timers jitter) moves nothing, so it
    publishes nothing: two joint_states with one stamp would say the head moved in zero time."""
    from timar_ros.nodes.sim_head import SimHead

    ns = "/sim_early_tick"
    states = ros_probe.collect(JointState, f"{ns}/joint_states")
    node = SimHead(namespace=ns)  # not spun: its ticks are called below, at chosen times
    try:
        assert ros_probe.spin_until(lambda: node.count_subscribers(f"{ns}/joint_states") > 0, 10)
        step = node.head.model.opt.timestep
        node._t0 = start = 0.0  # small times: no rounding in the differences
        for due in (0.01, 0.01 + 0.5 * step, 0.02, 0.02 + 0.99 * step, 0.03):
            node._ros_now = lambda due=due: due
            node._tick()
        assert ros_probe.spin_until(lambda: len(states) >= 3, 10)
        ros_probe.spin_for(0.3)
    finally:
        node.destroy_node()
    t, _, _ = _series(states)
    assert len(t) == 3, t - start
    assert np.all(np.diff(t) > 0), t - start
