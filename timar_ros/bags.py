"""rosbag2 I/O without ROS: write and read our messages and the standard ones with `rosbags`.

Everything here is pure Python (rosbags + numpy); no rclpy, no ROS install needed. Bags are
written as rosbag2 version 9 (the format of Jazzy/Kilted `ros2 bag`), MCAP storage by default,
sqlite3 selectable; any rosbag2 (mcap or sqlite3, any version rosbags reads) can be read.

Message <-> array conversions (the one place that knows the field layouts):

- ``timar_ros/msg/AudioChunk``  <-> :class:`AudioRecord` (stamp, float32 samples, rate)
- ``timar_ros/msg/HeadMotion``  <-> :class:`MotionRecord` (stamp, frame period, motion [N, 56] in
  the order of :mod:`timar_ros.motion`: expression 0:50 | jaw 50:53 | head rotation 53:56)
- ``sensor_msgs/msg/JointState`` <-> :class:`JointStateRecord`
- ``geometry_msgs/msg/QuaternionStamped`` <-> :class:`QuaternionRecord` (x, y, z, w)
- ``timar_ros/msg/ConversationState`` <-> ``dict`` of its fields (+ ``stamp_ns``)

Stamps are kept as integer nanoseconds (``stamp_ns``) so that round trips are exact; ``stamp_s``
is a convenience. The bag's log time of each message is its header stamp unless given.

Never write ``rclpy.serialization.serialize_message()`` output into a bag (its buffers carry
trailing garbage; see the notes): record raw subscription bytes with :meth:`BagWriter.write_raw`,
or build messages here and let :meth:`BagWriter.write` serialize them.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from timar_ros import motion as M
from timar_ros.topics import resolve as resolve_topic

PACKAGE = "timar_ros"
MSG_NAMES = ("AudioChunk", "HeadMotion", "ConversationState")

AUDIO_CHUNK = "timar_ros/msg/AudioChunk"
HEAD_MOTION = "timar_ros/msg/HeadMotion"
CONVERSATION_STATE = "timar_ros/msg/ConversationState"
JOINT_STATE = "sensor_msgs/msg/JointState"
QUATERNION_STAMPED = "geometry_msgs/msg/QuaternionStamped"

STORAGES = ("mcap", "sqlite3")
BAG_VERSION = 9


class BagError(RuntimeError):
    """A bag cannot be written or read as asked. The message names the bag and the fix."""


# --------------------------------------------------------------------------------------------
# Type store
# --------------------------------------------------------------------------------------------

def _msg_dir_candidates() -> list[Path]:
    here = Path(__file__).resolve()
    cands = [here.parents[1] / "msg"]  # source checkout: <repo>/msg next to <repo>/timar_ros
    # Installed: <prefix>/share/timar_ros/msg, for ament prefixes, the venv and the package's own
    # prefix (<prefix>/lib/pythonX.Y/site-packages/timar_ros/bags.py -> <prefix>).
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes += [sys.prefix, sys.base_prefix]
    if len(here.parents) > 4:
        prefixes.append(str(here.parents[4]))
    cands += [Path(p) / "share" / PACKAGE / "msg" for p in prefixes]
    return cands


def find_msg_dir() -> Path:
    """The folder holding timar_ros's ``*.msg`` files (source checkout ``msg/`` or installed
    ``share/timar_ros/msg/``). Raises :class:`BagError` naming the places searched."""
    cands = _msg_dir_candidates()
    for d in cands:
        if all((d / f"{n}.msg").is_file() for n in MSG_NAMES):
            return d
    searched = ", ".join(dict.fromkeys(str(c) for c in cands))
    raise BagError(
        f"timar_ros message definitions ({', '.join(n + '.msg' for n in MSG_NAMES)}) not found; "
        f"searched: {searched}. Run from a source checkout, or install the package (make msgs / "
        "colcon build) and source its setup file."
    )


@lru_cache(maxsize=1)
def typestore():
    """A rosbags type store for ROS 2 Kilted with timar_ros's messages registered from their .msg
    text. Cached: one store per process."""
    from rosbags.typesys import Stores, get_typestore, get_types_from_msg

    ts = get_typestore(Stores.ROS2_KILTED)
    msg_dir = find_msg_dir()
    types: dict = {}
    for name in MSG_NAMES:
        types.update(get_types_from_msg((msg_dir / f"{name}.msg").read_text(), f"{PACKAGE}/msg/{name}"))
    ts.register(types)
    return ts


def msg_class(msgtype: str):
    """The rosbags dataclass for a message type name ("pkg/msg/Name")."""
    ts = typestore()
    try:
        return ts.types[msgtype]
    except KeyError:
        raise BagError(
            f"unknown message type {msgtype!r}: not in ROS 2 Kilted's standard messages nor in "
            f"timar_ros ({', '.join(MSG_NAMES)}); check the type name (form 'pkg/msg/Name')"
        ) from None


# --------------------------------------------------------------------------------------------
# Stamps
# --------------------------------------------------------------------------------------------

def to_ns(stamp_s: float) -> int:
    """Seconds (float) -> integer nanoseconds, rounded."""
    return int(round(float(stamp_s) * 1e9))


def _time(ns: int):
    Time = typestore().types["builtin_interfaces/msg/Time"]
    ns = int(ns)
    if ns < 0:
        raise ValueError(f"stamp must be >= 0 (ROS time), got {ns} ns")
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _header(ns: int, frame_id: str = ""):
    Header = typestore().types["std_msgs/msg/Header"]
    return Header(stamp=_time(ns), frame_id=str(frame_id))


def stamp_ns(msg) -> int:
    """Header stamp of a message in integer nanoseconds."""
    st = msg.header.stamp
    return int(st.sec) * 1_000_000_000 + int(st.nanosec)


# --------------------------------------------------------------------------------------------
# Records and conversions
# --------------------------------------------------------------------------------------------

@dataclass
class AudioRecord:
    """One AudioChunk as arrays. ``samples`` is float32, interleaved when channels > 1."""

    stamp_ns: int
    samples: np.ndarray
    sample_rate: int
    channels: int = 1
    seq: int = 0
    frame_id: str = ""

    @property
    def stamp_s(self) -> float:
        return self.stamp_ns * 1e-9


@dataclass
class MotionRecord:
    """One HeadMotion block as arrays: ``motion`` [N, 56] float32 (exp | jaw | rotation)."""

    stamp_ns: int
    frame_period: float
    motion: np.ndarray
    turn_index: int = 0
    model_id: str = ""
    frame_id: str = ""

    @property
    def stamp_s(self) -> float:
        return self.stamp_ns * 1e-9


@dataclass
class JointStateRecord:
    stamp_ns: int
    names: list[str]
    position: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    effort: np.ndarray = field(default_factory=lambda: np.zeros(0))
    frame_id: str = ""


@dataclass
class QuaternionRecord:
    stamp_ns: int
    xyzw: np.ndarray  # [4] float64 (x, y, z, w)
    frame_id: str = ""


def audio_chunk_msg(stamp_ns: int, samples, sample_rate: int, *, channels: int = 1, seq: int = 0,
                    frame_id: str = ""):
    """Build a timar_ros/msg/AudioChunk (samples -> float32)."""
    samples = np.ascontiguousarray(np.asarray(samples, dtype=np.float32).reshape(-1))
    if channels < 1 or len(samples) % channels:
        raise ValueError(f"{len(samples)} samples is not a multiple of channels={channels}")
    return msg_class(AUDIO_CHUNK)(
        header=_header(stamp_ns, frame_id), sample_rate=int(sample_rate), channels=int(channels),
        seq=int(seq), samples=samples,
    )


def audio_chunk_to_record(msg) -> AudioRecord:
    _expect(msg, AUDIO_CHUNK)
    return AudioRecord(stamp_ns(msg), np.asarray(msg.samples, dtype=np.float32), int(msg.sample_rate),
                       int(msg.channels), int(msg.seq), msg.header.frame_id)


def head_motion_msg(stamp_ns: int, frame_period: float, motion, *, turn_index: int = 0,
                    model_id: str = "", frame_id: str = ""):
    """Build a timar_ros/msg/HeadMotion from motion [N, 56] (exp | jaw | rotation)."""
    motion = np.asarray(motion, dtype=np.float32)
    if motion.ndim != 2 or motion.shape[1] != M.MOTION_DIM:
        raise ValueError(f"motion must be [N, {M.MOTION_DIM}], got {motion.shape}")
    return msg_class(HEAD_MOTION)(
        header=_header(stamp_ns, frame_id), frame_period=float(frame_period),
        num_frames=int(len(motion)),
        expression=np.ascontiguousarray(motion[:, M.EXP]).reshape(-1),
        jaw=np.ascontiguousarray(motion[:, M.JAW]).reshape(-1),
        head_rotation=np.ascontiguousarray(motion[:, M.ROT]).reshape(-1),
        turn_index=int(turn_index), model_id=str(model_id),
    )


def head_motion_to_record(msg) -> MotionRecord:
    _expect(msg, HEAD_MOTION)
    n = int(msg.num_frames)
    parts = []
    for name, dim in (("expression", M.EXP_DIM), ("jaw", M.JAW_DIM), ("head_rotation", M.ROT_DIM)):
        arr = np.asarray(getattr(msg, name), dtype=np.float32)
        if arr.size != n * dim:
            raise BagError(f"HeadMotion with num_frames={n} has {arr.size} {name} values, expected "
                           f"{n} x {dim} = {n * dim}: the publisher filled the message wrongly")
        parts.append(arr.reshape(n, dim))
    return MotionRecord(stamp_ns(msg), float(msg.frame_period), np.concatenate(parts, axis=1),
                        int(msg.turn_index), msg.model_id, msg.header.frame_id)


def joint_state_msg(stamp_ns: int, names: Sequence[str], position, velocity=(), effort=(),
                    *, frame_id: str = ""):
    """Build a sensor_msgs/msg/JointState (arrays -> float64)."""
    f64 = lambda a: np.ascontiguousarray(np.asarray(a, dtype=np.float64).reshape(-1))  # noqa: E731
    return msg_class(JOINT_STATE)(header=_header(stamp_ns, frame_id), name=[str(n) for n in names],
                                  position=f64(position), velocity=f64(velocity), effort=f64(effort))


def joint_state_to_record(msg) -> JointStateRecord:
    _expect(msg, JOINT_STATE)
    return JointStateRecord(stamp_ns(msg), list(msg.name), np.asarray(msg.position, np.float64),
                            np.asarray(msg.velocity, np.float64), np.asarray(msg.effort, np.float64),
                            msg.header.frame_id)


def quaternion_stamped_msg(stamp_ns: int, xyzw, *, frame_id: str = ""):
    """Build a geometry_msgs/msg/QuaternionStamped from (x, y, z, w)."""
    x, y, z, w = (float(v) for v in np.asarray(xyzw, dtype=np.float64).reshape(4))
    Q = typestore().types["geometry_msgs/msg/Quaternion"]
    return msg_class(QUATERNION_STAMPED)(header=_header(stamp_ns, frame_id), quaternion=Q(x=x, y=y, z=z, w=w))


def quaternion_stamped_to_record(msg) -> QuaternionRecord:
    _expect(msg, QUATERNION_STAMPED)
    q = msg.quaternion
    return QuaternionRecord(stamp_ns(msg), np.array([q.x, q.y, q.z, q.w], np.float64), msg.header.frame_id)


def conversation_state_msg(stamp_ns: int, *, frame_id: str = "", **fields):
    """Build a timar_ros/msg/ConversationState; unspecified fields are 0/False."""
    cls = msg_class(CONVERSATION_STATE)
    types = {f.name: str(f.type) for f in dataclasses.fields(cls)
             if f.name != "header" and not f.name.startswith("__")}
    names = list(types)
    unknown = set(fields) - set(names)
    if unknown:
        raise ValueError(f"ConversationState has no field(s) {sorted(unknown)}; fields: {names}")
    values = {}
    for f in names:
        v = fields.get(f, 0)
        values[f] = bool(v) if types[f] == "bool" else (float(v) if types[f] == "float" else int(v))
    return cls(header=_header(stamp_ns, frame_id), **values)


def conversation_state_to_dict(msg) -> dict[str, Any]:
    _expect(msg, CONVERSATION_STATE)
    out: dict[str, Any] = {"stamp_ns": stamp_ns(msg), "frame_id": msg.header.frame_id}
    for f in dataclasses.fields(msg):
        if f.name != "header" and not f.name.startswith("__"):
            v = getattr(msg, f.name)
            out[f.name] = v.item() if isinstance(v, np.generic) else v
    return out


_TO_RECORD = {
    AUDIO_CHUNK: audio_chunk_to_record,
    HEAD_MOTION: head_motion_to_record,
    JOINT_STATE: joint_state_to_record,
    QUATERNION_STAMPED: quaternion_stamped_to_record,
    CONVERSATION_STATE: conversation_state_to_dict,
}


def to_record(msg):
    """Any supported message -> its record (see the module docstring)."""
    typ = getattr(msg, "__msgtype__", type(msg).__name__)
    try:
        conv = _TO_RECORD[typ]
    except KeyError:
        raise BagError(f"no array conversion for message type {typ!r}; supported: "
                       f"{', '.join(_TO_RECORD)}. Read the message object itself instead "
                       "(BagReader.messages)") from None
    return conv(msg)


def _expect(msg, msgtype: str) -> None:
    got = getattr(msg, "__msgtype__", None)
    if got is not None and got != msgtype:
        raise BagError(f"expected a {msgtype} message, got {got}")


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def _storage_plugin(storage: str):
    from rosbags.rosbag2 import StoragePlugin

    s = str(storage).lower()
    if s not in STORAGES:
        raise BagError(f"unknown bag storage {storage!r}; use one of {', '.join(STORAGES)}")
    return StoragePlugin.MCAP if s == "mcap" else StoragePlugin.SQLITE3


class BagWriter:
    """Write a rosbag2 (v9) folder. Use as a context manager; the bag is valid after close().

    ``write(topic, msg)`` serializes a rosbags message object (built with the ``*_msg`` helpers or
    ``msg_class``); ``write_raw(topic, msgtype, cdr, t_ns)`` stores CDR bytes as received (the
    recorder path). Connections are created per topic on first use; one type per topic.
    """

    def __init__(self, path: str | os.PathLike, *, storage: str = "mcap", overwrite: bool = False,
                 custom_data: dict[str, str] | None = None):
        from rosbags.rosbag2 import Writer, WriterError

        self.path = Path(path)
        if self.path.exists():
            if not overwrite:
                raise BagError(f"{self.path} exists already; remove it or pass overwrite=True "
                               "(--overwrite): bags are never appended to")
            _remove_bag_dir(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._w = Writer(self.path, version=BAG_VERSION, storage_plugin=_storage_plugin(storage))
        except (WriterError, OSError) as err:
            raise self._cannot_create(err) from None
        for k, v in (custom_data or {}).items():
            self._w.set_custom_data(str(k), str(v))
        self._conns: dict[str, Any] = {}
        self._ts = typestore()
        self._open = False

    def open(self) -> BagWriter:
        from rosbags.rosbag2 import WriterError

        try:
            self._w.open()
        except (WriterError, OSError) as err:
            raise self._cannot_create(err) from None
        self._open = True
        return self

    def _cannot_create(self, err: Exception) -> BagError:
        return BagError(f"{self.path}: cannot create bag: {err}; choose a writable folder")

    def __enter__(self) -> BagWriter:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._w.close()  # keep what was written; the exception propagates
            self._open = False

    def close(self) -> None:
        if self._open:
            self._w.close()
            self._open = False

    def _connection(self, topic: str, msgtype: str, qos: str | None = None):
        conn = self._conns.get(topic)
        if conn is None:
            if msgtype not in self._ts.types:
                msg_class(msgtype)  # raises the unknown-type BagError
            kw = {"offered_qos_profiles": qos} if qos else {}
            conn = self._w.add_connection(topic, msgtype, typestore=self._ts, **kw)
            self._conns[topic] = conn
        elif conn.msgtype != msgtype:
            raise BagError(f"{self.path}: topic {topic} already holds {conn.msgtype}, cannot also "
                           f"write {msgtype}; use another topic name")
        return conn

    def write(self, topic: str, msg, t_ns: int | None = None) -> None:
        """Serialize and write ``msg`` on ``topic`` at log time ``t_ns`` (default: header stamp)."""
        if not self._open:
            raise BagError(f"{self.path}: writer is not open (use `with BagWriter(...) as w`)")
        msgtype = msg.__msgtype__
        conn = self._connection(topic, msgtype)
        if t_ns is None:
            t_ns = stamp_ns(msg) if hasattr(msg, "header") else 0
        self._w.write(conn, int(t_ns), self._ts.serialize_cdr(msg, msgtype))

    def write_raw(self, topic: str, msgtype: str, data: bytes | memoryview, t_ns: int) -> None:
        """Write CDR bytes as received (e.g. an rclpy ``raw=True`` subscription)."""
        if not self._open:
            raise BagError(f"{self.path}: writer is not open (use `with BagWriter(...) as w`)")
        self._w.write(self._connection(topic, msgtype), int(t_ns), data)


def _remove_bag_dir(path: Path) -> None:
    import shutil

    if path.is_dir():
        if not (path / "metadata.yaml").exists() and any(path.iterdir()):
            raise BagError(f"{path} exists and does not look like a bag (no metadata.yaml); "
                           "refusing to delete it, choose another output path")
        shutil.rmtree(path)
    else:
        path.unlink()


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

_CORRUPT_FIX = (
    "The bag is truncated or corrupt (e.g. a recording killed before it was closed, or a partial "
    "copy). Re-record or re-convert it; a recording that was cut off can often be salvaged with "
    "`ros2 bag reindex` (no metadata.yaml) or the mcap CLI's `mcap recover` (MCAP)."
)


@dataclass
class TopicInfo:
    name: str
    msgtype: str
    count: int


class BagReader:
    """Read any rosbag2 (mcap or sqlite3) with rosbags' AnyReader, with clear errors.

    Message definitions are taken from the bag; our type store is the fallback for bags
    without them. Use as a context manager.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag not found: {self.path}")
        if self.path.is_file() and self.path.suffix in (".mcap", ".db3"):
            # Given the storage file itself: use its folder (rosbag2 bags are folders).
            self.path = self.path.parent
        if self.path.is_dir() and not (self.path / "metadata.yaml").exists():
            raise BagError(f"{self.path}: no metadata.yaml, not a complete rosbag2 folder. "
                           + _CORRUPT_FIX)
        self._reader = None

    def _fail(self, err: Exception) -> BagError:
        return BagError(f"{self.path}: cannot read the bag ({err}). {_CORRUPT_FIX}")

    def open(self) -> BagReader:
        from rosbags.highlevel import AnyReader, AnyReaderError
        from rosbags.rosbag2 import ReaderError

        try:
            self._reader = AnyReader([self.path], default_typestore=typestore())
            self._reader.open()
        except (AnyReaderError, ReaderError, ValueError, KeyError, OSError, EOFError) as err:
            self._reader = None
            raise self._fail(err) from None
        except Exception as err:  # yaml/struct/decompression errors of damaged files
            self._reader = None
            raise self._fail(err) from None
        return self

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> BagReader:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def reader(self):
        if self._reader is None:
            raise BagError(f"{self.path}: reader is not open (use `with BagReader(...) as r`)")
        return self._reader

    @property
    def topics(self) -> dict[str, TopicInfo]:
        out: dict[str, TopicInfo] = {}
        for c in self.reader.connections:
            t = out.setdefault(c.topic, TopicInfo(c.topic, c.msgtype, 0))
            t.count += c.msgcount
        return out

    @property
    def start_ns(self) -> int:
        return int(self.reader.start_time) if self.reader.message_count else 0

    @property
    def end_ns(self) -> int:
        """Log time of the last message (rosbags' end_time is one nanosecond after it)."""
        return int(self.reader.end_time) - 1 if self.reader.message_count else 0

    @property
    def custom_data(self) -> dict[str, str]:
        """The bag's metadata.yaml custom_data (rosbag2 >= v6), {} when absent."""
        import yaml

        try:
            meta = yaml.load((self.path / "metadata.yaml").read_text(), Loader=yaml.BaseLoader) or {}  # all strings
        except (OSError, yaml.YAMLError):
            return {}
        info = meta.get("rosbag2_bagfile_information") if isinstance(meta, dict) else None
        custom = info.get("custom_data") if isinstance(info, dict) else None
        if not isinstance(custom, dict):  # absent, or `null`/`~` (read as a string here)
            return {}
        return {str(k): str(v) for k, v in custom.items()}

    def check_topic(self, topic: str, msgtype: str | None = None) -> TopicInfo:
        """The topic's info; BagError naming the bag, the topic and what the bag has otherwise."""
        topics = self.topics
        if topic not in topics:
            have = ", ".join(f"{t.name} ({t.msgtype})" for t in topics.values()) or "no topics"
            raise BagError(f"{self.path}: no topic {topic!r} in the bag; it has: {have}. "
                           "Pass the right topic name (e.g. --topic), or record/convert the bag "
                           "with that topic")
        info = topics[topic]
        if msgtype is not None and info.msgtype != msgtype:
            raise BagError(f"{self.path}: topic {topic} has type {info.msgtype}, expected "
                           f"{msgtype}; pass a topic of that type")
        return info

    def messages(self, topics: Iterable[str] | None = None, *, raw: bool = False
                 ) -> Iterator[tuple[str, str, int, Any]]:
        """Yield (topic, msgtype, log_time_ns, message) in log-time order. With ``raw=True`` the
        message is the CDR bytes (for replay)."""
        rd = self.reader
        conns = rd.connections
        if topics is not None:
            topics = list(topics)
            for t in topics:
                self.check_topic(t)
            conns = [c for c in conns if c.topic in set(topics)]
        try:
            for conn, t_ns, data in rd.messages(connections=conns):
                if raw:
                    yield conn.topic, conn.msgtype, int(t_ns), bytes(data)
                else:
                    yield conn.topic, conn.msgtype, int(t_ns), rd.deserialize(data, conn.msgtype)
        except BagError:
            raise
        except Exception as err:  # noqa: BLE001 - damaged chunks surface while iterating
            raise self._fail(err) from None

    def records(self, topic: str, msgtype: str | None = None) -> list:
        """All messages of one topic as records (see :func:`to_record`), in log-time order."""
        info = self.check_topic(topic, msgtype)
        if info.msgtype not in _TO_RECORD:
            raise BagError(f"{self.path}: topic {topic} has type {info.msgtype}, which has no array "
                           f"conversion (supported: {', '.join(_TO_RECORD)})")
        return [to_record(m) for _, _, _, m in self.messages([topic])]


