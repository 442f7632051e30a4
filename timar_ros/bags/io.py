"""rosbag2 files without ROS: :class:`BagWriter` and :class:`BagReader` (rosbags), joined audio
and motion streams, a bag's summary.

Bags are written as rosbag2 version 9 (the format of Jazzy/Kilted `ros2 bag`), MCAP storage by
default, sqlite3 selectable; any rosbag2 (mcap or sqlite3, any version rosbags reads) can be read.
The bag's log time of each message is its header stamp unless given.

Never write ``rclpy.serialization.serialize_message()`` output into a bag (its buffers carry
trailing garbage; see the notes): record raw subscription bytes with :meth:`BagWriter.write_raw`,
or build messages with :mod:`timar_ros.bags.records` and let :meth:`BagWriter.write` serialize them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from timar_ros import motion as M
from timar_ros.bags.records import (
    _TO_RECORD,
    AUDIO_CHUNK,
    HEAD_MOTION,
    AudioRecord,
    BagError,
    MotionRecord,
    msg_class,
    stamp_ns,
    to_record,
    typestore,
)

STORAGES = ("mcap", "sqlite3")
BAG_VERSION = 9


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

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        storage: str = "mcap",
        overwrite: bool = False,
        custom_data: dict[str, str] | None = None,
    ):
        from rosbags.rosbag2 import Writer, WriterError

        self.path = Path(path)
        self.check_target(self.path, overwrite)
        if self.path.exists():
            _remove_bag_dir(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._w = Writer(
                self.path, version=BAG_VERSION, storage_plugin=_storage_plugin(storage)
            )
        except (WriterError, OSError) as err:
            raise self._cannot_create(err) from None
        for k, v in (custom_data or {}).items():
            self._w.set_custom_data(str(k), str(v))
        self._conns: dict[str, Any] = {}
        self._ts = typestore()
        self._open = False

    @staticmethod
    def check_target(path: Path, overwrite: bool) -> None:
        """Raise BagError unless ``path`` may become a bag (absent, or a bag with ``overwrite``)."""
        if path.exists():
            if not overwrite:
                raise BagError(
                    f"{path} exists already; remove it or pass overwrite=True "
                    "(--overwrite): bags are never appended to"
                )
            if path.is_dir() and not (path / "metadata.yaml").exists() and any(path.iterdir()):
                raise BagError(
                    f"{path} exists and does not look like a bag (no metadata.yaml); "
                    "refusing to delete it, choose another output path"
                )

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
            raise BagError(
                f"{self.path}: topic {topic} already holds {conn.msgtype}, cannot also "
                f"write {msgtype}; use another topic name"
            )
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
            raise BagError(
                f"{path} exists and does not look like a bag (no metadata.yaml); "
                "refusing to delete it, choose another output path"
            )
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
            raise BagError(
                f"{self.path}: no metadata.yaml, not a complete rosbag2 folder. " + _CORRUPT_FIX
            )
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
            meta = (
                yaml.load((self.path / "metadata.yaml").read_text(), Loader=yaml.BaseLoader) or {}
            )  # all strings
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
            raise BagError(
                f"{self.path}: no topic {topic!r} in the bag; it has: {have}. "
                "Pass the right topic name (e.g. --topic), or record/convert the bag "
                "with that topic"
            )
        info = topics[topic]
        if msgtype is not None and info.msgtype != msgtype:
            raise BagError(
                f"{self.path}: topic {topic} has type {info.msgtype}, expected "
                f"{msgtype}; pass a topic of that type"
            )
        return info

    def messages(
        self, topics: Iterable[str] | None = None, *, raw: bool = False
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
            raise BagError(
                f"{self.path}: topic {topic} has type {info.msgtype}, which has no array "
                f"conversion (supported: {', '.join(_TO_RECORD)})"
            )
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
        raise BagError(
            f"{path}: the audio topic changes sample rate ({sorted(rates)}); "
            "resample it to one rate first"
        )
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
        out[off : off + len(s)] = s
    return out, int(rate), int(start)


def concat_motion(
    records: Sequence[MotionRecord], *, path: Any = ""
) -> tuple[np.ndarray, float, int]:
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
        out[off : off + len(m)] = m
        filled[off : off + len(m)] = True
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
