"""The head's gaze (ROS-free): main-sequence shifts without overshoot within the joints' limits,
pursuit, TIMAR's rotation on top in the head's frame, nods kept near a limit, the ranked
attention, targets aimed through the URDF."""

from __future__ import annotations

import math

import numpy as np
import pytest

from timar_ros.resources import share_dir
from timar_ros.robot.attention import POINT, SOUND, Attention, AttentionConfig
from timar_ros.robot.gaze import GazeConfig, GazeShifter, compose
from timar_ros.robot.kinematics import UnknownFrame
from timar_ros.robot.retarget import MotionPlayer
from timar_ros.robot.retarget_config import load_retarget_config
from timar_ros.robot.rotations import matrix_to_ypr, ypr_to_matrix
from timar_ros.robot.targets import build_gaze

CFG = load_retarget_config()
VMAX, AMAX = np.array([3.0, 2.5]), np.array([20.0, 15.0])  # neck yaw, pitch (the default YAML)
URDF = share_dir() / "urdf" / "expressive_head.urdf"


def _run(shifter, goal, t_end=2.0, dt=0.005):
    shifter.aim(0.0, goal)
    ts = np.arange(0.0, t_end, dt)
    ps, vs = zip(*(shifter.at(t) for t in ts))
    return ts, np.array(ps), np.array(vs)


@pytest.mark.parametrize("deg", [5, 15, 30, 60])
def test_a_shift_follows_the_main_sequence_without_overshoot_within_the_limits(deg):
    cfg = GazeConfig()
    goal = np.radians([deg, -deg / 3])
    ts, ps, vs = _run(GazeShifter(cfg, VMAX, AMAX), goal)
    amp = float(np.linalg.norm(goal))
    speed = np.linalg.norm(vs, axis=1)
    # peak velocity from the main sequence (unless a joint limit lengthened the shift)
    assert speed.max() <= cfg.peak_velocity(amp) * 1.01
    assert (np.abs(vs) <= VMAX + 1e-9).all()
    acc = np.diff(vs, axis=0) / np.diff(ts)[:, None]
    assert (np.abs(acc) <= AMAX * 1.02).all()
    along = ps @ (goal / amp)
    assert along.max() <= amp + 1e-6  # no overshoot
    assert np.linalg.norm(ps[-1] - goal) < 1e-6


def test_larger_shifts_are_faster_and_last_longer_as_in_the_main_sequence():
    peaks, durations = [], []
    for deg in (10, 20, 40):
        shifter = GazeShifter(GazeConfig(), VMAX, AMAX)
        _, _, vs = _run(shifter, np.radians([deg, 0]))
        peaks.append(np.abs(vs[:, 0]).max())
        durations.append(shifter.plan.d)
    assert peaks[0] < peaks[1] < peaks[2] and durations[0] < durations[1] < durations[2]


def test_a_new_goal_mid_shift_is_reached_smoothly_without_overshoot():
    shifter = GazeShifter(GazeConfig(), VMAX, AMAX)
    shifter.aim(0.0, np.radians([40, 0]))
    shifter.aim(0.2, np.radians([20, 0]))  # changed its mind while turning
    ts = np.arange(0.2, 2.0, 0.005)
    ps = np.array([shifter.at(t)[0] for t in ts])
    assert ps[:, 0].max() <= math.radians(40)
    assert abs(ps[-1, 0] - math.radians(20)) < 1e-6


def test_pursuit_of_a_target_at_20_deg_per_s_lags_little():
    att = Attention(AttentionConfig())
    shifter = GazeShifter(GazeConfig(), VMAX, AMAX)
    speed = math.radians(20.0)
    errors = []
    for k in range(300):  # 3 s at 100 Hz, the target seen at 30 Hz
        t = k / 100
        if k % 3 == 0:
            att.offer(POINT, t, [-0.4 + speed * t, 0.0], t)
        _, d, v = att.choose(t)
        shifter.aim(t, d, v)
        errors.append((-0.4 + speed * t) - shifter.at(t)[0][0])
    lag_s = np.mean(errors[150:]) / speed  # after 1.5 s
    assert abs(lag_s) < 0.03, lag_s


def test_timar_rotation_is_applied_in_the_heads_frame():
    nod = np.array([0.0, 0.15, 0.05])  # pitch down, a little roll
    gaze = np.radians([40.0, 12.0])
    head = compose(gaze, nod)
    g = ypr_to_matrix(np.array([*gaze, 0.0]))
    relative = matrix_to_ypr(g.T @ ypr_to_matrix(head))
    np.testing.assert_allclose(relative, nod, atol=1e-12)  # the nod about the head's own axes
    np.testing.assert_allclose(compose(np.zeros(2), nod), nod, atol=1e-12)


