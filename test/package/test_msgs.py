"""The messages are an API: their fields, their checks and their wire format."""

import json
from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message

from timar_ros.msg import AudioChunk, ConversationState, HeadMotion
from timar_ros.nodes.convert import audio_samples, float32_seq, head_motion, motion_frames

REPO = Path(__file__).resolve().parents[2]


def test_audio_chunk_round_trips_through_cdr():
    msg = AudioChunk()
    msg.header.stamp.sec = 12
    msg.header.stamp.nanosec = 340_000_000
    msg.header.frame_id = "user"
    msg.sample_rate = 16000
    msg.channels = 1
    msg.seq = 7
    samples = np.linspace(-1, 1, 1600, dtype=np.float32)
    msg.samples = float32_seq(samples)
    back = deserialize_message(serialize_message(msg), AudioChunk)
    assert back.header.stamp.sec == 12 and back.header.stamp.nanosec == 340_000_000
    assert (back.header.frame_id, back.sample_rate, back.channels, back.seq) == (
        "user",
        16000,
        1,
        7,
    )
    np.testing.assert_array_equal(np.asarray(back.samples, dtype=np.float32), samples)


def test_head_motion_round_trips_through_cdr():
    n = 25
    rng = np.random.default_rng(0)
    exp, jaw, rot = (rng.standard_normal((n, k)).astype(np.float32) for k in (50, 3, 3))
    msg = HeadMotion(frame_period=0.04, num_frames=n, turn_index=3, model_id="robot@abc123")
    msg.expression, msg.jaw, msg.head_rotation = (float32_seq(a) for a in (exp, jaw, rot))
    back = deserialize_message(serialize_message(msg), HeadMotion)
    assert back.num_frames == n and back.turn_index == 3 and back.model_id == "robot@abc123"
    assert back.frame_period == pytest.approx(0.04)
    np.testing.assert_array_equal(np.asarray(back.expression).reshape(n, 50), exp)
    np.testing.assert_array_equal(np.asarray(back.jaw).reshape(n, 3), jaw)
    np.testing.assert_array_equal(np.asarray(back.head_rotation).reshape(n, 3), rot)


def test_conversation_state_fields():
    msg = ConversationState(
        turn_index=5,
        turn_duration=1.0,
        user_speaking=True,
        policy_latency_ms=12.5,
        user_padded_s=0.2,
        late_chunks=1,
    )
    back = deserialize_message(serialize_message(msg), ConversationState)
    assert back.turn_index == 5 and back.user_speaking and not back.agent_speaking
    assert back.policy_latency_ms == pytest.approx(12.5) and back.late_chunks == 1


def test_field_types_are_checked():
    # ROS_PYTHON_CHECK_FIELDS=1 (set by conftest/Makefile): wrong types raise instead of
    # being silently coerced.
    msg = AudioChunk()
    with pytest.raises(AssertionError):
        msg.sample_rate = "16000"
    with pytest.raises(AssertionError):
        msg.channels = 300


def test_every_msg_file_is_built_and_documented():
    cmake = (REPO / "CMakeLists.txt").read_text()
    for msg_file in sorted((REPO / "msg").glob("*.msg")):
        assert f'"msg/{msg_file.name}"' in cmake, (
            f"{msg_file.name} is not in rosidl_generate_interfaces"
        )
        text = msg_file.read_text()
        # Every field (or group of adjacent fields) follows a comment: fields are an API and their
        # units are documented.
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.strip() and not line.lstrip().startswith("#"):
                j = i
                while j > 0 and lines[j - 1].strip() and not lines[j - 1].lstrip().startswith("#"):
                    j -= 1
                assert j > 0 and lines[j - 1].lstrip().startswith("#"), (
                    f"{msg_file.name}: '{line}' has no comment"
                )
        assert "stamp" in text and "std_msgs/Header header" in text


def test_type_hash_matches_rosbags_parse_of_the_msg_text():
    # The rosidl build writes share/timar_ros/msg/<Type>.json with the RIHS01 type hash; rosbags
    # (used for bags) must compute the same hash from the .msg text, or recorded bags would not
    # match live topics in ROS 2 tools.
    import sys

    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    venv_share = Path(sys.prefix) / "share" / "timar_ros" / "msg"
    store = get_typestore(Stores.ROS2_KILTED)
    for msg_file in sorted((REPO / "msg").glob("*.msg")):
        store.register(get_types_from_msg(msg_file.read_text(), f"timar_ros/msg/{msg_file.stem}"))
    for msg_file in sorted((REPO / "msg").glob("*.msg")):
        built = json.loads((venv_share / f"{msg_file.stem}.json").read_text())
        want = built["type_hashes"][0]["hash_string"]
        assert store.hash_rihs01(f"timar_ros/msg/{msg_file.stem}") == want


def test_head_motion_conversion_keeps_the_motion_vector_order():
    frames = np.arange(4 * 56, dtype=np.float32).reshape(4, 56)
    msg = head_motion(frames, stamp_s=3.25, turn_index=2, model_id="m")
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (3, 250_000_000)
    np.testing.assert_array_equal(np.asarray(msg.jaw).reshape(4, 3), frames[:, 50:53])
    np.testing.assert_array_equal(motion_frames(msg), frames)
    with pytest.raises(ValueError, match=r"\[N, 56\]"):
        head_motion(frames[:, :55], 0.0, 0, "m")


def test_audio_samples_are_frames_and_a_torn_buffer_is_an_error():
    x = np.arange(8, dtype=np.float32)
    msg = AudioChunk(sample_rate=16000, channels=2, samples=float32_seq(x))
    np.testing.assert_array_equal(audio_samples(msg), x.reshape(4, 2))  # interleaved L R L R ...
    msg.samples = float32_seq(x[:7])
    with pytest.raises(ValueError, match="7 samples, not a whole number of 2-channel frames"):
        audio_samples(msg)
