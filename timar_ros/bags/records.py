"""timar_ros's rosbag2 messages as plain records, without ROS (the one place that knows the field
layouts): the rosbags type store with our .msg definitions, stamps as integer nanoseconds, and
message <-> record conversions.

- ``timar_ros/msg/AudioChunk``  <-> :class:`AudioRecord` (stamp, float32 samples, rate)
- ``timar_ros/msg/HeadMotion``  <-> :class:`MotionRecord` (stamp, frame period, motion [N, 56] in
  the order of :mod:`timar_ros.motion`: expression 0:50 | jaw 50:53 | head rotation 53:56)
- ``sensor_msgs/msg/JointState`` <-> :class:`JointStateRecord`
- ``geometry_msgs/msg/QuaternionStamped`` <-> :class:`QuaternionRecord` (x, y, z, w)
- ``timar_ros/msg/ConversationState`` <-> ``dict`` of its fields (+ ``stamp_ns``)

Stamps are kept as integer nanoseconds (``stamp_ns``) so that round trips are exact; ``stamp_s``
is a convenience.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from timar_ros import motion as M
from timar_ros.errors import InputError
from timar_ros.topics import AUDIO_CHUNK_TYPE as AUDIO_CHUNK
from timar_ros.topics import CONVERSATION_STATE_TYPE as CONVERSATION_STATE
from timar_ros.topics import HEAD_MOTION_TYPE as HEAD_MOTION
from timar_ros.topics import JOINT_STATE_TYPE as JOINT_STATE
from timar_ros.topics import PACKAGE
from timar_ros.topics import QUATERNION_STAMPED_TYPE as QUATERNION_STAMPED

MSG_NAMES = ("AudioChunk", "HeadMotion", "ConversationState", "SoundDirection")


class BagError(InputError, RuntimeError):
    """A bag cannot be written or read as asked. The message names the bag and the fix."""


# --------------------------------------------------------------------------------------------
# Type store
# --------------------------------------------------------------------------------------------


def _msg_dir_candidates() -> list[Path]:
    here = Path(__file__).resolve()
    cands = [here.parents[2] / "msg"]  # source checkout: <repo>/msg next to <repo>/timar_ros
    # Installed: <prefix>/share/timar_ros/msg, for ament prefixes, the venv and the package's own
    # prefix (<prefix>/lib/pythonX.Y/site-packages/timar_ros/bags/records.py -> <prefix>).
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes += [sys.prefix, sys.base_prefix]
    if len(here.parents) > 5:
        prefixes.append(str(here.parents[5]))
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
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    msg_dir = find_msg_dir()
    types: dict = {}
    for name in MSG_NAMES:
        types.update(
            get_types_from_msg((msg_dir / f"{name}.msg").read_text(), f"{PACKAGE}/msg/{name}")
        )
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
    first_frame: int = 0  # the frame of the turn that motion[0] is (a tick's block)

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


def audio_chunk_msg(
    stamp_ns: int, samples, sample_rate: int, *, channels: int = 1, seq: int = 0, frame_id: str = ""
):
    """Build a timar_ros/msg/AudioChunk (samples -> float32)."""
    samples = np.ascontiguousarray(np.asarray(samples, dtype=np.float32).reshape(-1))
    if channels < 1 or len(samples) % channels:
        raise ValueError(f"{len(samples)} samples is not a multiple of channels={channels}")
    return msg_class(AUDIO_CHUNK)(
        header=_header(stamp_ns, frame_id),
        sample_rate=int(sample_rate),
        channels=int(channels),
        seq=int(seq),
        samples=samples,
    )


def audio_chunk_to_record(msg) -> AudioRecord:
    _expect(msg, AUDIO_CHUNK)
    return AudioRecord(
        stamp_ns(msg),
        np.asarray(msg.samples, dtype=np.float32),
        int(msg.sample_rate),
        int(msg.channels),
        int(msg.seq),
        msg.header.frame_id,
    )


def head_motion_msg(
    stamp_ns: int,
    frame_period: float,
    motion,
    *,
    turn_index: int = 0,
    model_id: str = "",
    frame_id: str = "",
    first_frame: int = 0,
):
    """Build a timar_ros/msg/HeadMotion from motion [N, 56] (exp | jaw | rotation)."""
    motion = np.asarray(motion, dtype=np.float32)
    if motion.ndim != 2 or motion.shape[1] != M.MOTION_DIM:
        raise ValueError(f"motion must be [N, {M.MOTION_DIM}], got {motion.shape}")
    return msg_class(HEAD_MOTION)(
        header=_header(stamp_ns, frame_id),
        frame_period=float(frame_period),
        num_frames=int(len(motion)),
        expression=np.ascontiguousarray(motion[:, M.EXP]).reshape(-1),
        jaw=np.ascontiguousarray(motion[:, M.JAW]).reshape(-1),
        head_rotation=np.ascontiguousarray(motion[:, M.ROT]).reshape(-1),
        turn_index=int(turn_index),
        model_id=str(model_id),
        first_frame=int(first_frame),
    )


def head_motion_to_record(msg) -> MotionRecord:
    _expect(msg, HEAD_MOTION)
    n = int(msg.num_frames)
    parts = []
    for name, dim in (("expression", M.EXP_DIM), ("jaw", M.JAW_DIM), ("head_rotation", M.ROT_DIM)):
        arr = np.asarray(getattr(msg, name), dtype=np.float32)
        if arr.size != n * dim:
            raise BagError(
                f"HeadMotion with num_frames={n} has {arr.size} {name} values, expected "
                f"{n} x {dim} = {n * dim}: the publisher filled the message wrongly"
            )
        parts.append(arr.reshape(n, dim))
    return MotionRecord(
        stamp_ns(msg),
        float(msg.frame_period),
        np.concatenate(parts, axis=1),
        int(msg.turn_index),
        msg.model_id,
        msg.header.frame_id,
        int(getattr(msg, "first_frame", 0)),  # (bags recorded before the field existed)
    )


def joint_state_msg(
    stamp_ns: int, names: Sequence[str], position, velocity=(), effort=(), *, frame_id: str = ""
):
    """Build a sensor_msgs/msg/JointState (arrays -> float64)."""
    f64 = lambda a: np.ascontiguousarray(np.asarray(a, dtype=np.float64).reshape(-1))  # noqa: E731
    return msg_class(JOINT_STATE)(
        header=_header(stamp_ns, frame_id),
        name=[str(n) for n in names],
        position=f64(position),
        velocity=f64(velocity),
        effort=f64(effort),
    )


def joint_state_to_record(msg) -> JointStateRecord:
    _expect(msg, JOINT_STATE)
    return JointStateRecord(
        stamp_ns(msg),
        list(msg.name),
        np.asarray(msg.position, np.float64),
        np.asarray(msg.velocity, np.float64),
        np.asarray(msg.effort, np.float64),
        msg.header.frame_id,
    )


def quaternion_stamped_msg(stamp_ns: int, xyzw, *, frame_id: str = ""):
    """Build a geometry_msgs/msg/QuaternionStamped from (x, y, z, w)."""
    x, y, z, w = (float(v) for v in np.asarray(xyzw, dtype=np.float64).reshape(4))
    Q = typestore().types["geometry_msgs/msg/Quaternion"]
    return msg_class(QUATERNION_STAMPED)(
        header=_header(stamp_ns, frame_id), quaternion=Q(x=x, y=y, z=z, w=w)
    )


def quaternion_stamped_to_record(msg) -> QuaternionRecord:
    _expect(msg, QUATERNION_STAMPED)
    q = msg.quaternion
    return QuaternionRecord(
        stamp_ns(msg), np.array([q.x, q.y, q.z, q.w], np.float64), msg.header.frame_id
    )


def conversation_state_msg(stamp_ns: int, *, frame_id: str = "", **fields):
    """Build a timar_ros/msg/ConversationState; unspecified fields are 0/False."""
    cls = msg_class(CONVERSATION_STATE)
    types = {
        f.name: str(f.type)
        for f in dataclasses.fields(cls)
        if f.name != "header" and not f.name.startswith("__")
    }
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
        raise BagError(
            f"no array conversion for message type {typ!r}; supported: "
            f"{', '.join(_TO_RECORD)}. Read the message object itself instead "
            "(BagReader.messages)"
        ) from None
    return conv(msg)


def _expect(msg, msgtype: str) -> None:
    got = getattr(msg, "__msgtype__", None)
    if got is not None and got != msgtype:
        raise BagError(f"expected a {msgtype} message, got {got}")