def read_records(path, topic: str, msgtype: str | None = None) -> list:
    """Open a bag and return one topic's records."""
    with BagReader(path) as r:
        return r.records(topic, msgtype)


def concat_audio(records: Sequence[AudioRecord], *, path: Any = "") -> tuple[np.ndarray, int, int]:
    """Join AudioChunk records (mono after down-mix) -> (samples float32, sample_rate, start_ns).

    Chunks are laid out on their stamps: gaps are filled with zeros, overlaps are overwritten by
    the later chunk, so the result is on the bag's clock starting at the first chunk's stamp.
    """
    if not records:
        raise BagError(f"{path}: the audio topic has no messages")
    rates = {r.sample_rate for r in records}
    if len(rates) != 1:
        raise BagError(f"{path}: the audio topic changes sample rate ({sorted(rates)}); "
                       "resample it to one rate first")
    rate = rates.pop()
    recs = sorted(records, key=lambda r: r.stamp_ns)
    start = recs[0].stamp_ns
    mono = []
    for r in recs:
        s = r.samples
        if r.channels > 1:
            s = s.reshape(-1, r.channels).mean(axis=1).astype(np.float32)
        mono.append((int(round((r.stamp_ns - start) * rate / 1e9)), s))
    total = max(off + len(s) for off, s in mono)
    out = np.zeros(total, np.float32)
    for off, s in mono:
        out[off:off + len(s)] = s
    return out, int(rate), int(start)


