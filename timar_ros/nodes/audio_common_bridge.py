"""audio_common_bridge: audio from an ``audio_common_msgs`` publisher -> AudioChunk.

Most ROS 2 robots already publish their microphone with an audio_common package. Two packages of
that name exist and cannot be installed together, so the message family is a parameter and its
package is imported only when this node starts (robot/audio_common.py decodes both):

* ``ros_drivers``: ros-drivers/audio_common's ``AudioDataStamped`` (raw bytes) on
  ``input_topic`` plus ``AudioInfo`` on ``info_topic``; until an AudioInfo arrives the
  ``sample_rate`` / ``channels`` / ``sample_format`` parameters describe the stream. mp3 is
  refused with the fix (``audio_capture`` with ``format:=wave``).
* ``audio_stamped``: mgonzs13/audio_common's ``AudioStamped`` (typed arrays + info in each
  message).

Stamps are the messages' header stamps; samples are published interleaved with their channel
count (the policy down-mixes and counts it). A message that cannot be decoded is dropped, counted
and said (rate-limited), never guessed at.
"""

from __future__ import annotations

import importlib
import sys

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile

from timar_ros import topics
from timar_ros.msg import AudioChunk
from timar_ros.nodes.convert import float32_seq
from timar_ros.nodes.fault_log import PERIOD_DESCRIPTION, PERIOD_PARAM, NodeFaultLog
from timar_ros.nodes.params import Param, declare
from timar_ros.nodes.qos import audio_qos
from timar_ros.nodes.runner import run_node
from timar_ros.robot.audio_common import (
    MESSAGE_FAMILIES,
    AudioFormatError,
    check_coding,
    decode_pcm,
    decode_typed,
)
from timar_ros.robot.faults import Fault

NAME = "audio_common_bridge"
PARAMS = {
    "message_family": Param(
        "'ros_drivers' (AudioDataStamped + AudioInfo, ros-drivers/audio_common) or "
        "'audio_stamped' (AudioStamped, mgonzs13/audio_common)",
        choices=MESSAGE_FAMILIES,
    ),
    "input_topic": Param("the audio_common audio topic to read"),
    "info_topic": Param("ros_drivers only: the AudioInfo topic (audio_capture: every 5 s)"),
    "sample_rate": Param("ros_drivers: sample rate until an AudioInfo arrives (Hz)", 1000, 192000),
    "channels": Param("ros_drivers: channels until an AudioInfo arrives", 1, 32),
    "sample_format": Param("ros_drivers: sample format until an AudioInfo arrives (e.g. S16LE)"),
    "role": Param(
        "'user' (the partner, default) or 'agent': publish on user/audio or agent/audio",
        choices=("user", "agent"),
    ),
    PERIOD_PARAM: Param(PERIOD_DESCRIPTION, 0.0, 3600.0),
}

_PACKAGES = {
    "ros_drivers": "ros-drivers/audio_common (apt install ros-$ROS_DISTRO-audio-common-msgs)",
    "audio_stamped": "mgonzs13/audio_common (build audio_common_msgs from its repository)",
}


class BridgeSetupError(RuntimeError):
    """The selected audio_common message package cannot be imported."""


def import_messages(family: str):
    """The ``audio_common_msgs.msg`` module of ``family``, checked to be that family's."""
    want = {"ros_drivers": "AudioDataStamped", "audio_stamped": "AudioStamped"}[family]
    try:
        msgs = importlib.import_module("audio_common_msgs.msg")
    except ImportError as exc:
        raise BridgeSetupError(
            f"message_family={family!r} needs the audio_common_msgs package of "
            f"{_PACKAGES[family]}; it is not installed or not sourced ({exc})"
        ) from exc
    if not hasattr(msgs, want):
        other = next(f for f in MESSAGE_FAMILIES if f != family)
        raise BridgeSetupError(
            f"the installed audio_common_msgs has no {want}: it is the other package; set "
            f"message_family:={other}"
        )
    return msgs


class AudioCommonBridge(Node):
    def __init__(self, **kwargs):
        super().__init__(NAME, **kwargs)
        self._p = p = declare(self, NAME, PARAMS)
        msgs = import_messages(p["message_family"])
        self._info = {
            "rate": int(p["sample_rate"]),
            "channels": int(p["channels"]),
            "format": str(p["sample_format"]),
            "coding": "wave",
        }
        self._topic = topics.USER_AUDIO if p["role"] == "user" else topics.AGENT_AUDIO
        # best effort as the capture nodes publish, but AUDIO_DEPTH chunks deep: rclpy's
        # sensor_data keeps 5, which a bridge starved for 0.1 s on a busy machine overflows
        sensor = audio_qos("sensor_data")
        self._pub = self.create_publisher(AudioChunk, self._topic, sensor)
        self._seq = 0
        self.dropped = 0
        self._fault_log = NodeFaultLog(self.get_logger(), float(p[PERIOD_PARAM]))
        if p["message_family"] == "ros_drivers":
            self.create_subscription(msgs.AudioDataStamped, p["input_topic"], self._on_raw, sensor)
            # audio_capture publishes it reliable and volatile every 5 s (a transient-local
            # subscription would not match it)
            self.create_subscription(
                msgs.AudioInfo, p["info_topic"], self._on_info, QoSProfile(depth=1)
            )
        else:
            self.create_subscription(msgs.AudioStamped, p["input_topic"], self._on_typed, sensor)
        self.get_logger().info(
            f"{p['message_family']} audio on {p['input_topic']} -> {self._topic}"
        )

    def _on_info(self, msg) -> None:
        self._info = {
            "rate": int(msg.sample_rate),
            "channels": int(msg.channels),
            "format": str(msg.sample_format),
            "coding": str(msg.coding_format),
        }

    def _on_raw(self, msg) -> None:
        i = self._info
        try:
            check_coding(i["coding"])
            samples = decode_pcm(msg.audio.data, i["format"], i["channels"])
        except AudioFormatError as exc:
            return self._drop(str(exc))
        self._publish(msg.header, samples, i["rate"], i["channels"])

    def _on_typed(self, msg) -> None:
        info = msg.audio.info
        try:
            samples = decode_typed(msg.audio.audio_data, info.format, int(info.channels))
        except AudioFormatError as exc:
            return self._drop(str(exc))
        self._publish(msg.header, samples, int(info.rate), int(info.channels))

    def _drop(self, why: str) -> None:
        self.dropped += 1
        self._fault_log(Fault("undecodable", f"dropped an audio message ({self.dropped}): {why}"))

    def _publish(self, header, samples: np.ndarray, rate: int, channels: int) -> None:
        if rate <= 0:
            return self._drop(f"sample rate {rate} Hz")
        out = AudioChunk(sample_rate=int(rate), channels=int(channels), seq=self._seq)
        out.header = header
        out.header.frame_id = self._p["role"]
        out.samples = float32_seq(samples)
        self._seq += 1
        self._pub.publish(out)


def main(args=None) -> int:
    return run_node(AudioCommonBridge, NAME, args, setup_errors=(BridgeSetupError,))


if __name__ == "__main__":
    sys.exit(main())
