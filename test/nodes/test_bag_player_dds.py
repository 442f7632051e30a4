"""bag_player replays a bag onto live topics (wire bytes, paced by log time, with /clock), and
bag_recorder records live topics into a bag that reads back identically."""

import numpy as np
from rosgraph_msgs.msg import Clock

from helpers.ros import spin_until, start_python, stop
from timar_ros import bags
from timar_ros.msg import AudioChunk, HeadMotion
from timar_ros.nodes.convert import audio_samples, motion_frames, stamp_to_s


def _write_bag(path):
    rng = np.random.default_rng(0)
    audio = [rng.uniform(-1, 1, 1600).astype(np.float32) for _ in range(10)]
    motion = [rng.standard_normal((25, 56)).astype(np.float32) for _ in range(2)]
    with bags.BagWriter(path) as w:
        for k, a in enumerate(audio):
            t = 5_000_000_000 + k * 100_000_000
            w.write("/replay/user/audio", bags.audio_chunk_msg(t, a, 16000, seq=k))
        for k, m in enumerate(motion):
            w.write(
                "/replay/ground_truth/head_motion",
                bags.head_motion_msg(5_000_000_000 + k * 10**9, 0.04, m, turn_index=k),
            )
    return audio, motion


def _start_player(bag, *params: str):
    """bag_player on ``bag`` with ``-p`` for each 'name:=value' in ``params``."""
    args = ["-m", "timar_ros.nodes.bag_player", "--ros-args", "-p", f"bag:={bag}"]
    for p in params:
        args += ["-p", p]
    return start_python(args)


def test_replay_and_record_round_trip(tmp_path, ros_probe):
    audio, motion = _write_bag(tmp_path / "in")
    node = ros_probe.node
    got = {"audio": [], "motion": [], "clock": []}
    qos = ros_probe.qos(1000)
    node.create_subscription(AudioChunk, "/replay/user/audio", got["audio"].append, qos)
    node.create_subscription(
        HeadMotion, "/replay/ground_truth/head_motion", got["motion"].append, qos
    )
    node.create_subscription(Clock, "/clock", got["clock"].append, 100)
    recorder = start_python(
        [
            "-m",
            "timar_ros.nodes.bag_recorder",
            "--ros-args",
            "-r",
            "__ns:=/replay",
            "-p",
            f"output:={tmp_path / 'out'}",
            "-p",
            "topics:=[user/audio, ground_truth/head_motion]",
        ]
    )
    # played once both this probe and the recorder listen (the probe may have everything while
    # the recorder is still starting)
    player = _start_player(
        tmp_path / "in",
        "rate:=4.0",
        "publish_clock:=true",
        "wait_for_subscribers:=2",
        "start_delay_s:=0.5",
    )
    try:
        ok = spin_until(node, lambda: len(got["audio"]) == 10 and len(got["motion"]) == 2, 30)
        spin_until(node, lambda: False, 0.5)
    finally:
        out = stop(player) + stop(recorder)
    assert ok, out
    for k, msg in enumerate(got["audio"]):
        np.testing.assert_array_equal(audio_samples(msg)[:, 0], audio[k])
        assert stamp_to_s(msg.header.stamp) == 5.0 + 0.1 * k and msg.seq == k
    for k, msg in enumerate(got["motion"]):
        np.testing.assert_array_equal(motion_frames(msg), motion[k])
    clock = np.array([stamp_to_s(c.clock) for c in got["clock"]])
    assert clock.min() >= 5.0 and clock.max() >= 5.9 and (np.diff(clock) >= 0).all()
    # The recorder wrote what it received, readable by rosbags.
    samples, rate, _ = bags.read_audio(tmp_path / "out", "/replay/user/audio")
    assert rate == 16000
    np.testing.assert_array_equal(samples, np.concatenate(audio))


def test_missing_topic_is_a_clear_error(tmp_path):
    _write_bag(tmp_path / "in")
    proc = _start_player(tmp_path / "in", "topics:=[/nope]")
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 2 and "/nope" in out and str(tmp_path / "in") in out


def test_waiting_for_subscribers_says_on_which_topics(tmp_path, ros_probe):
    """wait_for_subscribers holds playback back until every played topic has a subscriber; the
    player says which topics lack them, and plays once they come (here: the ground truth has none
    until the probe subscribes to it)."""
    _write_bag(tmp_path / "in")
    got = ros_probe.collect(AudioChunk, "/replay/user/audio")
    player = _start_player(tmp_path / "in", "wait_for_subscribers:=1", "start_delay_s:=0.0")
    try:
        ros_probe.spin_for(4.0)
        held = len(got)
        ros_probe.collect(HeadMotion, "/replay/ground_truth/head_motion")
        assert ros_probe.spin_until(lambda: len(got) == 10, 30)
    finally:
        out = stop(player)
    assert held == 0, out
    assert "waiting for 1 subscriber(s)" in out and "/replay/ground_truth/head_motion has 0" in out