def concat_motion(records: Sequence[MotionRecord], *, path: Any = "") -> tuple[np.ndarray, float, int]:
    """Join HeadMotion records -> (motion [T, 56] float32, frame_period, start_ns).

    Blocks are placed on their stamps (frame index = round((stamp - start) / frame_period)); a
    gap repeats the last frame (hold), an overlap is overwritten by the later block.
    """
    if not records:
        raise BagError(f"{path}: the motion topic has no messages")
    periods = {round(r.frame_period, 9) for r in records}
    if len(periods) != 1:
        raise BagError(f"{path}: the motion topic changes frame period ({sorted(periods)})")
    period = float(records[0].frame_period)
    if period <= 0:
        raise BagError(f"{path}: HeadMotion.frame_period is {period}, must be > 0")
    recs = sorted(records, key=lambda r: r.stamp_ns)
    start = recs[0].stamp_ns
    placed = [(int(round((r.stamp_ns - start) * 1e-9 / period)), r.motion) for r in recs]
    total = max(off + len(m) for off, m in placed)
    out = np.zeros((total, M.MOTION_DIM), np.float32)
    filled = np.zeros(total, bool)
    for off, m in placed:
        out[off:off + len(m)] = m
        filled[off:off + len(m)] = True
    for i in range(1, total):  # hold the last frame through gaps
        if not filled[i]:
            out[i] = out[i - 1]
    return out, period, int(start)


