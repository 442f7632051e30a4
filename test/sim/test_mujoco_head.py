"""The MuJoCo head core (timar_ros.sim): the servo model follows steps and sines within stated
bounds and never exceeds the URDF's position, velocity or torque limits; limits that act are
counted; the sim config and URDF are validated with errors naming the field; trajectories are
interpolated like a JointTrajectoryController; the tracking figures recover a known lag; the
offscreen camera renders the head and sees the jaw open."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from timar_ros.resources import config_path
from timar_ros.sim.commands import CommandError, TrajectoryFollower, check_command
from timar_ros.sim.config import SimConfig, SimConfigError, load_sim_config, urdf_joint_limits
from timar_ros.sim.head import MujocoHead, default_urdf, import_mujoco
from timar_ros.sim.tracking import best_lag, tracking_figures

try:
    import_mujoco()  # before anything imports mujoco: it picks its GL backend then
except SimConfigError as exc:
    pytest.skip(str(exc), allow_module_level=True)

NECK, FACE = slice(0, 3), slice(3, 10)


@pytest.fixture
def head():
    h = MujocoHead(default_urdf(), load_sim_config())
    yield h
    h.close()


def _run(head, commands, dt=0.01):
    """Feed commands [T, n] at dt; returns measured positions, velocities, efforts [T, n]."""
    q, v, e = [], [], []
    for c in commands:
        head.set_command(c)
        head.step(dt)
        q.append(head.positions)
        v.append(head.velocities)
        e.append(head.efforts)
    return np.array(q), np.array(v), np.array(e)


def test_joints_and_limits_come_from_the_urdf(head):
    limits = urdf_joint_limits(default_urdf())
    retarget = yaml.safe_load(config_path("retarget_default.yaml").read_text())["joints"]
    assert head.joint_names == [j["name"] for j in retarget]  # the retargeter's command order
    np.testing.assert_array_equal(head.upper, [j.upper for j in limits])
    np.testing.assert_array_equal(head.max_effort, [j.effort for j in limits])
    assert head.model.nu == 10 and head.model.opt.timestep == 0.002


def test_gains_follow_the_bandwidth_and_the_joint_inertia(head):
    mujoco = import_mujoco()
    M = np.zeros((head.model.nv, head.model.nv))
    mujoco.mj_fullM(head.model, head.data, M)
    for k, name in enumerate(head.joint_names):
        c = head.config.servo_of(name)
        inertia = M[k, k]
        assert inertia > c.armature  # the link's own inertia plus the gearbox's
        w = 2 * math.pi * c.bandwidth_hz
        assert head.kp[k] == pytest.approx(inertia * w**2)
        assert head.kv[k] == pytest.approx(2 * c.damping_ratio * inertia * w)


def test_a_step_is_followed_within_the_stated_bounds(head):
    target = np.array([0.3, 0.2, -0.2, 0.3, 0.2, -0.2, 0.6, 0.6, 0.3, -0.3])
    q, v, _ = _run(head, np.repeat(target[None], 100, 0))  # 1 s
    t = 0.01 * np.arange(1, 101)
    err = np.abs(q - target)
    # the target ramps at the URDF velocity, then a ~6 Hz (neck) / 12 Hz (face) servo settles:
    # within 10 % of the step 0.3 s after the ramp ends, within 0.015 rad (gravity sag of
    # the neck pitch and the jaw; static friction) after 0.6 s
    ramp = np.abs(target) / head.max_velocity
    for j in range(10):
        assert err[t >= ramp[j] + 0.3, j].max() < 0.1 * abs(target[j]) + 0.01, head.joint_names[j]
    assert err[t >= 0.6].max() < 0.015
    assert (np.abs(v) <= head.max_velocity * 1.05).all()  # the servo's top speed
    overshoot = (q - target) * np.sign(target)
    assert overshoot.max() < 0.02  # near-critically damped


def test_a_sine_is_followed_with_a_short_lag(head):
    t = 0.01 * np.arange(300)
    cmd = np.zeros((300, 10))
    cmd[:, 1] = 0.15 * np.sin(2 * np.pi * 0.5 * t)  # a slow nod
    cmd[:, 3] = 0.2 + 0.15 * np.sin(2 * np.pi * 1.0 * t)  # jaw at speech-like rate
    q, _, _ = _run(head, cmd)
    settled = t >= 1.0  # the jaw starts at 0, its command at 0.2
    fig = tracking_figures(t[settled], cmd[settled], q[settled], head.joint_names)
    for j, bound_lag, bound_rms in ((1, 0.06, 0.03), (3, 0.05, 0.04)):
        f = fig["joints"][head.joint_names[j]]
        assert 0.0 < f["lag_s"] <= bound_lag + 1e-9, f
        assert f["rms_rad"] < bound_rms, f
    # behind by the lag, the jaw tracks within 0.01 rad RMS after the first second
    lag = int(round(fig["joints"]["jaw"]["lag_s"] / 0.01))
    assert np.sqrt(np.mean((q[100 + lag :, 3] - cmd[100 : 300 - lag, 3]) ** 2)) < 0.01


def test_commands_beyond_the_limits_are_clipped_and_the_joints_stay_inside(head):
    beyond = np.where(np.arange(10) % 2, head.upper + 1.0, head.lower - 1.0)
    q, v, e = _run(head, np.repeat(beyond[None], 150, 0))
    q2, _, _ = _run(head, np.repeat((-beyond)[None], 150, 0))  # slam to the other side
    allq = np.vstack([q, q2])
    # MuJoCo's limit constraint is soft: within 5 mrad (0.3 deg) of the limit, under the
    # head's weight
    assert (allq >= head.lower - 5e-3).all() and (allq <= head.upper + 5e-3).all()
    assert (np.abs(e) <= head.max_effort * (1 + 1e-9)).all()
    c = head.count_summary()
    assert c["commands"] == 300 and all(n == 300 for n in c["position_clipped"].values())
    assert all(n > 0 for n in c["velocity_limited"].values())
    # the ramped target keeps these servos below their stall torque
    assert sum(c["effort_saturated"].values()) == 0


def test_a_servo_too_weak_for_its_load_saturates_and_sags(tmp_path):
    """A jaw servo of 0.01 N m cannot hold the jaw (0.1 kg, 4 cm) against gravity."""
    urdf = tmp_path / "weak.urdf"
    urdf.write_text(
        default_urdf()
        .read_text()
        .replace('velocity="4.0" effort="2.0"', 'velocity="4.0" effort="0.01"')
    )
    head = MujocoHead(urdf, load_sim_config())
    q, _, e = _run(head, np.zeros((100, 10)))
    assert head.count_summary()["effort_saturated"]["jaw"] > 50
    assert np.abs(e[:, 3]).max() <= 0.01 * (1 + 1e-9)
    assert q[-1, 3] > 0.05  # the jaw hangs open; the strong neck holds
    assert np.abs(q[-1, :3]).max() < 0.01


def test_commands_are_checked():
    names = ["a", "b", "c"]
    np.testing.assert_array_equal(check_command([1, 2, 3], names), [1.0, 2.0, 3.0])
    with pytest.raises(CommandError, match=r"2 values for 3 joints.*\['a', 'b', 'c'\]"):
        check_command([1, 2], names)
    with pytest.raises(CommandError, match=r"non-finite position for b \(nan\)"):
        check_command([1, float("nan"), 3], names)


def test_trajectory_follower_interpolates_from_the_current_pose():
    f = TrajectoryFollower(["a", "b"])
    assert f.at(0.0) is None and not f.active
    # points by name in another order; starts at t=10 from the current pose (0, 1)
    f.set(["b", "a"], [0.5, 1.0], [[3.0, 1.0], [5.0, 2.0]], 10.0, [0.0, 1.0])
    np.testing.assert_allclose(f.at(10.0), [0.0, 1.0])
    np.testing.assert_allclose(f.at(10.25), [0.5, 2.0])
    np.testing.assert_allclose(f.at(10.75), [1.5, 4.0])
    np.testing.assert_allclose(f.at(99.0), [2.0, 5.0])  # holds the last point
    for names, times, pts, match in (
        (["a"], [1.0], [[1.0]], "partial goals"),
        (["a", "b", "x"], [1.0], [[1, 2, 3]], "unknown"),
        (["a", "b"], [1.0, 0.5], [[1, 2], [1, 2]], "increasing"),
        (["a", "b"], [1.0], [[1, float("inf")]], "non-finite"),
        (["a", "b"], [1.0], [[1]], "1 positions for 2 joints"),
        (["a", "b"], [], [], "no points"),
    ):
        with pytest.raises(CommandError, match=match):
            f.set(names, times, pts, 0.0, [0.0, 0.0])
    np.testing.assert_allclose(f.at(99.0), [2.0, 5.0])  # a rejected one leaves the old one


def test_tracking_figures_recover_a_known_lag():
    t = 0.01 * np.arange(500)
    cmd = np.sin(2 * np.pi * 0.7 * t)[:, None] * [1.0, 0.0]
    meas = np.zeros_like(cmd)
    meas[7:, 0] = cmd[:-7, 0]  # 70 ms behind
    fig = tracking_figures(t, cmd, meas, ["moving", "still"])
    assert fig["joints"]["moving"]["lag_s"] == pytest.approx(0.07)
    assert fig["joints"]["still"] == {
        "rms_rad": 0.0,
        "worst_rad": 0.0,
        "lag_s": 0.0,
        "command_range_rad": 0.0,
    }
    assert fig["max_rms"] == "moving" and best_lag(cmd[:, 0], cmd[:, 0], 0.01, 0.3) == 0.0


def test_bad_sim_configs_and_urdfs_are_named(tmp_path):
    good = yaml.safe_load(config_path("sim_head.yaml").read_text())
    for edit, match in (
        (lambda d: d.update(timestep=0.001), r"unknown field\(s\) \['timestep'\]"),
        (lambda d: d.update(timestep_s=-1), r"timestep_s: must be > 0"),
        (
            lambda d: d["servo_classes"]["neck"].pop("armature"),
            r"neck: missing field\(s\) \['armature'\]",
        ),
        (
            lambda d: d["servo_classes"]["face"].update(kp="hard"),
            r"face.kp: must be a number, got 'hard'",
        ),
        (
            lambda d: d["servo_classes"]["face"]["joints"].append("neck_yaw"),
            r"neck_yaw is also in class",
        ),
        (lambda d: d["camera"].update(width=4), "width and height"),
    ):
        d = yaml.safe_load(yaml.safe_dump(good))
        edit(d)
        with pytest.raises(SimConfigError, match=match):
            SimConfig.from_dict(d, "sim.yaml")
    d = yaml.safe_load(yaml.safe_dump(good))
    d["servo_classes"]["face"]["joints"].remove("jaw")
    with pytest.raises(SimConfigError, match=r"in no class: \['jaw'\]"):
        MujocoHead(default_urdf(), SimConfig.from_dict(d, "sim.yaml"))
    d["servo_classes"]["face"]["joints"] += ["jaw", "tail"]
    with pytest.raises(SimConfigError, match=r"does not have: \['tail'\]"):
        MujocoHead(default_urdf(), SimConfig.from_dict(d, "sim.yaml"))
    with pytest.raises(SimConfigError, match="sim config not found"):
        load_sim_config(tmp_path / "nope.yaml")
    urdf = tmp_path / "h.urdf"
    urdf.write_text(
        default_urdf().read_text().replace('velocity="4.0" effort="2.0"', 'effort="2.0"', 1)
    )
    with pytest.raises(SimConfigError, match="joint jaw: <limit> needs numeric"):
        urdf_joint_limits(urdf)


def test_the_camera_sees_the_jaw_open(head):
    try:
        closed = head.render()
    except SimConfigError as exc:
        pytest.skip(f"no offscreen GL here: {exc}")
    cam = head.config.camera
    assert closed.shape == (cam.height, cam.width, 3) and closed.dtype == np.uint8
    assert closed.std() > 10  # the head, lit, not a blank frame
    head.set_command([0, 0, 0, 0.4, 0, 0, 0, 0, 0, 0])
    head.step(0.5)
    opened = head.render()
    changed = np.abs(opened.astype(int) - closed.astype(int)).sum(2) > 30
    rows = np.flatnonzero(changed.any(1))
    assert changed.sum() > 100, changed.sum()
    assert rows.mean() > cam.height * 0.4  # below the head's middle: the mouth, not the brows