def test_attention_ranks_the_speaker_first_and_switches_no_faster_than_the_dwell():
    att = Attention(AttentionConfig(min_dwell_s=1.0, stale_after_s=1.5))
    assert att.offer(POINT, 0.0, [0.3, 0.0], 0.0) is None
    assert att.choose(0.0)[0] == POINT
    att.offer(SOUND, 0.5, [-0.5, 0.0], 0.5)
    assert att.choose(0.5)[0] == POINT  # held: dwell not over
    att.offer(SOUND, 1.1, [-0.5, 0.0], 1.1)
    assert att.choose(1.1)[0] == SOUND  # the speaker, once the dwell is over
    # the speaker's direction jumps to another person: held until the dwell is over
    att.offer(SOUND, 1.3, [0.6, 0.0], 1.3)
    src, d, _ = att.choose(1.3)
    assert src == SOUND and d[0] == pytest.approx(-0.5)
    att.offer(SOUND, 2.2, [0.6, 0.0], 2.2)
    assert att.choose(2.2)[1][0] == pytest.approx(0.6)
    # nothing fresh: rest
    assert att.choose(2.2 + 1.6)[0] is None


@pytest.mark.parametrize(
    "stamp, direction, kind",
    [
        (0.0, [math.nan, 0.0], "invalid_targets"),
        (5.0, [0.1, 0.0], "future_targets"),
        (-5.0, [0.1, 0.0], "stale_targets"),
    ],
)
def test_bad_targets_are_refused_with_the_reason_and_counted(stamp, direction, kind):
    att = Attention()
    got, why = att.offer(POINT, stamp, direction, 0.0)
    assert got == kind and why
    assert att.counters.as_dict()[kind] == 1 and att.counters.targets == 0


def _aimer():
    return build_gaze(CFG, URDF, "base_link", "camera_link", AttentionConfig(), 1.2)[1]


def test_a_point_is_aimed_through_the_urdf_with_the_joints_of_its_stamp():
    aimer = _aimer()
    eye_height = 0.24  # base 0.05 + neck 0.07 + camera 0.12 (urdf)
    p = [1.5 * math.cos(0.5), 1.5 * math.sin(0.5), eye_height]
    np.testing.assert_allclose(aimer.point("base_link", p, 0.0), [0.5, 0.0], atol=1e-6)
    # a camera on the head saw the person straight ahead while the head was turned 0.3 rad
    aimer.record(1.0, {"neck_yaw": 0.3, "neck_pitch": 0.0})
    aimer.record(2.0, {"neck_yaw": -0.4, "neck_pitch": 0.0})
    np.testing.assert_allclose(aimer.point("camera_link", [1.0, 0, 0], 1.5), [0.3, 0], atol=1e-6)
    # the sound from 30 degrees left: the head looks there, level
    d = aimer.sound("mic_array_link", math.radians(30), 0.0, 2.0)
    np.testing.assert_allclose(d, [math.radians(30), 0.0], atol=1e-4)


def test_targets_beyond_the_joints_are_aimed_at_the_nearest_limit_and_unknown_frames_named():
    aimer = _aimer()
    behind_left = aimer.point("base_link", [-1.0, 0.2, 0.24], 0.0)
    assert behind_left[0] == pytest.approx(1.2)  # neck_yaw's max, on the side it is
    above = aimer.point("base_link", [0.5, 0.0, 3.0], 0.0)
    assert above[1] == pytest.approx(-0.5)  # neck_pitch's min: up as far as it goes
    with pytest.raises(UnknownFrame, match="unknown frame 'kinect'.*camera_link"):
        aimer.point("kinect", [1, 0, 0], 0.0)


def _nods(t):
    """TIMAR nods: FLAME head axis-angle [n, 3] (x = pitch) at 1.5 Hz, 0.12 rad."""
    rot = np.zeros((len(t), 3))
    rot[:, 0] = 0.12 * np.sin(2 * np.pi * 1.5 * t)
    return rot


def _play_nods(target_deg, headroom: bool):
    """Pitch offsets of the head from its gaze while nodding with a target; TIMAR's pitch."""
    cfg = CFG if headroom else _without_headroom()
    gaze, aimer = build_gaze(cfg, URDF, "base_link", "camera_link", AttentionConfig(), 1.2)
    player = MotionPlayer(cfg, gaze=gaze)
    fps = 25
    t = np.arange(0, 6.0, 1 / fps)
    player.add_block(0.0, 1 / fps, np.zeros((len(t), 50)), np.zeros((len(t), 3)), _nods(t))
    yaw, pitch = np.radians(target_deg)
    ts = np.arange(0.0, 6.0, 0.01)
    positions = []
    for now in ts:
        gaze.attention.offer(POINT, now, [yaw, pitch], now)
        positions.append(player.step(now))
    positions = np.array(positions)[200:]  # after the turn (2 s)
    g = gaze.shifter.at(ts[-1])[0]
    head = np.stack([positions[:, 0], positions[:, 1], positions[:, 2]], 1)
    rel = matrix_to_ypr(ypr_to_matrix(np.array([*g, 0.0])).T @ ypr_to_matrix(head))
    timar = _nods(ts[200:] - 0.05)[:, 0]  # FLAME x = REP-103 pitch; ~the smoothing's lag
    return rel[:, 1], timar


