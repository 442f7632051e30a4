"""microphone: captures a sound device with sounddevice (PortAudio) and publishes AudioChunk.

A managed (lifecycle) node: `configure` opens the device and checks its settings, `activate`
starts streaming, `deactivate` stops it. Chunks are stamped with the estimated capture time of
their first sample: each block's reading (ROS clock now - block duration - the device's input
latency) feeds one clock for the stream (robot/capture_clock.py), so the stamps are evenly spaced
instead of carrying the callback's scheduling jitter.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import qos_profile_sensor_data

from timar_ros import topics
from timar_ros.msg import AudioChunk
from timar_ros.nodes.convert import audio_chunk
from timar_ros.nodes.fault_log import PERIOD_DESCRIPTION, PERIOD_PARAM, NodeFaultLog
from timar_ros.nodes.params import Param, declare
from timar_ros.nodes.runner import autostart, run_node
from timar_ros.robot.capture_clock import CaptureClock, capture_reading
from timar_ros.robot.faults import Fault

NAME = "microphone"
PARAMS = {
    "device": Param("sounddevice input device: '' = system default, a name substring, or an index"),
    "sample_rate": Param(
        "capture rate in Hz (16000 avoids resampling in the policy)", 8000, 192000
    ),
    "chunk_s": Param("seconds of audio per AudioChunk", 0.005, 1.0),
    "channels": Param(
        "channels to capture; more than 1 is down-mixed to mono before publishing", 1, 32
    ),
    "role": Param(
        "'user' (the partner, default) or 'agent': selects the topic user/audio or agent/audio",
        choices=("user", "agent"),
    ),
    "gain": Param("linear gain applied to the samples (clipped to [-1, 1])", 0.0, 100.0),
    "autostart": Param(
        "configure and activate at start-up instead of waiting for lifecycle commands"
    ),
    PERIOD_PARAM: Param(PERIOD_DESCRIPTION, 0.0, 3600.0),
}


class MicrophoneSetupError(RuntimeError):
    """The sound device cannot be opened as configured."""


def import_sounddevice():
    """Import sounddevice, turning a missing PortAudio into an actionable message."""
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError when libportaudio is absent
        raise MicrophoneSetupError(
            f"PortAudio is not available ({exc}); install it (Debian/Ubuntu: apt install "
            "libportaudio2)"
        ) from exc
    return sounddevice


def to_mono_chunk(block: np.ndarray, gain: float) -> np.ndarray:
    """A captured block [frames, channels] -> mono float32 [frames] in [-1, 1]."""
    mono = block.mean(axis=1) if block.ndim == 2 else block
    return np.clip(mono * gain, -1.0, 1.0).astype(np.float32)


class Microphone(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__(NAME, **kwargs)
        self._p = declare(self, NAME, PARAMS)
        self._stream = None
        self._pub = None
        self._seq = 0
        self._lock = threading.Lock()
        self._overflows = 0
        self._capture_clock = CaptureClock(int(self._p["sample_rate"]))
        self._fault_log = NodeFaultLog(self.get_logger(), float(self._p[PERIOD_PARAM]))
        if self._p["autostart"]:
            autostart(self)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self._p
        try:
            sd = import_sounddevice()
            device = int(p["device"]) if str(p["device"]).isdigit() else (p["device"] or None)
            sd.check_input_settings(
                device=device,
                samplerate=float(p["sample_rate"]),
                channels=int(p["channels"]),
                dtype="float32",
            )
            blocksize = int(round(float(p["chunk_s"]) * int(p["sample_rate"])))
            self._stream = sd.InputStream(
                device=device,
                samplerate=int(p["sample_rate"]),
                channels=int(p["channels"]),
                dtype="float32",
                blocksize=blocksize,
                callback=self._on_audio,
            )
        except MicrophoneSetupError as exc:
            self.get_logger().error(str(exc))
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:  # PortAudioError / ValueError from sounddevice: name the fix
            self.get_logger().error(
                f"cannot open input device '{p['device'] or 'default'}' at {p['sample_rate']} Hz, "
                f"{p['channels']} channel(s): {exc}. List devices with "
                "`python -m sounddevice` and set the 'device' parameter."
            )
            return TransitionCallbackReturn.FAILURE
        topic = topics.USER_AUDIO if p["role"] == "user" else topics.AGENT_AUDIO
        self._pub = self.create_lifecycle_publisher(AudioChunk, topic, qos_profile_sensor_data)
        self.get_logger().info(
            f"configured device '{p['device'] or 'default'}' at {p['sample_rate']} Hz -> {topic}"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._capture_clock = CaptureClock(int(self._p["sample_rate"]))
        self._stream.start()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stream.stop()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._close()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._close()
        return TransitionCallbackReturn.SUCCESS

    def _close(self) -> None:
        if self._stream is not None:
            self._stream.close()  # returns once no callback runs any more
            self._stream = None
        with self._lock:  # a callback in flight publishes before this, or sees no publisher
            pub, self._pub = self._pub, None
        if pub is not None:
            self.destroy_lifecycle_publisher(pub)

    def destroy_node(self):
        # The PortAudio callback publishes: the device stops before the node goes (destroying a
        # lifecycle node runs no shutdown transition).
        self._close()
        super().destroy_node()

    def _on_audio(self, block: np.ndarray, frames: int, time_info, status) -> None:
        # Runs on the PortAudio thread.
        rate = int(self._p["sample_rate"])
        latency = float(getattr(self._stream, "latency", 0.0) or 0.0)
        measured = capture_reading(self.get_clock().now().nanoseconds * 1e-9, frames, rate, latency)
        with self._lock:
            stamp_s, resynced = self._capture_clock.stamp(measured, frames)
            if resynced:
                self._fault_log(
                    Fault(
                        "capture_resyncs",
                        f"capture clock re-anchored ({self._capture_clock.resyncs} so far): "
                        "the device paused or lost audio, or the clock jumped",
                    )
                )
            if status.input_overflow:
                self._overflows += 1
                self._fault_log(
                    Fault(
                        "input_overflows",
                        f"input overflow ({self._overflows} so far): "
                        "audio was lost (a busy CPU, or chunk_s too small)",
                    )
                )
            msg = audio_chunk(
                to_mono_chunk(block, float(self._p["gain"])),
                rate,
                stamp_s,
                self._p["role"],
                self._seq,
            )
            self._seq += 1
            if self._pub is not None:
                try:
                    self._pub.publish(msg)
                except RuntimeError:  # rclpy's RCLError
                    # Ctrl-C shuts the context down at once, before destroy_node stops the
                    # device: a block captured in between has no one to go to
                    if self.context.ok():
                        raise


def main(args=None) -> int:
    return run_node(Microphone, NAME, args)


if __name__ == "__main__":
    sys.exit(main())
