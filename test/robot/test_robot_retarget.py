"""Retargeting and servo safety (timar_ros.robot.retarget, rotations): conventions, YAML validation,
property tests (position/velocity/acceleration limits under random and adversarial streams),
watchdog, deadline misses."""

import copy
import math

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from timar_ros.resources import config_path
from timar_ros.robot.retarget import MotionPlayer, Retargeter
from timar_ros.robot.retarget_config import (
    RetargetConfig,
    RetargetConfigError,
    load_retarget_config,
)
from timar_ros.robot.rotations import (
    axis_angle_to_matrix,
    flame_to_rep103_quaternion,
    flame_to_ypr,
    matrix_to_ypr,
    ypr_to_matrix,
)

CFG = load_retarget_config()
LIM = CFG.limits()
J = len(CFG.joints)
RAW = yaml.safe_load(open(config_path("retarget_default.yaml"), encoding="utf-8"))


def idx(name):
    return CFG.joint_names.index(name)


# ----------------------------------------------------------------------------- conventions
def test_rotation_conventions():
    # FLAME y is up: rotation about FLAME +y = yaw to the robot's left (REP z up)
    np.testing.assert_allclose(flame_to_ypr([0.0, 0.3, 0.0]), [0.3, 0.0, 0.0], atol=1e-12)
    # FLAME x (viewer's right = person's left) = REP y (left): pitch, positive = chin down
    np.testing.assert_allclose(flame_to_ypr([0.2, 0.0, 0.0]), [0.0, 0.2, 0.0], atol=1e-12)
    # FLAME z (out of the face) = REP x (forward): roll
    np.testing.assert_allclose(flame_to_ypr([0.0, 0.0, -0.1]), [0.0, 0.0, -0.1], atol=1e-12)
    # pitch > 0 moves the forward axis down (REP-103 right-hand rule about +y)
    r = axis_angle_to_matrix(np.array([0.0, 0.2, 0.0]))
    assert (r @ [1.0, 0.0, 0.0])[2] < 0
    rng = np.random.default_rng(0)
    ypr = rng.uniform([-3, -1.5, -3], [3, 1.5, 3], (200, 3))
    np.testing.assert_allclose(matrix_to_ypr(ypr_to_matrix(ypr)), ypr, atol=1e-9)
    q = flame_to_rep103_quaternion([0.0, 0.3, 0.0])
    np.testing.assert_allclose(q, [0.0, 0.0, math.sin(0.15), math.cos(0.15)], atol=1e-12)
    np.testing.assert_allclose(flame_to_rep103_quaternion(np.zeros((2, 3))), [[0, 0, 0, 1]] * 2)


def test_retargeter_map_signs_offsets_and_limits():
    data = copy.deepcopy(RAW)
    data["head_rotation"]["neck_yaw"].update(sign=-1.0, offset=0.1)
    cfg = RetargetConfig.from_dict(data)
    rt = Retargeter(cfg)
    exp = np.zeros((3, 50))
    exp[1, 1] = 1.0
    jaw = np.array([[0.2, 0, 0], [0.0, 0, 0], [5.0, 0, 0]])  # 5 rad: beyond input limits -> invalid
    rot = np.array([[0, 0.3, 0], [0, 0, 0], [0, 0, 0]])
    out, valid = rt.map(exp, jaw, rot)
    assert valid.tolist() == [True, True, False]
    assert out[0, cfg.index("neck_yaw")] == pytest.approx(0.1 - 0.3)
    assert out[0, cfg.index("jaw")] == pytest.approx(0.2)
    assert out[1, cfg.index("brow_left")] == pytest.approx(0.08)  # matrix row brow_left, column 1
    np.testing.assert_array_equal(out[2], cfg.limits()["neutral"])
    big, _ = rt.map(np.zeros((1, 50)), [[0.9, 0, 0]], [[0, 1.4, 0]])
    assert big[0, cfg.index("jaw")] == LIM["max"][idx("jaw")]  # clipped to the position limit
    assert big[0, cfg.index("neck_yaw")] == LIM["min"][idx("neck_yaw")]  # 0.1 - 1.4 < -1.2


