"""The reaction latency read from a bag: the partner's pause (audio stamps) -> the start of the
next nod on the neck_pitch servo command (joint_states stamps), display delay included."""

import numpy as np
import pytest

from timar_ros import bags as B
from timar_ros import topics
from timar_ros.eval.reaction_latency import servo_reaction_latency

NS = 1_000_000_000
T0 = 100 * NS  # bag clock of the partner's first sample
JOINTS = ["neck_yaw", "neck_pitch", "neck_roll", "jaw"]


def _speech(seconds: float, on: list[tuple[float, float]], rng) -> np.ndarray:
    x = 1e-4 * rng.standard_normal(int(seconds * 16000)).astype(np.float32)
    t = np.arange(len(x)) / 16000
    for a, b in on:
        m = (t >= a) & (t < b)
        x[m] += 0.3 * np.sin(2 * np.pi * 180 * t[m]) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t[m]))
    return x


def _bag(path, nods_s: list[float], agent_on=()):
    rng = np.random.default_rng(0)
    user = _speech(12.0, [(0.5, 3.0), (5.0, 8.0)], rng)  # pauses start at 3.0 s and 8.0 s
    agent = _speech(12.0, list(agent_on), rng)  # by default the robot only listens
    with B.BagWriter(path) as w:
        for name, x in ((topics.USER_AUDIO, user), (topics.AGENT_AUDIO, agent)):
            for k in range(0, len(x), 800):
                stamp = T0 + k * NS // 16000
                w.write(f"/timar/{name}", B.audio_chunk_msg(stamp, x[k : k + 800], 16000), stamp)
        for i in range(1200):  # 100 Hz servo commands for 12 s
            t = i / 100
            pitch = sum(
                0.1 * np.sin(np.pi * (t - s) / 0.6) ** 2 for s in nods_s if s <= t < s + 0.6
            )
            stamp = T0 + i * NS // 100
            w.write(
                f"/timar/{topics.JOINT_STATES}",
                B.joint_state_msg(stamp, JOINTS, [0.0, pitch, 0.0, 0.0]),
                stamp,
            )


def test_latency_from_pause_to_servo_nod(tmp_path):
    _bag(tmp_path / "b", nods_s=[4.5, 9.6])  # 1.5 s and 1.6 s after the pauses
    r = servo_reaction_latency(tmp_path / "b")
    assert r["pauses"] == 2 and r["reactions"] == 2
    assert r["latencies_s"] == pytest.approx([1.5, 1.6], abs=0.09)
    assert r["median_s"] == pytest.approx(1.55, abs=0.09)


def test_the_robots_speech_on_the_clock_it_is_heard_on(tmp_path):
    """A nod shown 4.0-4.6 s; the robot's agent/audio has speech from 4.1 s on its stamps. Heard
    then (voice_player's stamps), the robot was already speaking: no listener reaction. As the
    speech's own timeline in a run that shows the lips 0.5 s late (the plain demo), its voice
    is heard from 4.6 s: the nod came while it listened, 1.0 s after the pause at 3.0 s."""
    _bag(tmp_path / "b", nods_s=[4.0], agent_on=[(4.1, 6.0)])
    assert servo_reaction_latency(tmp_path / "b")["latencies_s"] == []
    r = servo_reaction_latency(tmp_path / "b", agent_heard_after_s=0.5)
    assert r["latencies_s"] == pytest.approx([1.0], abs=0.09)


def test_no_reaction_and_missing_joint(tmp_path):
    _bag(tmp_path / "b", nods_s=[])
    r = servo_reaction_latency(tmp_path / "b")
    assert r["latencies_s"] == [] and r["median_s"] is None and r["pauses"] == 2
    with pytest.raises(B.BagError, match="'head_tilt' not in joint_states"):
        servo_reaction_latency(tmp_path / "b", roll_joint="head_tilt")


def test_rules_own_lag_with_the_same_detector(tmp_path):
    """The rules' targets read the same way: a nod put 0.3 s after a pause is found 0.3 s after
    it (the figure a servo latency is read against)."""
    from timar_ros.data.audio import write_wav
    from timar_ros.data.dualtalk_files import save_motion
    from timar_ros.eval.reaction_latency import rules_reaction_latency

    rng = np.random.default_rng(1)
    user = _speech(12.0, [(0.5, 3.0), (5.0, 8.0)], rng)
    write_wav(tmp_path / "u.wav", user)
    write_wav(tmp_path / "a.wav", _speech(12.0, [], rng))
    t = np.arange(12 * 25) / 25
    motion = np.zeros((len(t), 56), np.float32)
    for s in (3.3, 8.3):
        on = (t >= s) & (t < s + 0.6)
        motion[on, 53] = 0.1 * np.sin(np.pi * (t[on] - s) / 0.6) ** 2
    save_motion(tmp_path / "a.npz", motion)
    r = rules_reaction_latency(tmp_path / "u.wav", tmp_path / "a.wav", tmp_path / "a.npz")
    assert r["pauses"] == 2 and r["latencies_s"] == pytest.approx([0.3, 0.3], abs=0.09)