def read_audio(path, topic: str) -> tuple[np.ndarray, int, int]:
    """One AudioChunk topic of a bag as (samples float32 mono, sample_rate, start_ns)."""
    return concat_audio(read_records(path, topic, AUDIO_CHUNK), path=path)


def read_motion(path, topic: str) -> tuple[np.ndarray, float, int]:
    """One HeadMotion topic of a bag as (motion [T, 56], frame_period, start_ns)."""
    return concat_motion(read_records(path, topic, HEAD_MOTION), path=path)


def bag_info(path) -> dict[str, Any]:
    """Summary of a bag: storage, duration, topics with types and counts, custom data."""
    with BagReader(path) as r:
        rd = r.reader
        storage = "unknown"
        files = [p.name for p in Path(r.path).iterdir()] if Path(r.path).is_dir() else []
        if any(f.endswith(".mcap") for f in files):
            storage = "mcap"
        elif any(f.endswith(".db3") for f in files):
            storage = "sqlite3"
        return {
            "path": str(r.path),
            "storage": storage,
            "message_count": int(rd.message_count),
            "start_ns": r.start_ns,
            "end_ns": r.end_ns,
            "duration_s": (r.end_ns - r.start_ns) * 1e-9,
            "topics": {t.name: {"type": t.msgtype, "count": t.count} for t in r.topics.values()},
            "custom_data": r.custom_data,
        }