# ----------------------------------------------------------------------------- YAML validation
def bad(mutate):
    data = copy.deepcopy(RAW)
    mutate(data)
    return data


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda d: d["head_rotation"].update(neck_yawn={"source": "yaw"}),
            r"head_rotation.neck_yawn: unknown joint 'neck_yawn'",
        ),
        (
            lambda d: d["expression"]["joints"].__setitem__(0, "brow_centre"),
            r"expression.joints\[0\]: unknown joint 'brow_centre'",
        ),
        (
            lambda d: d["joints"][3].update(min=0.5, max=0.1),
            r"joints\[3\] \(jaw\): inverted or empty limits: min \(0.5\) must be < max \(0.1\)",
        ),
        (
            lambda d: d["joints"][0].update(neutral=2.0),
            r"joints\[0\] \(neck_yaw\): neutral \(2.0\) is outside",
        ),
        (
            lambda d: d["joints"][1].update(max_velocity=0),
            r"joints\[1\] \(neck_pitch\).max_velocity: must be > 0",
        ),
        (
            lambda d: d["joints"][1].pop("max_acceleration"),
            r"joints\[1\]: missing field\(s\) \['max_acceleration'\]",
        ),
        (
            lambda d: d["joints"][1].update(max_jerk=3),
            r"joints\[1\]: unknown field\(s\) \['max_jerk'\]",
        ),
        (
            lambda d: d["expression"]["matrix"].pop(),
            r"expression.matrix: wrong shape: expected 6 rows .* got 5 rows",
        ),
        (
            lambda d: d["expression"]["matrix"][2].pop(),
            r"expression.matrix\[2\] \(eyelid_left\): wrong shape: expected 50 columns .* got 49",
        ),
        (
            lambda d: d["expression"].update(bias=[0.0]),
            r"expression.bias: wrong shape: expected 6 values",
        ),
        (
            lambda d: d["jaw"].update(joint="neck_yaw"),
            r"jaw: joint 'neck_yaw' is already driven by head_rotation.neck_yaw",
        ),
        (lambda d: d["jaw"].update(axis="w"), r"jaw.axis: must be one of"),
        (
            lambda d: d["head_rotation"]["neck_roll"].update(source="tilt"),
            r"head_rotation.neck_roll.source: must be one of",
        ),
        (
            lambda d: d["head_rotation"]["neck_roll"].update(sign=2),
            r"head_rotation.neck_roll.sign: must be 1 or -1",
        ),
        (lambda d: d.pop("joints"), r"top level: missing field\(s\) \['joints'\]"),
        (
            lambda d: d.update(watchdog_timeout=1.0),
            r"top level: unknown field\(s\) \['watchdog_timeout'\]",
        ),
        (
            lambda d: d["joints"][2].update(min="low"),
            r"joints\[2\] \(neck_roll\).min: must be a number",
        ),
        (
            lambda d: d["joints"].append(dict(d["joints"][0])),
            r"joints\[10\] \(neck_yaw\): duplicate joint name",
        ),
    ],
)
def test_yaml_validation_errors_are_precise(mutate, message, tmp_path):
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(bad(mutate)))
    with pytest.raises(RetargetConfigError, match=message) as info:
        RetargetConfig.from_yaml(path)
    assert str(path) in str(info.value)


def test_yaml_file_errors(tmp_path):
    with pytest.raises(RetargetConfigError, match="not found"):
        RetargetConfig.from_yaml(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("joints: [\n")
    with pytest.raises(RetargetConfigError, match="not valid YAML"):
        RetargetConfig.from_yaml(tmp_path / "broken.yaml")


# ----------------------------------------------------------------------------- safety properties
def check_limits(times, positions):
    p = np.asarray(positions)
    t = np.asarray(times)
    assert np.all(p >= LIM["min"]) and np.all(p <= LIM["max"]), "position limit"
    dt = np.diff(t)[:, None]
    v = np.diff(p, axis=0) / dt
    assert np.all(np.abs(v) <= LIM["max_velocity"] * (1 + 1e-9) + 1e-9), "velocity limit"
    v = np.vstack([np.zeros((1, J)), v])  # starts at rest
    a = np.diff(v, axis=0) / dt
    assert np.all(np.abs(a) <= LIM["max_acceleration"] * (1 + 1e-7) + 1e-6), "acceleration limit"


NASTY = st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -1e30, 1e6, 3.0, -3.0, 0.0])


