"""rosbag2 I/O (timar_ros.bags): round trips of every message we write, read back by rosbags and
by the independent mcap + mcap-ros2-support readers; sqlite3 storage; clear errors for damaged
bags, missing topics and unknown types."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from timar_ros import bags as B

NS = 1_000_000_000
TOPICS = {
    "audio": "/timar/user/audio",
    "motion": "/timar/head_motion",
    "state": "/timar/conversation_state",
    "joints": "/timar/joint_states",
    "quat": "/timar/head_orientation",
}


def _content(seed=0):
    """The messages of the round-trip bag as records (what must come back)."""
    rng = np.random.default_rng(seed)
    audio = [
        B.AudioRecord(
            NS + i * NS // 10, rng.uniform(-1, 1, 1600).astype(np.float32), 16000, 1, i, "user"
        )
        for i in range(12)
    ]
    audio.append(
        B.AudioRecord(
            NS + 12 * NS // 10, rng.uniform(-1, 1, 800).astype(np.float32), 16000, 2, 12, "user"
        )
    )
    motion = [
        B.MotionRecord(
            NS + k * NS,
            0.04,
            rng.normal(size=(25, 56)).astype(np.float32),
            k,
            "timar-test@abc",
            "flame_head",
        )
        for k in range(3)
    ]
    state = dict(
        turn_index=7,
        turn_duration=1.0,
        user_voice_fraction=0.5,
        agent_voice_fraction=0.25,
        user_speaking=True,
        agent_speaking=False,
        history_turns=7,
        policy_latency_ms=12.5,
        deadline_missed=True,
        user_padded_s=0.125,
        agent_padded_s=0.0,
        dropped_audio_s=0.5,
        late_chunks=2,
        duplicate_chunks=1,
        invalid_chunks=3,
        skipped_turns=1,
    )
    joints = B.JointStateRecord(
        NS + 40_000_000,
        ["neck_yaw", "neck_pitch", "jaw"],
        np.array([0.1, -0.2, 0.3]),
        np.array([1.0, 2.0, 3.0]),
        np.zeros(0),
        "base",
    )
    quat = B.QuaternionRecord(NS + 40_000_000, np.array([0.0, 0.1, 0.0, np.sqrt(1 - 0.01)]), "head")
    return audio, motion, state, joints, quat


def _write(path, storage="mcap"):
    audio, motion, state, joints, quat = _content()
    with B.BagWriter(path, storage=storage, custom_data={"timar.test": "yes"}) as w:
        for a in audio:
            w.write(
                TOPICS["audio"],
                B.audio_chunk_msg(
                    a.stamp_ns,
                    a.samples,
                    a.sample_rate,
                    channels=a.channels,
                    seq=a.seq,
                    frame_id=a.frame_id,
                ),
            )
        for m in motion:
            w.write(
                TOPICS["motion"],
                B.head_motion_msg(
                    m.stamp_ns,
                    m.frame_period,
                    m.motion,
                    turn_index=m.turn_index,
                    model_id=m.model_id,
                    frame_id=m.frame_id,
                ),
            )
        w.write(TOPICS["state"], B.conversation_state_msg(2 * NS, frame_id="timar", **state))
        w.write(
            TOPICS["joints"],
            B.joint_state_msg(
                joints.stamp_ns,
                joints.names,
                joints.position,
                joints.velocity,
                frame_id=joints.frame_id,
            ),
        )
        w.write(
            TOPICS["quat"],
            B.quaternion_stamped_msg(quat.stamp_ns, quat.xyzw, frame_id=quat.frame_id),
        )
    return audio, motion, state, joints, quat


@pytest.fixture(scope="module")
def mcap_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "roundtrip"
    return path, _write(path)


def _assert_same_audio(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert (g.stamp_ns, g.sample_rate, g.channels, g.seq, g.frame_id) == (
            w.stamp_ns,
            w.sample_rate,
            w.channels,
            w.seq,
            w.frame_id,
        )
        assert g.samples.dtype == np.float32 and np.array_equal(g.samples, w.samples)


def _assert_same_motion(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert (g.stamp_ns, g.frame_period, g.turn_index, g.model_id, g.frame_id) == (
            w.stamp_ns,
            w.frame_period,
            w.turn_index,
            w.model_id,
            w.frame_id,
        )
        assert g.motion.shape == (25, 56) and np.array_equal(g.motion, w.motion)


def _check_rosbags(path, content):
    audio, motion, state, joints, quat = content
    with B.BagReader(path) as r:
        assert {t: i.msgtype for t, i in r.topics.items()} == {
            TOPICS["audio"]: B.AUDIO_CHUNK,
            TOPICS["motion"]: B.HEAD_MOTION,
            TOPICS["state"]: B.CONVERSATION_STATE,
            TOPICS["joints"]: B.JOINT_STATE,
            TOPICS["quat"]: B.QUATERNION_STAMPED,
        }
        assert r.custom_data.get("timar.test") == "yes"
        _assert_same_audio(r.records(TOPICS["audio"]), audio)
        _assert_same_motion(r.records(TOPICS["motion"]), motion)
        (s,) = r.records(TOPICS["state"])
        assert s.pop("stamp_ns") == 2 * NS and s.pop("frame_id") == "timar"
        assert s == pytest.approx(state) and set(s) == set(state)
        (j,) = r.records(TOPICS["joints"])
        assert (j.stamp_ns, j.names, j.frame_id) == (joints.stamp_ns, joints.names, joints.frame_id)
        assert np.array_equal(j.position, joints.position) and np.array_equal(
            j.velocity, joints.velocity
        )
        assert j.effort.size == 0
        (q,) = r.records(TOPICS["quat"])
        assert (
            q.stamp_ns == quat.stamp_ns
            and q.frame_id == "head"
            and np.array_equal(q.xyzw, quat.xyzw)
        )
        # log time = header stamp
        for _, _, t_ns, msg in r.messages([TOPICS["audio"]]):
            assert t_ns == B.stamp_ns(msg)


def test_typestore_finds_our_messages():
    assert (B.find_msg_dir() / "HeadMotion.msg").is_file()
    ts = B.typestore()
    for t in (
        B.AUDIO_CHUNK,
        B.HEAD_MOTION,
        B.CONVERSATION_STATE,
        B.JOINT_STATE,
        B.QUATERNION_STAMPED,
    ):
        assert t in ts.types


def test_round_trip_mcap_rosbags(mcap_bag):
    path, content = mcap_bag
    assert len(list(path.glob("*.mcap"))) == 1
    meta = (path / "metadata.yaml").read_text()
    assert "version: 9" in meta and "storage_identifier: mcap" in meta
    _check_rosbags(path, content)


def test_round_trip_sqlite3(tmp_path):
    path = tmp_path / "rt_sqlite"
    content = _write(path, storage="sqlite3")
    (db,) = path.glob("*.db3")
    _check_rosbags(path, content)
    # Independently: the rosbag2 sqlite3 schema holds every message.
    with sqlite3.connect(db) as con:
        n = con.execute("select count(*) from messages").fetchone()[0]
        types = dict(con.execute("select name, type from topics").fetchall())
    assert n == 13 + 3 + 3 and types[TOPICS["motion"]] == B.HEAD_MOTION


def test_round_trip_independent_mcap_reader(mcap_bag):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    path, (audio, motion, state, joints, quat) = mcap_bag
    (f,) = path.glob("*.mcap")
    got: dict[str, list] = {}
    with open(f, "rb") as fh:
        reader = make_reader(fh, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == "ros2"
        for schema, channel, message, decoded in reader.iter_decoded_messages():
            assert schema.encoding == "ros2msg" and channel.message_encoding == "cdr"
            stamp = decoded.header.stamp.sec * NS + decoded.header.stamp.nanosec
            assert message.log_time == stamp
            got.setdefault(channel.topic, []).append((schema.name, decoded))
        assert any(m.name == "rosbag2" for m in reader.iter_metadata())
    assert {t: v[0][0] for t, v in got.items()} == {
        TOPICS["audio"]: B.AUDIO_CHUNK,
        TOPICS["motion"]: B.HEAD_MOTION,
        TOPICS["state"]: B.CONVERSATION_STATE,
        TOPICS["joints"]: B.JOINT_STATE,
        TOPICS["quat"]: B.QUATERNION_STAMPED,
    }
    assert len(got[TOPICS["audio"]]) == len(audio)
    for (_, d), a in zip(got[TOPICS["audio"]], audio):
        assert (d.sample_rate, d.channels, d.seq, d.header.frame_id) == (
            a.sample_rate,
            a.channels,
            a.seq,
            a.frame_id,
        )
        assert np.array_equal(np.asarray(d.samples, np.float32), a.samples)
    for (_, d), m in zip(got[TOPICS["motion"]], motion):
        n = d.num_frames
        arr = np.concatenate(
            [
                np.asarray(d.expression, np.float32).reshape(n, 50),
                np.asarray(d.jaw, np.float32).reshape(n, 3),
                np.asarray(d.head_rotation, np.float32).reshape(n, 3),
            ],
            axis=1,
        )
        assert np.array_equal(arr, m.motion)
        assert (d.frame_period, d.turn_index, d.model_id) == (
            m.frame_period,
            m.turn_index,
            m.model_id,
        )
    ((_, s),) = got[TOPICS["state"]]
    assert {k: getattr(s, k) for k in state} == pytest.approx(state)
    ((_, j),) = got[TOPICS["joints"]]
    assert list(j.name) == joints.names and np.array_equal(j.position, joints.position)
    ((_, q),) = got[TOPICS["quat"]]
    assert np.array_equal(
        [q.quaternion.x, q.quaternion.y, q.quaternion.z, q.quaternion.w], quat.xyzw
    )


def test_type_hashes_match_rosidl(mcap_bag):
    """metadata.yaml's type_description_hash equals the rosidl build's (when it is present)."""
    import json
    from pathlib import Path

    path, _ = mcap_bag
    meta = (path / "metadata.yaml").read_text()
    share = Path(sys.prefix) / "share" / "timar_ros" / "msg"
    if not (share / "HeadMotion.json").exists():
        pytest.skip("no rosidl build of timar_ros in this environment (make msgs)")
    for name in ("AudioChunk", "HeadMotion", "ConversationState"):
        js = json.loads((share / f"{name}.json").read_text())
        h = js["type_hashes"][0]["hash_string"]
        assert h in meta, name


def test_concat_places_blocks_on_their_stamps():
    a = [
        B.AudioRecord(NS, np.ones(1600, np.float32), 16000),
        B.AudioRecord(NS + NS // 5, np.full(1600, 2, np.float32), 16000),
    ]
    samples, rate, start = B.concat_audio(a)
    assert (rate, start, len(samples)) == (16000, NS, 4800)
    assert (
        samples[:1600].tolist() == [1] * 1600
        and not samples[1600:3200].any()
        and (samples[3200:] == 2).all()
    )
    m0, m1 = np.zeros((25, 56), np.float32), np.ones((25, 56), np.float32)
    m0[-1] = 5
    motion, period, start = B.concat_motion(
        [B.MotionRecord(NS + 2 * NS, 0.04, m1), B.MotionRecord(NS, 0.04, m0)]
    )
    assert motion.shape == (75, 56) and period == 0.04 and start == NS
    assert (motion[25:50] == 5).all() and (motion[50:] == 1).all()  # gap holds the last frame


# ---------------------------------------------------------------------------- errors (issue 8.4)


def test_missing_topic_names_bag_and_topics(mcap_bag):
    path, _ = mcap_bag
    with pytest.raises(B.BagError) as e:
        B.read_motion(path, "/timar/ground_truth/head_motion")
    msg = str(e.value)
    assert (
        str(path) in msg
        and "/timar/ground_truth/head_motion" in msg
        and "/timar/head_motion" in msg
    )
    with pytest.raises(B.BagError, match="expected timar_ros/msg/HeadMotion"):
        B.read_motion(path, TOPICS["audio"])


def test_truncated_bag_gives_clear_error(mcap_bag, tmp_path):
    import shutil

    src, _ = mcap_bag
    for cut in (0.5, 0.9):
        dst = tmp_path / f"cut{cut}"
        shutil.copytree(src, dst)
        (f,) = dst.glob("*.mcap")
        data = f.read_bytes()
        f.write_bytes(data[: int(len(data) * cut)])
        with pytest.raises(B.BagError) as e:
            B.read_motion(dst, TOPICS["motion"])
        assert str(dst) in str(e.value) and "truncated or corrupt" in str(e.value)


def test_corrupt_bag_gives_clear_error(mcap_bag, tmp_path):
    import shutil

    src, _ = mcap_bag
    dst = tmp_path / "garbage"
    shutil.copytree(src, dst)
    (f,) = dst.glob("*.mcap")
    data = bytearray(f.read_bytes())
    rng = np.random.default_rng(1)
    data[8:-8] = rng.integers(0, 256, len(data) - 16, dtype=np.uint8).tobytes()
    f.write_bytes(bytes(data))
    with pytest.raises(B.BagError, match="truncated or corrupt"):
        with B.BagReader(dst) as r:
            list(r.messages())
    # metadata.yaml missing
    dst2 = tmp_path / "nometa"
    shutil.copytree(src, dst2)
    (dst2 / "metadata.yaml").unlink()
    with pytest.raises(B.BagError, match="no metadata.yaml"):
        B.bag_info(dst2)
    with pytest.raises(B.BagError, match="bag not found"):
        B.bag_info(tmp_path / "nope")


def test_cli_info_reports_errors_without_traceback(mcap_bag, tmp_path):
    path, _ = mcap_bag
    out = subprocess.run(
        [sys.executable, "-m", "timar_ros.cli", "bag", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert TOPICS["motion"] in out.stdout and "timar_ros/msg/HeadMotion" in out.stdout
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metadata.yaml").write_text(
        "rosbag2_bagfile_information: {version: 9, storage_identifier: mcap\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "timar_ros.cli", "bag", "info", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert str(bad) in out.stderr and "truncated or corrupt" in out.stderr


def test_unknown_message_type_errors(tmp_path):
    with pytest.raises(B.BagError, match="unknown message type 'foo_msgs/msg/Bar'"):
        B.msg_class("foo_msgs/msg/Bar")
    with B.BagWriter(tmp_path / "u") as w:
        with pytest.raises(B.BagError, match="unknown message type"):
            w.write_raw("/x", "foo_msgs/msg/Bar", b"\x00\x01\x00\x00", 1)
        String = B.msg_class("std_msgs/msg/String")
        w.write("/chatter", String(data="hi"), t_ns=5)
    with pytest.raises(
        B.BagError, match="has type std_msgs/msg/String, which has no array conversion"
    ):
        B.read_records(tmp_path / "u", "/chatter")
    with pytest.raises(B.BagError, match="exists already"):
        B.BagWriter(tmp_path / "u")


def test_bag_with_type_definition_unknown_to_us_is_readable(tmp_path):
    """A bag carrying its own definition of a type we do not know still reads (message objects)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    ts.register(get_types_from_msg("int32 a\nstring b\n", "other_pkg/msg/Thing"))
    Thing = ts.types["other_pkg/msg/Thing"]
    with Writer(tmp_path / "o", version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c = w.add_connection("/thing", "other_pkg/msg/Thing", typestore=ts)
        w.write(c, 3, ts.serialize_cdr(Thing(a=4, b="x"), "other_pkg/msg/Thing"))
    with B.BagReader(tmp_path / "o") as r:
        ((topic, typ, t, msg),) = list(r.messages())
        assert r.custom_data == {} and r.start_ns == r.end_ns == 3
    assert (topic, typ, t, msg.a, msg.b) == ("/thing", "other_pkg/msg/Thing", 3, 4, "x")


def test_bag_subcommands_are_registered_with_help(capsys):
    from timar_ros.cli import _build_parser
    from timar_ros.cli.bag import SUBCOMMANDS

    assert {"from-dualtalk", "info", "play", "record", "evaluate"} <= set(SUBCOMMANDS)
    parser = _build_parser("bag")
    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(["bag", name, "--help"])
        assert exit_.value.code == 0
        assert f"usage: timar bag {name}" in capsys.readouterr().out
    out = subprocess.run(
        [sys.executable, "-m", "timar_ros.cli", "bag"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "from-dualtalk" in out.stdout


def test_msg_dir_falls_back_to_the_installed_share(monkeypatch, tmp_path):
    from pathlib import Path

    share = Path(sys.prefix) / "share" / "timar_ros" / "msg"
    monkeypatch.setattr(B.records, "_msg_dir_candidates", lambda: [tmp_path / "msg", share])
    if (share / "HeadMotion.msg").is_file():
        assert B.find_msg_dir() == share
    monkeypatch.setattr(B.records, "_msg_dir_candidates", lambda: [tmp_path / "msg"])
    with pytest.raises(B.BagError, match="message definitions .* not found; searched: .*msg"):
        B.find_msg_dir()
