"""Conversions between numpy arrays and our ROS messages (the nodes' one place for them)."""

from __future__ import annotations

from array import array

import numpy as np

from timar_ros import motion as mv
from timar_ros.msg import AudioChunk, HeadMotion


def float32_seq(values: np.ndarray) -> array:
    """numpy -> array('f'), the type rosidl expects for unbounded float32[] fields (no loop)."""
    out = array("f")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    return out


def stamp_to_s(stamp) -> float:
    """builtin_interfaces/Time -> seconds (float)."""
    return stamp.sec + stamp.nanosec * 1e-9


def s_to_stamp(seconds: float, stamp) -> None:
    """Write seconds (>= 0) into a builtin_interfaces/Time in place."""
    ns = int(round(seconds * 1e9))
    stamp.sec, stamp.nanosec = ns // 1_000_000_000, ns % 1_000_000_000


def audio_chunk(
    samples: np.ndarray, sample_rate: int, stamp_s: float, frame_id: str, seq: int
) -> AudioChunk:
    """Mono samples [N] float32 -> AudioChunk stamped at its first sample (seconds)."""
    msg = AudioChunk(sample_rate=int(sample_rate), channels=1, seq=int(seq))
    s_to_stamp(stamp_s, msg.header.stamp)
    msg.header.frame_id = frame_id
    msg.samples = float32_seq(samples)
    return msg


def audio_buffer(msg: AudioChunk) -> tuple[np.ndarray, int]:
    """AudioChunk -> (samples [n * channels] float32 interleaved as sent, a view; channels >= 1)."""
    data = (
        np.frombuffer(msg.samples, dtype=np.float32)
        if len(msg.samples)
        else np.zeros(0, np.float32)
    )
    return data, max(int(msg.channels), 1)


def audio_samples(msg: AudioChunk) -> np.ndarray:
    """AudioChunk -> samples [frames, channels] float32 (a view of the message buffer).

    Raises ValueError when the buffer is not a whole number of ``channels``-sample frames."""
    data, channels = audio_buffer(msg)
    if len(data) % channels:
        raise ValueError(
            f"AudioChunk has {len(data)} samples, not a whole number of {channels}-channel "
            "frames: the publisher's 'channels' field or its buffer is wrong"
        )
    return data.reshape(-1, channels)


def head_motion(
    frames: np.ndarray,
    stamp_s: float,
    turn_index: int,
    model_id: str,
    frame_period: float = 1.0 / mv.FPS,
    frame_id: str = "flame_head",
    first_frame: int = 0,
) -> HeadMotion:
    """Motion [N, 56] (exp | jaw | rotation) -> HeadMotion with frame 0 shown at stamp_s (s),
    frame 0 being frame ``first_frame`` of turn ``turn_index``."""
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 2 or frames.shape[1] != mv.MOTION_DIM:
        raise ValueError(f"motion must be [N, {mv.MOTION_DIM}], got {frames.shape}")
    msg = HeadMotion(
        frame_period=float(frame_period),
        num_frames=len(frames),
        turn_index=int(turn_index),
        model_id=model_id,
        first_frame=int(first_frame),
    )
    s_to_stamp(stamp_s, msg.header.stamp)
    msg.header.frame_id = frame_id
    msg.expression = float32_seq(frames[:, mv.EXP])
    msg.jaw = float32_seq(frames[:, mv.JAW])
    msg.head_rotation = float32_seq(frames[:, mv.ROT])
    return msg


def motion_frames(msg: HeadMotion) -> np.ndarray:
    """HeadMotion -> motion [N, 56] float32 (exp | jaw | rotation)."""
    n = int(msg.num_frames)
    parts = [(msg.expression, mv.EXP_DIM), (msg.jaw, mv.JAW_DIM), (msg.head_rotation, mv.ROT_DIM)]
    cols = []
    for values, dim in parts:
        arr = np.frombuffer(values, dtype=np.float32) if len(values) else np.zeros(0, np.float32)
        if arr.size != n * dim:
            raise ValueError(
                f"HeadMotion with num_frames={n} has a field of {arr.size} values, expected "
                f"{n * dim}"
            )
        cols.append(arr.reshape(n, dim))
    return np.concatenate(cols, axis=1)


def diagnostic_array(status, name: str, hardware_id: str, stamp):
    """A :class:`timar_ros.robot.status.Status` as a one-status ``DiagnosticArray`` at ``stamp``."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    level = {
        "ok": DiagnosticStatus.OK,
        "warn": DiagnosticStatus.WARN,
        "error": DiagnosticStatus.ERROR,
    }
    msg = DiagnosticArray(
        status=[
            DiagnosticStatus(
                level=level[status.level],
                name=name,
                message=status.message,
                hardware_id=str(hardware_id),
                values=[KeyValue(key=k, value=str(v)) for k, v in status.values.items()],
            )
        ]
    )
    msg.header.stamp = stamp
    return msg