@st.composite
def motion_stream(draw):
    """Blocks with random/adversarial values, random stamps (late, overlapping, gaps, jumps)."""
    blocks = []
    t = 0.0
    for _ in range(draw(st.integers(1, 6))):
        n = draw(st.integers(1, 30))
        kind = draw(st.sampled_from(["random", "jumpy", "nasty", "const"]))
        seed = draw(st.integers(0, 2**31 - 1))
        rng = np.random.default_rng(seed)
        scale = draw(st.sampled_from([0.1, 1.0, 5.0, 100.0]))
        if kind == "random":
            exp, jaw, rot = (
                rng.normal(0, scale, (n, 50)),
                rng.normal(0, scale / 5, (n, 3)),
                rng.normal(0, scale / 5, (n, 3)),
            )
        elif kind == "jumpy":  # alternates between the extremes each frame
            s = np.where(np.arange(n) % 2, 1.0, -1.0)[:, None]
            exp, jaw, rot = (
                s * np.full((n, 50), 9.0),
                s * np.full((n, 3), 0.9),
                s * np.array([[0.5, 1.0, 0.4]]),
            )
        elif kind == "const":
            exp, jaw, rot = np.full((n, 50), scale), np.full((n, 3), scale), np.full((n, 3), scale)
        else:
            exp, jaw, rot = (
                rng.normal(0, 1, (n, 50)),
                rng.normal(0, 0.2, (n, 3)),
                rng.normal(0, 0.3, (n, 3)),
            )
            for arr in (exp, jaw, rot):
                mask = rng.random(arr.shape) < 0.2
                arr[mask] = draw(NASTY)
        stamp = t + draw(st.sampled_from([-1.0, -0.1, 0.0, 0.02, 0.3, 2.0]))
        period = draw(st.sampled_from([0.04, 0.02, 0.1]))
        blocks.append((max(stamp, 0.0), period, exp, jaw, rot))
        t = max(t, stamp) + n * 0.04
    return blocks


@given(
    blocks=motion_stream(),
    dts=st.lists(
        st.sampled_from([0.01, 0.01, 0.01, 0.002, 0.005, 0.03, 0.2]), min_size=20, max_size=200
    ),
    init=st.lists(st.floats(-10, 10), min_size=J, max_size=J),
    arrival=st.integers(0, 3),
)
def test_servo_commands_never_exceed_limits(blocks, dts, init, arrival):
    player = MotionPlayer(CFG, initial_positions=np.clip(init, LIM["min"], LIM["max"]))
    times, pos = [], []
    t = 0.0
    pending = list(blocks)
    for k, dt in enumerate(dts):
        # blocks arrive spread over the run (some before their stamps, some late)
        while pending and (k % (arrival + 1) == 0):
            player.add_block(*pending.pop(0))
            break
        t += dt
        times.append(t)
        pos.append(player.step(t))
    check_limits(times, pos)
    assert np.all(np.isfinite(pos))


@given(
    start=st.lists(st.floats(-2, 2), min_size=J, max_size=J),
    target_scale=st.floats(-3, 3),
)
def test_watchdog_reaches_neutral_within_its_deadline(start, target_scale):
    player = MotionPlayer(CFG, initial_positions=np.clip(start, LIM["min"], LIM["max"]))
    n = 25
    exp = np.full((n, 50), target_scale)
    jaw = np.full((n, 3), target_scale / 5)
    rot = np.tile([[target_scale / 3, target_scale / 2, target_scale / 4]], (n, 1))
    player.add_block(0.0, 0.04, exp, jaw, rot)
    last_due = 0.04 * (n - 1)
    deadline = last_due + player.neutral_deadline_s
    times = np.arange(1, int((deadline + 0.5) * 100)) * 0.01
    pos = np.array([player.step(t) for t in times])
    check_limits(times, pos)
    after = times >= deadline
    assert after.any()
    assert np.all(np.abs(pos[after] - LIM["neutral"]) <= 1e-3), np.abs(
        pos[after] - LIM["neutral"]
    ).max()
    assert player.watchdog_active and player.counters.watchdog_trips == 1


def test_tracks_frames_on_their_stamps_and_interpolates():
    cfg = RetargetConfig.from_dict({**copy.deepcopy(RAW), "smoothing_time_constant_s": 0.0})
    player = MotionPlayer(cfg)
    n = 50
    yaw = 0.3 * np.sin(2 * np.pi * 0.5 * np.arange(n) * 0.04)  # slow: within the rate limits
    rot = np.stack([np.zeros(n), yaw, np.zeros(n)], 1)
    player.add_block(1.0, 0.04, np.zeros((n, 50)), np.zeros((n, 3)), rot)
    times = np.arange(0, 300) * 0.01
    pos = np.array([player.step(t) for t in times])
    k = idx("neck_yaw")
    assert np.all(pos[times < 1.0, k] == 0.0)  # nothing due before the stamp
    inside = (times > 1.2) & (times < 2.9)
    expected = np.interp(times[inside], 1.0 + 0.04 * np.arange(n), yaw)
    assert np.max(np.abs(pos[inside, k] - expected)) < 0.02
    check_limits(times[1:], pos[1:])