def topic_name(relative: str, namespace: str = "timar") -> str:
    """Absolute topic name of a default (relative) topic under a namespace ('' = root)."""
    return resolve_topic(relative, namespace)


# --------------------------------------------------------------------------------------------
# DualTalk -> bags
# --------------------------------------------------------------------------------------------
# One reader per fact: WAV files through timar_ros.data.audio, DualTalk motion through
# timar_ros.data.layout; their errors become BagErrors naming the file.

def _read_wav_16k(path: Path) -> np.ndarray:
    """Mono float32 audio at motion.SAMPLE_RATE (channels averaged, resampled when needed)."""
    from timar_ros.data.audio import load_wav

    try:
        return load_wav(path, M.SAMPLE_RATE)
    except (OSError, ValueError) as err:  # FileNotFoundError, AudioError
        raise BagError(f"{path}: cannot use the WAV file ({err})") from None


def _read_dualtalk_npz(path: Path) -> np.ndarray:
    """DualTalk .npz (exp [T, 50], pose [T, 6] = rotation | jaw) -> motion [T, 56]."""
    from timar_ros.data.layout import load_motion

    try:
        return load_motion(path)
    except ValueError as err:
        raise BagError(f"{path}: a DualTalk .npz needs arrays 'exp' [T, 50] and 'pose' [T, 6] "
                       f"of finite values ({err})") from None
    except Exception as err:  # noqa: BLE001 - zip errors of damaged files
        raise BagError(f"{path}: cannot read the .npz ({err})") from None


