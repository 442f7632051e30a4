"""The QoS the nodes read and publish audio with (their ``audio_qos`` parameter)."""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

AUDIO_QOS = ("sensor_data", "reliable")
AUDIO_QOS_DESCRIPTION = "'sensor_data' (best effort, REP-2003) or 'reliable' for its audio topics"
# Chunks a reader holds until its callback takes them. rclpy's sensor_data profile keeps 5: a
# policy tick (20-45 ms) plus a turn's commit behind it outlast five 20-ms microphone chunks, and
# DDS then drops the oldest without a word (live demo with 20-ms chunks: 0.17 s of every turn
# lost, every turn padded). 100 chunks are 2-5 s of audio.
AUDIO_DEPTH = 100


def audio_qos(kind: str) -> QoSProfile:
    """``kind`` 'sensor_data' (best effort, volatile) or 'reliable', keeping AUDIO_DEPTH chunks."""
    if kind not in AUDIO_QOS:
        raise ValueError(f"audio_qos must be one of {AUDIO_QOS}, got {kind!r}")
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=AUDIO_DEPTH,
        reliability=ReliabilityPolicy.BEST_EFFORT
        if kind == "sensor_data"
        else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )
