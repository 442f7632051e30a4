"""echo_canceller: the robot's own voice taken out of the microphone (robot/echo.py).

Subscribes to the microphone's raw audio (``user/audio_raw``) and to what the loudspeaker plays
(``reference_topic``, default voice_player's ``agent/audio``: stamped when each sample is
heard, published ahead of the sound) and publishes the partner's audio on ``user/audio``, each
chunk stamped with the capture time of its first sample. ``mode``: ``aec`` (WebRTC AEC3),
``half_duplex`` (the microphone muted while the robot speaks: the partner cannot interrupt it),
``none`` (pass; for hardware that cancels its own echo). Faults (no reference, a canceller
error, a resampled or late reference, an echo delay AEC3 cannot find) are logged rate-limited
and counted in /diagnostics.
"""

from __future__ import annotations

import sys
import time
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node

from timar_ros import topics
from timar_ros.msg import AudioChunk
from timar_ros.nodes.convert import audio_chunk, audio_samples, diagnostic_array, stamp_to_s
from timar_ros.nodes.fault_log import PERIOD_DESCRIPTION, PERIOD_PARAM, NodeFaultLog
from timar_ros.nodes.params import Param, declare
from timar_ros.nodes.qos import AUDIO_QOS, AUDIO_QOS_DESCRIPTION, audio_qos
from timar_ros.nodes.runner import run_node
from timar_ros.robot.echo import FALLBACKS, MODES, EchoCanceller, EchoConfig
from timar_ros.robot.echo_timing import ReferenceWait
from timar_ros.robot.faults import Fault
from timar_ros.robot.status import echo_status

NAME = "echo_canceller"
PARAMS = {
    "mode": Param(
        "'aec' (WebRTC AEC3 with the reference), 'half_duplex' (mute the microphone while the "
        "robot speaks: it cannot be interrupted) or 'none' (pass: the hardware cancels its echo)",
        choices=MODES,
    ),
    "reference_topic": Param(
        "AudioChunk topic of what the loudspeaker plays, stamped when heard (voice_player's "
        "agent/audio)"
    ),
    "noise_suppression": Param(
        "aec: WebRTC's noise suppressor after the canceller (it also takes most of the residual "
        "echo)"
    ),
    "fallback": Param(
        "microphone frames with no reference (voice_player not running): 'pass' them or 'mute' "
        "them",
        choices=FALLBACKS,
    ),
    "reference_delay_s": Param(
        "the robot's audio path beyond the reference stamps (s; negative: the echo comes "
        "before them); `timar echo calibrate` measures it",
        -0.5,
        1.9,
    ),
    "follow_delay": Param(
        "an echo the delay check finds outside AEC3's reach moves the reference by the delay "
        "found (said in the log); false: only said"
    ),
    "reference_wait_s": Param(
        "a microphone chunk whose reference has not arrived yet (a CPU burst delayed it) waits "
        "up to this long for it before the fallback (s); only while the reference streams",
        0.0,
        1.0,
    ),
    "duck_threshold_dbfs": Param(
        "half_duplex: a reference louder than this (RMS, dBFS) is the robot speaking", -90.0, 0.0
    ),
    "duck_hangover_s": Param(
        "half_duplex: the microphone stays muted this long after the robot stops (s)", 0.0, 2.0
    ),
    "delay_check_s": Param(
        "check the echo's delay against the reference every this many seconds of robot speech "
        "(0 = never)",
        0.0,
        3600.0,
    ),
    "audio_qos": Param(AUDIO_QOS_DESCRIPTION, choices=AUDIO_QOS),
    "diagnostics_period_s": Param("period of the /diagnostics status (s)", 0.1, 60.0),
    PERIOD_PARAM: Param(PERIOD_DESCRIPTION, 0.0, 3600.0),
}