def dualtalk_clips(src: str | os.PathLike) -> list[str]:
    """Clip names in a flat DualTalk folder: those with <clip>_speaker{1,2}.{wav,npz} all present."""
    src = Path(src)
    if not src.is_dir():
        raise BagError(f"DualTalk folder not found: {src}")
    clips = []
    for npz in sorted(src.glob("*_speaker1.npz")):
        clip = npz.name[: -len("_speaker1.npz")]
        if all((src / f"{clip}_speaker{k}.{ext}").is_file() for k in (1, 2) for ext in ("wav", "npz")):
            clips.append(clip)
    return clips


@dataclass
class DualTalkBagOptions:
    """How `from-dualtalk` lays a conversation out in a bag (see convert_dualtalk)."""

    namespace: str = "timar"
    storage: str = "mcap"
    chunk_s: float = 0.1  # AudioChunk length
    turn_s: float = 1.0  # HeadMotion block length (one TIMAR turn)
    start_s: float = 1.0  # stamp of the first sample / frame on the bag's clock
    overwrite: bool = False


def write_conversation_bag(out: str | os.PathLike, user_audio: np.ndarray, agent_audio: np.ndarray,
                           user_motion: np.ndarray, agent_motion: np.ndarray,
                           opts: DualTalkBagOptions | None = None,
                           custom_data: dict[str, str] | None = None) -> Path:
    """Write one conversation (16 kHz audio, 25 fps motion [T, 56]) as a bag on one clock.

    Topics (under ``/<namespace>``): ``user/audio`` and ``agent/audio`` (AudioChunk, frame_id
    "user"/"agent", ``chunk_s`` each, the last one shorter), ``user/motion`` and
    ``ground_truth/head_motion`` (HeadMotion, ``turn_s`` blocks, the last one shorter, turn_index
    = block index). Sample i is at ``start_s + i / 16000``, frame j at ``start_s + j / 25``.
    """
    from timar_ros import topics as T

    o = opts or DualTalkBagOptions()
    start = to_ns(o.start_s)
    chunk = max(1, int(round(o.chunk_s * M.SAMPLE_RATE)))
    block = max(1, int(round(o.turn_s * M.FPS)))
    period = 1.0 / M.FPS
    with BagWriter(out, storage=o.storage, overwrite=o.overwrite, custom_data=custom_data) as w:
        for rel, role, audio in ((T.USER_AUDIO, "user", user_audio), (T.AGENT_AUDIO, "agent", agent_audio)):
            topic = topic_name(rel, o.namespace)
            for seq, i in enumerate(range(0, len(audio), chunk)):
                t = start + (i * 1_000_000_000) // M.SAMPLE_RATE
                w.write(topic, audio_chunk_msg(t, audio[i:i + chunk], M.SAMPLE_RATE, seq=seq,
                                               frame_id=role))
        for rel, role, mot in ((T.USER_MOTION, "user", user_motion),
                               (T.GROUND_TRUTH_MOTION, "agent", agent_motion)):
            topic = topic_name(rel, o.namespace)
            for k, j in enumerate(range(0, len(mot), block)):
                t = start + (j * 1_000_000_000) // M.FPS
                w.write(topic, head_motion_msg(t, period, mot[j:j + block], turn_index=k,
                                               model_id="dualtalk-ground-truth", frame_id=role))
    return Path(out)