def _without_headroom():
    import dataclasses

    return dataclasses.replace(
        CFG, gaze=dataclasses.replace(CFG.gaze, yaw_headroom=0.0, pitch_headroom=0.0)
    )


@pytest.mark.parametrize("target_deg", [(0, 0), (40, 15), (80, 40)])
def test_nods_survive_on_top_of_the_gaze_and_near_the_limits(target_deg):
    rel, timar = _play_nods(target_deg, headroom=True)
    assert np.corrcoef(rel, timar)[0, 1] > 0.95
    assert np.std(rel) == pytest.approx(np.std(timar), rel=0.15)


def test_without_headroom_a_target_past_the_pitch_limit_cuts_the_nods():
    kept, timar = _play_nods((0, 40), headroom=True)
    cut, _ = _play_nods((0, 40), headroom=False)
    assert np.std(cut) < 0.75 * np.std(kept)  # half of each nod lost at the limit


def test_the_player_keeps_every_limit_while_the_gaze_jumps_around():
    gaze, _ = build_gaze(CFG, URDF, "base_link", "camera_link", AttentionConfig(min_dwell_s=0), 1.2)
    player = MotionPlayer(CFG, gaze=gaze)
    rng = np.random.default_rng(0)
    t = np.arange(0, 4.0, 0.04)
    player.add_block(0.0, 0.04, np.zeros((len(t), 50)), np.zeros((len(t), 3)), _nods(t) * 3)
    lim = CFG.limits()
    prev_p, prev_v = player.step(0.0), np.zeros(len(lim["min"]))
    for k, now in enumerate(np.arange(0.01, 4.0, 0.01)):
        if k % 40 == 0:  # a new person somewhere, even behind or above
            gaze.attention.offer(SOUND, now, rng.uniform(-3, 3, 2), now)
        p = player.step(now)
        v = (p - prev_p) / 0.01
        assert ((p >= lim["min"] - 1e-9) & (p <= lim["max"] + 1e-9)).all()
        assert (np.abs(v) <= lim["max_velocity"] + 1e-6).all()
        assert (np.abs(v - prev_v) / 0.01 <= lim["max_acceleration"] + 1e-6).all()
        prev_p, prev_v = p, v


def test_nod_survival_figures_keep_the_nods_with_the_shift_and_lose_them_with_the_clip():
    from timar_ros.eval.gaze_figures import nod_survival

    t = np.arange(0, 5.0, 0.04)
    motion = np.zeros((len(t), 56), np.float32)
    motion[:, 53:] = _nods(t) + np.stack([0 * t, 0 * t, 0.05 * np.sin(2 * np.pi * 0.7 * t)], 1)
    rows = nod_survival(CFG, motion, 0.04, targets=((90.0, 40.0),))
    shift, clip = (next(r for r in rows if r["saturation"] == s) for s in ("shift", "clip"))
    assert shift["pitch"]["corr"] > 0.99 and abs(shift["pitch"]["std_ratio"] - 1) < 0.05
    assert clip["pitch"]["std_ratio"] < 0.8  # the nods cut at the pitch limit


def test_the_per_tick_closed_form_is_the_matrix_product():
    rng = np.random.default_rng(1)
    for _ in range(500):
        g, m = rng.uniform(-1.3, 1.3, 2), rng.uniform(-0.8, 0.8, 3)
        np.testing.assert_allclose(compose(g, m), compose(g[None], m[None])[0], atol=1e-12)


def test_the_jaw_brows_eyelids_and_lips_are_the_same_with_and_without_a_target():
    rng = np.random.default_rng(2)
    t = np.arange(0, 3.0, 0.04)
    exp, jaw = rng.normal(0, 1, (len(t), 50)), np.abs(rng.normal(0, 0.1, (len(t), 3)))
    face = [k for k, n in enumerate(CFG.joint_names) if not n.startswith("neck_")]
    out = []
    for with_target in (False, True):
        gaze, _ = build_gaze(CFG, URDF, "base_link", "camera_link", AttentionConfig(), 1.2)
        player = MotionPlayer(CFG, gaze=gaze)
        player.add_block(0.0, 0.04, exp, jaw, _nods(t))
        rows = []
        for now in np.arange(0, 3.0, 0.01):
            if with_target:
                gaze.attention.offer(POINT, now, [0.8, 0.2], now)
            rows.append(player.step(now))
        out.append(np.array(rows))
    np.testing.assert_array_equal(out[0][:, face], out[1][:, face])
    assert np.abs(out[0][:, 0] - out[1][:, 0]).max() > 0.5  # the neck did turn