class EchoCancellerNode(Node):
    def __init__(self, **kwargs):
        super().__init__(NAME, **kwargs)
        self._p = p = declare(self, NAME, PARAMS)
        self._fault_log = NodeFaultLog(self.get_logger(), float(p[PERIOD_PARAM]))
        self._config = EchoConfig(
            mode=p["mode"],
            noise_suppression=bool(p["noise_suppression"]),
            fallback=p["fallback"],
            reference_delay_s=float(p["reference_delay_s"]),
            follow_delay=bool(p["follow_delay"]),
            duck_threshold_dbfs=float(p["duck_threshold_dbfs"]),
            duck_hangover_s=float(p["duck_hangover_s"]),
            delay_check_s=float(p["delay_check_s"]),
        )
        self._config.validate()
        self.canceller: EchoCanceller | None = None  # made at the microphone's first chunk
        self._seq = 0
        # reference chunks before the microphone's first (its rate makes the canceller)
        self._pending_reference: deque = deque(maxlen=200)
        self._wait = ReferenceWait(float(p["reference_wait_s"]))
        qos = audio_qos(p["audio_qos"])
        self._pub = self.create_publisher(AudioChunk, topics.USER_AUDIO, qos)
        self.create_subscription(AudioChunk, topics.MIC_AUDIO, self._on_mic, qos)
        if p["mode"] != "none":
            self.create_subscription(AudioChunk, p["reference_topic"], self._on_reference, qos)
        self._diag = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        self.create_timer(float(p["diagnostics_period_s"]), self._publish_diagnostics)
        if p["mode"] != "none" and p["reference_wait_s"] > 0:  # a held chunk's wait ends
            self.create_timer(max(0.005, p["reference_wait_s"] / 4), self._release)
        ref = "" if p["mode"] == "none" else f" with reference {p['reference_topic']}"
        self.get_logger().info(
            f"echo mode {p['mode']}{ref}: {topics.MIC_AUDIO} -> {topics.USER_AUDIO}"
        )

    def _make(self, rate: int) -> EchoCanceller:
        ec = EchoCanceller(rate, self._config, on_fault=self._fault_log)
        for samples, r, stamp in self._pending_reference:
            ec.add_reference(samples, r, stamp)
        self._pending_reference.clear()
        return ec

    def _mono(self, msg: AudioChunk, what: str):
        """The chunk's samples down-mixed to mono [n] float32, or None (dropped, said, counted)
        when its buffer is not whole frames of its channels or its rate is not positive."""
        try:
            if int(msg.sample_rate) <= 0:
                raise ValueError(f"sample_rate {msg.sample_rate}")
            return audio_samples(msg).mean(axis=1, dtype=np.float32)
        except ValueError as exc:
            self._fault_log(Fault("malformed_chunks", f"{what} chunk dropped: {exc}"))
            return None

    def _on_reference(self, msg: AudioChunk) -> None:
        mono = self._mono(msg, "reference")
        if mono is None:
            return
        stamp = stamp_to_s(msg.header.stamp)
        self._wait.reference_arrived(time.monotonic())
        if self.canceller is None:
            self._pending_reference.append((mono, int(msg.sample_rate), stamp))
            return
        self.canceller.add_reference(mono, int(msg.sample_rate), stamp)
        self._release()

    def _on_mic(self, msg: AudioChunk) -> None:
        mono = self._mono(msg, "microphone")
        if mono is None:
            return
        rate = int(msg.sample_rate)
        if self.canceller is None:
            self.canceller = self._make(rate)
        elif rate != self.canceller.rate:
            for chunk in self._wait.flush():  # at the old rate, through the old canceller
                self._cancel(*chunk)
            self.get_logger().warning(
                f"the microphone's rate changed {self.canceller.rate} -> {rate} Hz: the "
                "canceller starts again"
            )
            self.canceller = self._make(rate)
        self._wait.push((mono, stamp_to_s(msg.header.stamp), msg.header.frame_id), time.monotonic())
        self._release()

    def _release(self) -> None:
        """Cancel and publish the held microphone chunks that are due (see ReferenceWait)."""
        if self.canceller is None:
            return
        before = self._wait.held
        ec = self.canceller
        for chunk in self._wait.release(
            lambda c: ec.reference_covers(c[1], len(c[0])), time.monotonic()
        ):
            self._cancel(*chunk)
        ec.counters.held_for_reference += self._wait.held - before

    def _cancel(self, mono: np.ndarray, stamp: float, frame_id: str) -> None:
        got = self.canceller.process(mono, stamp)
        if got is None:
            return
        out, stamp = got
        rate = self.canceller.rate
        self._pub.publish(audio_chunk(out, rate, stamp, frame_id, self._seq))
        self._seq += 1

    def _publish_diagnostics(self) -> None:
        status = echo_status(
            self.canceller, self._config.mode, self._p["reference_topic"], self._fault_log.counts
        )
        self._diag.publish(
            diagnostic_array(
                status, f"{self.get_name()}: echo", "microphone", self.get_clock().now().to_msg()
            )
        )


def main(args=None) -> int:
    return run_node(EchoCancellerNode, NAME, args)


if __name__ == "__main__":
    sys.exit(main())
