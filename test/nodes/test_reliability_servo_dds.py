"""Servo safety through a real head_retargeter process over DDS: NaN, huge, jumping, late,
far-future and malformed HeadMotion blocks -> joint commands stay within the position limits and
the velocity/acceleration limits, faults are logged and counted, the watchdog brings the head to
neutral within its bound; a misconfigured retarget YAML fails the configure transition with the
file, field and problem (lifecycle service) or, with autostart, exits 2."""

import time

import numpy as np
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from sensor_msgs.msg import JointState

from helpers.ros import Lifecycle, spin_until, start_python, stop
from timar_ros.msg import HeadMotion
from timar_ros.nodes.convert import head_motion, stamp_to_s
from timar_ros.robot.retarget import MotionPlayer
from timar_ros.robot.retarget_config import load_retarget_config

NS = "/servo"


def test_adversarial_motion_stays_within_limits_and_watchdog_reaches_neutral(ros_probe):
    cfg = load_retarget_config()
    lim = cfg.limits()
    bound = MotionPlayer(cfg).neutral_deadline_s
    node = ros_probe.node
    reliable = ros_probe.qos(1000)
    joints, diag = [], []
    node.create_subscription(JointState, f"{NS}/joint_states", joints.append, reliable)
    node.create_subscription(DiagnosticArray, "/diagnostics", diag.append, 10)
    pub = node.create_publisher(HeadMotion, f"{NS}/head_motion", reliable)
    proc = start_python(
        ["-m", "timar_ros.nodes.head_retargeter", "--ros-args", "-r", f"__ns:={NS}"]
    )
    rng = np.random.default_rng(0)
    last_due = []

    def block(frames, stamp, k):
        pub.publish(head_motion(frames, stamp, k, "attacker"))
        last_due.append(stamp + (len(frames) - 1) / 25)

    try:
        assert spin_until(node, lambda: len(joints) > 5 and pub.get_subscription_count(), 60), stop(
            proc
        )
        now = time.time()
        smooth = np.zeros((25, 56), np.float32)
        smooth[:, 53:] = 0.3 * np.sin(np.linspace(0, 3, 25))[:, None]  # a normal nod
        block(smooth, now + 0.2, 0)
        nan = rng.normal(0, 0.3, (25, 56)).astype(np.float32)
        nan[::2] = np.nan
        block(nan, now + 1.2, 1)
        block(np.full((25, 56), 1e30, np.float32), now + 2.2, 2)  # huge: rejected, last good held
        jumping = np.zeros((25, 56), np.float32)
        jumping[:, 53] = np.where(np.arange(25) % 2, 1.4, -1.4)  # +-80 deg yaw every 40 ms
        jumping[:, 50] = np.where(np.arange(25) % 2, 0.9, -0.9)  # jaw slamming
        jumping[:, :50] = np.where(np.arange(25) % 2, 9.0, -9.0)[:, None]
        block(jumping, now + 3.2, 3)
        spin_until(node, lambda: False, 4.3)
        late = np.zeros((25, 56), np.float32)
        late[:, 53:56] = [0.0, -1.2, 0.0]  # far away, and already half over on arrival
        block(late, time.time() - 0.5, 4)
        pub.publish(
            head_motion(smooth, time.time() + 1000.0, 5, "attacker")
        )  # far future: rejected
        bad = head_motion(smooth, time.time(), 6, "attacker")
        bad.num_frames = 30  # fields do not match: malformed
        pub.publish(bad)
        spin_until(node, lambda: False, bound + 1.5)
    finally:
        log = stop(proc)

    t = np.array([stamp_to_s(j.header.stamp) for j in joints])
    pos = np.array([j.position for j in joints])
    assert np.all(np.diff(t) > 0)
    assert (pos >= lim["min"] - 1e-9).all() and (pos <= lim["max"] + 1e-9).all()
    # Consecutive ticks (reliable, depth 1000). Tolerances: stamps near 1.7e9 s carry float64
    # rounding of ~2e-7 s, i.e. ~2e-5 of a 10-ms tick.
    dt = np.diff(t)[:, None]
    vel = np.diff(pos, axis=0) / dt
    assert (np.abs(vel) <= lim["max_velocity"] * (1 + 1e-4)).all(), np.max(
        np.abs(vel) / lim["max_velocity"]
    )
    acc = np.diff(vel, axis=0) / dt[1:]
    assert (np.abs(acc) <= lim["max_acceleration"] * (1 + 1e-3) + 0.05).all(), np.max(
        np.abs(acc) / lim["max_acceleration"]
    )
    assert np.ptp(pos[:, 0]) > 0.05, "the head never moved"
    # The late block was eased into: no step bigger than the velocity limit allows (checked above),
    # and it was counted; the watchdog then brought every joint to neutral within its bound.
    after = t >= max(last_due) + bound
    assert after.any()
    np.testing.assert_allclose(pos[after], np.tile(lim["neutral"], (after.sum(), 1)), atol=1e-3)
    ours = [s for d in diag for s in d.status if s.name.endswith("head_retargeter: servo commands")]
    c = {kv.key: kv.value for kv in ours[-1].values}
    assert int(c["rejected_frames"]) >= 13 + 25 and int(c["rejected_blocks"]) == 1
    assert (
        int(c["deadline_misses"]) == 1
        and int(c["late_frames"]) >= 12
        and c["watchdog_active"] == "True"
    )
    for text in [
        "the last good frame is held in their place",
        "block(s) rejected",
        "arrived after their first frame was due (policy deadline miss",
        "ignoring malformed HeadMotion",
        "easing to the neutral pose (watchdog)",
    ]:
        assert text in log, (text, log)
    assert "Traceback" not in log