def test_tick_blocks_splice_like_one_block():
    """Streaming inside the turn sends a turn as consecutive 3-frame blocks, each arriving
    before it is due: the servo commands are those of the whole turn sent at once."""
    n = 50
    rng = np.random.default_rng(0)
    rot = np.cumsum(rng.normal(0, 0.01, (n, 3)), 0)
    jaw = np.abs(np.cumsum(rng.normal(0, 0.01, (n, 3)), 0))
    exp = np.cumsum(rng.normal(0, 0.05, (n, 50)), 0)
    times = np.arange(0, 300) * 0.01
    whole = MotionPlayer(CFG)
    whole.add_block(1.0, 0.04, exp, jaw, rot)
    want = np.array([whole.step(t) for t in times])
    blocks = MotionPlayer(CFG)
    starts = list(range(0, n, 3))
    got = []
    for t in times:
        while starts and 1.0 + starts[0] * 0.04 - 0.2 <= t:  # each block 0.2 s before it is due
            s = starts.pop(0)
            blocks.add_block(1.0 + s * 0.04, 0.04, exp[s : s + 3], jaw[s : s + 3], rot[s : s + 3])
        got.append(blocks.step(t))
    np.testing.assert_allclose(np.array(got), want, atol=1e-12)
    assert blocks.counters.blocks == 17 and blocks.counters.late_frames == 0


def test_nan_frames_hold_last_good_value_and_are_counted():
    cfg = RetargetConfig.from_dict({**copy.deepcopy(RAW), "smoothing_time_constant_s": 0.0})
    player = MotionPlayer(cfg)
    n = 20
    jaw = np.tile([[0.2, 0, 0]], (n, 1))
    jaw[10:] = np.nan
    player.add_block(0.0, 0.04, np.zeros((n, 50)), jaw, np.zeros((n, 3)))
    for t in np.arange(1, 80) * 0.01:
        p = player.step(t)
    assert p[idx("jaw")] == pytest.approx(0.2, abs=1e-6)  # held, not neutral, not NaN
    assert player.counters.rejected_frames == 10


def test_deadline_miss_eases_instead_of_jumping():
    cfg = RetargetConfig.from_dict({**copy.deepcopy(RAW), "smoothing_time_constant_s": 0.0})
    player = MotionPlayer(cfg)
    for t in np.arange(1, 50) * 0.01:
        player.step(t)
    n = 25
    rot = np.tile([[0.0, 1.0, 0.0]], (n, 1))  # yaw 1 rad, block already 0.3 s late
    player.add_block(0.49 - 0.3, 0.04, np.zeros((n, 50)), np.zeros((n, 3)), rot)
    assert player.counters.deadline_misses == 1 and player.counters.late_frames == 8
    p1 = player.step(0.50)
    k = idx("neck_yaw")
    assert 0 < p1[k] <= LIM["max_acceleration"][k] * 0.01**2 + 1e-12  # starts easing, no jump
    for t in np.arange(51, 120) * 0.01:
        p = player.step(t)
    assert p[k] == pytest.approx(1.0, abs=1e-3)


def test_far_future_and_malformed_blocks_rejected():
    player = MotionPlayer(CFG)
    player.step(0.0)
    assert player.add_block(100.0, 0.04, np.zeros((5, 50)), np.zeros((5, 3)), np.zeros((5, 3))) == 0
    assert player.add_block(0.0, 0.04, np.zeros((5, 50)), np.zeros((4, 3)), np.zeros((5, 3))) == 0
    assert player.add_block(0.0, -1.0, np.zeros((5, 50)), np.zeros((5, 3)), np.zeros((5, 3))) == 0
    assert player.counters.rejected_blocks == 3


def test_buffer_bounded_over_a_long_run():
    player = MotionPlayer(CFG)
    rng = np.random.default_rng(0)
    t = 0.0
    for turn in range(200):
        player.add_block(
            turn * 1.0,
            0.04,
            rng.normal(0, 1, (25, 50)),
            rng.normal(0, 0.1, (25, 3)),
            rng.normal(0, 0.1, (25, 3)),
        )
        for _ in range(100):
            t += 0.01
            player.step(t)
        assert player._times.size <= 26


def test_preview_matches_step_and_leaves_state_alone():
    player = MotionPlayer(CFG)
    rng = np.random.default_rng(1)
    player.add_block(
        0.0,
        0.04,
        rng.normal(0, 1, (25, 50)),
        rng.normal(0, 0.1, (25, 3)),
        rng.normal(0, 0.2, (25, 3)),
    )
    player.step(0.0)
    times = np.arange(1, 120) * 0.01
    planned = player.preview(times)
    assert player.positions.tolist() == list(CFG.limits()["neutral"])
    np.testing.assert_array_equal(planned, np.array([player.step(t) for t in times]))