def convert_dualtalk(src: str | os.PathLike, out_dir: str | os.PathLike, *,
                     agents: Sequence[str] = ("speaker1", "speaker2"), clips: Sequence[str] | None = None,
                     opts: DualTalkBagOptions | None = None, log=None) -> list[Path]:
    """Convert DualTalk conversations to bags: one bag per (conversation, agent direction).

    For clip C and agent speaker k the bag ``out_dir/C_speaker<k>`` holds speaker k as the
    agent (agent audio + ground-truth agent motion) and the other speaker as the user (user
    audio + user motion), i.e. the same naming as DualTalk's per-speaker prediction files
    (``C_speaker<k>.npz`` is the motion of speaker k). Returns the bag paths.
    """
    src, out_dir = Path(src), Path(out_dir)
    o = opts or DualTalkBagOptions()
    for a in agents:
        if a not in ("speaker1", "speaker2"):
            raise BagError(f"agent must be speaker1 or speaker2, got {a!r}")
    found = dualtalk_clips(src)
    if clips:
        missing = [c for c in clips if c not in found]
        if missing:
            raise BagError(f"{src}: clip(s) {missing} not found (need <clip>_speaker1/2 .wav and .npz)")
        found = list(clips)
    if not found:
        raise BagError(f"{src}: no DualTalk conversations found (expected pairs of files "
                       "<clip>_speaker1.wav/.npz and <clip>_speaker2.wav/.npz)")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for clip in found:
        audio = {k: _read_wav_16k(src / f"{clip}_speaker{k}.wav") for k in (1, 2)}
        motion = {k: _read_dualtalk_npz(src / f"{clip}_speaker{k}.npz") for k in (1, 2)}
        for a in agents:
            ag = int(a[-1])
            us = 3 - ag
            custom = {"timar.source": "dualtalk", "timar.clip": clip, "timar.agent": a,
                      "timar.user": f"speaker{us}", "timar.fps": str(M.FPS),
                      "timar.sample_rate": str(M.SAMPLE_RATE), "timar.start_s": repr(float(o.start_s))}
            path = write_conversation_bag(out_dir / f"{clip}_{a}", audio[us], audio[ag], motion[us],
                                          motion[ag], o, custom)
            written.append(path)
            if log:
                log(f"wrote {path} (agent {a}: {len(motion[ag])} frames, "
                    f"{len(audio[ag]) / M.SAMPLE_RATE:.2f} s audio)")
    return written