def _bad_yaml(path, mutate):
    d = yaml.safe_load(open(load_retarget_config().source))
    mutate(d)
    path.write_text(yaml.safe_dump(d))
    return path


def test_misconfigured_retarget_yaml_fails_configure_with_the_precise_error(tmp_path, ros_probe):
    inverted = _bad_yaml(
        tmp_path / "inverted.yaml", lambda d: d["joints"][1].update(min=0.5, max=-0.5)
    )
    unknown = _bad_yaml(
        tmp_path / "unknown.yaml", lambda d: d["head_rotation"].update(neck_yawn={"source": "yaw"})
    )
    # autostart (no lifecycle manager): the process exits 2 with the error.
    auto = start_python(
        [
            "-m",
            "timar_ros.nodes.head_retargeter",
            "--ros-args",
            "-r",
            "__ns:=/bad_auto",
            "-p",
            f"retarget_config:={unknown}",
        ]
    )
    # managed: the configure transition fails; the node stays unconfigured.
    managed = start_python(
        [
            "-m",
            "timar_ros.nodes.head_retargeter",
            "--ros-args",
            "-r",
            "__ns:=/bad_managed",
            "-p",
            f"retarget_config:={inverted}",
            "-p",
            "autostart:=false",
        ]
    )
    node = ros_probe.node
    try:
        retargeter = Lifecycle(node, "/bad_managed/head_retargeter")
        assert retargeter.wait(60), stop(managed)
        assert retargeter.transition(Transition.TRANSITION_CONFIGURE) is False
        assert retargeter.state() == "unconfigured"
        rc = auto.wait(60)
    finally:
        log_managed, log_auto = stop(managed), stop(auto)
    assert (
        f"cannot load the retarget config: {inverted}: joints[1] (neck_pitch): inverted or empty "
        "limits: min (0.5) must be < max (-0.5)"
    ) in log_managed, log_managed
    assert "configure again" in log_managed
    assert rc == 2, log_auto
    assert (
        "head_retargeter: cannot start: configure failed: cannot load the retarget config: "
        f"{unknown}: "
        "head_rotation.neck_yawn: unknown joint 'neck_yawn'"
    ) in log_auto, log_auto
