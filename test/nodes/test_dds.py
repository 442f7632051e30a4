"""Real DDS between processes: AudioChunk from the audio_file_player node, HeadMotion both ways,
and a params YAML loaded into a node with --ros-args --params-file."""

import time

import numpy as np
import pytest
import soundfile as sf

from helpers.ros import REPO, RosProbe, spin_until, start_python, stop
from timar_ros.msg import AudioChunk, HeadMotion
from timar_ros.nodes.convert import audio_samples, head_motion, stamp_to_s


@pytest.fixture
def ros_node(ros_probe):
    return ros_probe.node


CHUNK_S = float(
    __import__("timar_ros.resources").resources.node_defaults("audio_file_player")["chunk_s"]
)


def _stereo_wav(path, seconds=1.2, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    user = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    agent = (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    sf.write(path, np.stack([user, agent], axis=1), rate, subtype="FLOAT")
    return user, agent


def _collect_audio(node, ns):
    got = {"user": [], "agent": []}
    qos = RosProbe.qos(100)
    node.create_subscription(AudioChunk, f"{ns}/user/audio", got["user"].append, qos)
    node.create_subscription(AudioChunk, f"{ns}/agent/audio", got["agent"].append, qos)
    return got


def test_audio_file_player_streams_the_wav_over_dds(ros_node, tmp_path):
    user, agent = _stereo_wav(tmp_path / "conv.wav")
    got = _collect_audio(ros_node, "/dds_audio")
    proc = start_python(
        [
            "-m",
            "timar_ros.nodes.audio_file_player",
            "--ros-args",
            "--params-file",
            str(REPO / "config" / "timar.yaml"),
            "-p",
            f"stereo_wav:={tmp_path / 'conv.wav'}",
            "-p",
            "playback_rate:=4.0",
            "-p",
            "wait_for_subscribers:=1",
            "-r",
            "__ns:=/dds_audio",
        ]
    )
    try:
        n_chunks = round(1.2 / CHUNK_S)  # 1.2 s in the default chunks (config/timar.yaml)
        ok = spin_until(
            ros_node, lambda: len(got["user"]) >= n_chunks and len(got["agent"]) >= n_chunks, 30
        )
    finally:
        out = stop(proc)
    assert ok, f"received {len(got['user'])}/{len(got['agent'])} chunks; node output:\n{out}"
    for role, ref in (("user", user), ("agent", agent)):
        msgs = got[role]
        assert [m.seq for m in msgs] == list(range(n_chunks))
        assert all(
            m.sample_rate == 16000 and m.channels == 1 and m.header.frame_id == role for m in msgs
        )
        np.testing.assert_array_equal(np.concatenate([audio_samples(m)[:, 0] for m in msgs]), ref)
        stamps = np.array([stamp_to_s(m.header.stamp) for m in msgs])
        # Stamps follow the audio timeline (first sample of each chunk), whatever the playback rate.
        np.testing.assert_allclose(np.diff(stamps), CHUNK_S, atol=1e-6)


def test_params_file_overrides_the_defaults(ros_node, tmp_path):
    _stereo_wav(tmp_path / "conv.wav", seconds=0.5)
    params = tmp_path / "robot.yaml"
    params.write_text(
        "/**/audio_file_player:\n  ros__parameters:\n"
        f"    stereo_wav: {tmp_path / 'conv.wav'}\n    chunk_s: 0.025\n    start_delay_s: 0.5\n"
        "    wait_for_subscribers: 1\n"
    )
    got = _collect_audio(ros_node, "/dds_params")
    proc = start_python(
        [
            "-m",
            "timar_ros.nodes.audio_file_player",
            "--ros-args",
            "--params-file",
            str(params),
            "-r",
            "__ns:=/dds_params",
        ]
    )
    try:
        ok = spin_until(ros_node, lambda: len(got["user"]) >= 20, 30)
    finally:
        out = stop(proc)
    assert ok, out
    assert {len(audio_samples(m)) for m in got["user"][:19]} == {400}  # 0.025 s at 16 kHz


def test_bad_params_give_a_clear_error(tmp_path):
    proc = start_python(
        [
            "-m",
            "timar_ros.nodes.audio_file_player",
            "--ros-args",
            "-p",
            f"stereo_wav:={tmp_path / 'missing.wav'}",
        ]
    )
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 2
    assert "audio_file_player: cannot start: audio file not found" in out and "missing.wav" in out
    assert "Traceback" not in out


def test_head_motion_crosses_processes(ros_node):
    proc = start_python(["test/helpers/echo_motion.py", "3"])
    try:
        assert proc.stdout.readline().strip() == "ready"
        pub = ros_node.create_publisher(HeadMotion, "timar_test/head_motion", 10)
        spin_until(ros_node, lambda: pub.get_subscription_count() > 0, 20)
        rng = np.random.default_rng(1)
        sent = []
        for turn in range(3):
            frames = rng.standard_normal((25, 56)).astype(np.float32)
            sent.append(f"turn={turn} frames=25 sum={float(np.sum(frames, dtype=np.float64)):.6f}")
            pub.publish(head_motion(frames, stamp_s=1.0 + turn, turn_index=turn, model_id="test"))
            time.sleep(0.05)
        out, _ = proc.communicate(timeout=20)
    finally:
        stop(proc)
    assert out.split("\n")[:3] == sent
