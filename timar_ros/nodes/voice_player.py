"""voice_player: plays the robot's speech on its loudspeaker in step with its mouth.

The robot's speech comes as AudioChunk on ``agent/speech`` (a TTS's output, streamed or whole),
as a WAV path on ``agent/say_wav``, or as text on ``agent/say`` (spoken with flite when it is
installed). Each utterance is heard ``lead_s`` after it arrives, after the speech already queued
or replacing it (``on_busy``), on one timeline (robot/speech_timeline.py). The node publishes
that timeline on ``agent/audio``, speech and silence, ``lead_s`` ahead of the loudspeaker,
each chunk stamped with the time it will be heard; the sound device plays the samples due at its
own DAC time (PortAudio's output time of each buffer, not the time of writing). With
conversation_policy's ``agent_audio_heard`` on and ``lead_s`` = -1 (default) the lead is the
policy's display delay (its latched ``display_delay`` topic; the node waits for it), so the
motion frames for a sample are due exactly when it is heard.

A chunk of ``agent/speech`` whose stamp continues the previous one (within 50 ms) is the same
utterance and is queued after it whatever ``on_busy`` says. Underruns are counted; a device that
stops is reopened every ``reopen_period_s`` while ``agent/audio`` goes on (the stamps are then
when the speech would have been heard); both are said, rate-limited.

A managed (lifecycle) node: ``configure`` checks and opens the device, ``activate`` starts the
timeline and the stream, ``deactivate`` stops them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64, String

from timar_ros import topics
from timar_ros.data.audio import load_wav, resample
from timar_ros.msg import AudioChunk
from timar_ros.nodes.convert import audio_buffer, audio_chunk, stamp_to_s
from timar_ros.nodes.fault_log import PERIOD_DESCRIPTION, PERIOD_PARAM, NodeFaultLog
from timar_ros.nodes.microphone import MicrophoneSetupError, import_sounddevice
from timar_ros.nodes.params import Param, declare
from timar_ros.nodes.runner import autostart, run_node
from timar_ros.robot.capture_clock import output_ahead_s
from timar_ros.robot.faults import Fault
from timar_ros.robot.speech_timeline import BUSY_MODES, PlaybackClock, SpeechTimeline

NAME = "voice_player"
PARAMS = {
    "device": Param(
        "sounddevice output device: '' = system default, a name substring, or an index"
    ),
    "sample_rate": Param("output rate in Hz (speech at other rates is resampled)", 8000, 192000),
    "lead_s": Param(
        "speech is heard this long after it arrives (s); -1 = conversation_policy's display "
        "delay (its latched display_delay topic), so the motion for it is due when it is heard",
        -1.0,
        30.0,
    ),
    "chunk_s": Param("seconds of audio per published agent/audio chunk", 0.005, 1.0),
    "on_busy": Param(
        "speech that arrives while the robot speaks: 'queue' (after it) or 'interrupt' "
        "(replace what is not yet heard)",
        choices=BUSY_MODES,
    ),
    "tts_voice": Param("flite voice for text on agent/say (e.g. slt, rms, awb); '' = default"),
    "reopen_period_s": Param("how often to reopen a sound device that stopped (s)", 0.1, 60.0),
    "autostart": Param(
        "configure and activate at start-up instead of waiting for lifecycle commands"
    ),
    PERIOD_PARAM: Param(PERIOD_DESCRIPTION, 0.0, 3600.0),
}
CONTINUES_S = 0.05  # an agent/speech chunk starting this close to the previous one's end


class VoicePlayer(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__(NAME, **kwargs)
        self._p = p = declare(self, NAME, PARAMS)
        self._rate = int(p["sample_rate"])
        self._chunk = max(1, int(round(float(p["chunk_s"]) * self._rate)))
        self._stream = None
        self._sd = None
        self._timeline: SpeechTimeline | None = None
        self._playback = PlaybackClock(self._rate)
        self._pub = None
        self._timers = []
        self._subs = []
        self._seq = 0
        self._last_speech_end: float | None = None  # stamp end of the previous agent/speech chunk
        self.underruns = 0
        self.device_losses = 0
        self._fault_log = NodeFaultLog(self.get_logger(), float(p[PERIOD_PARAM]))
        self._lock = threading.Lock()
        # the lead: the parameter, or (lead_s < 0) the policy's display delay once it is heard
        self._lead: float | None = float(p["lead_s"]) if float(p["lead_s"]) >= 0 else None
        self._active = False
        if self._p["autostart"]:
            autostart(self)

    # -- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self._p
        try:
            self._sd = import_sounddevice()
            self._device = int(p["device"]) if str(p["device"]).isdigit() else (p["device"] or None)
            self._sd.check_output_settings(
                device=self._device, samplerate=float(self._rate), channels=1, dtype="float32"
            )
        except MicrophoneSetupError as exc:
            self.get_logger().error(str(exc))
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:  # PortAudioError / ValueError: name the fix
            self.get_logger().error(
                f"cannot open output device '{p['device'] or 'default'}' at {self._rate} Hz: "
                f"{exc}. List devices with `python -m sounddevice` and set the 'device' parameter."
            )
            return TransitionCallbackReturn.FAILURE
        self._pub = self.create_lifecycle_publisher(
            AudioChunk, topics.AGENT_AUDIO, QoSProfile(depth=100)
        )
        self._subs = [
            self.create_subscription(AudioChunk, topics.AGENT_SPEECH, self._on_speech, 100),
            self.create_subscription(String, topics.AGENT_SAY_WAV, self._on_wav, 10),
            self.create_subscription(String, topics.AGENT_SAY, self._on_text, 10),
        ]
        if float(p["lead_s"]) < 0:
            latched = QoSProfile(
                depth=1,
                reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL,
            )
            self._subs.append(
                self.create_subscription(Float64, topics.DISPLAY_DELAY, self._on_delay, latched)
            )
        lead = (
            f"{p['lead_s']} s"
            if self._lead is not None and float(p["lead_s"]) >= 0
            else f"conversation_policy's display delay ({topics.DISPLAY_DELAY})"
        )
        self.get_logger().info(
            f"configured device '{p['device'] or 'default'}' at {self._rate} Hz: speech heard "
            f"{lead} after it arrives ({p['on_busy']} while speaking) -> {topics.AGENT_AUDIO}"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = True
        if self._lead is not None:
            self._start()
        else:
            self.get_logger().info(
                f"waiting for conversation_policy's display delay on {topics.DISPLAY_DELAY} "
                "(lead_s = -1); speech is dropped until then"
            )
        return super().on_activate(state)

    def _start(self) -> None:
        """The timeline with the current lead, the sound stream and the timers."""
        self._timeline = SpeechTimeline(self._rate, float(self._lead), self._now())
        self._playback = PlaybackClock(self._rate)
        self._open_stream()
        self._timers = [
            self.create_timer(float(self._p["chunk_s"]) / 2, self._publish_ahead),
            self.create_timer(float(self._p["reopen_period_s"]), self._watch_device),
        ]

    def _stop(self) -> None:
        for t in self._timers:
            self.destroy_timer(t)
        self._timers = []
        self._close_stream()
        self._timeline = None

    def _on_delay(self, msg: Float64) -> None:
        delay = float(msg.data)
        if not 0.0 <= delay <= 30.0 or delay == self._lead:
            return
        old, self._lead = self._lead, delay
        self.get_logger().info(
            f"lead {delay:g} s: the conversation policy's display delay"
            + ("" if old is None else f" (was {old:g} s; speech not yet heard is dropped)")
        )
        if self._active:
            self._stop()
            self._start()

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._stop()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._close()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        for t in self._timers:
            self.destroy_timer(t)
        self._timers = []
        self._close()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self):
        # the device callback must stop before the node goes (destroying a lifecycle node runs
        # no shutdown transition)
        self._close_stream()
        super().destroy_node()

    def _close(self) -> None:
        self._close_stream()
        for s in self._subs:
            self.destroy_subscription(s)
        self._subs = []
        if self._pub is not None:
            self.destroy_lifecycle_publisher(self._pub)
            self._pub = None

    # -- the device
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _open_stream(self) -> bool:
        try:
            self._stream = self._sd.OutputStream(
                device=self._device,
                samplerate=self._rate,
                channels=1,
                dtype="float32",
                blocksize=max(1, self._rate // 100),
                callback=self._on_device,
            )
            self._stream.start()
            return True
        except Exception as exc:
            self._stream = None
            self._fault_log(Fault("device_lost", f"cannot open the output device: {exc}"))
            return False

    def _close_stream(self) -> None:
        if self._stream is not None:
            try:
                self._stream.close()
            except Exception:  # a device that is gone may fail to close; it is closed for us
                pass
            self._stream = None

    def _watch_device(self) -> None:
        if self._stream is not None and self._stream.active:
            return
        self.device_losses += 1
        self._fault_log(
            Fault(
                "device_lost",
                f"the output device stopped ({self.device_losses} so far): reopening; "
                "agent/audio goes on, stamped when the speech would have been heard",
            )
        )
        self._close_stream()
        self._playback = PlaybackClock(self._rate)
        self._open_stream()

    def _on_device(self, out: np.ndarray, frames: int, time_info, status) -> None:
        # Runs on the PortAudio thread: the buffer is heard at its DAC time.
        now = self._now()
        ahead = output_ahead_s(time_info, self._stream.latency)
        tl = self._timeline
        if tl is None:  # (stopped between the callback's start and here)
            out[:] = 0
            return
        resyncs = self._playback.resyncs
        measured = tl.index(now + ahead)
        at = measured if self._playback.next is None else self._playback.next
        quiet = not tl.has_speech(min(at, measured), max(at, measured) + frames)
        index = self._playback.start_index(measured, frames, quiet)
        out[:, 0] = tl.read(index, frames)
        if self._playback.resyncs != resyncs:
            self._fault_log(
                Fault(
                    "playback_resyncs",
                    f"playback re-aligned to the device's clock ({self._playback.resyncs} so "
                    "far, in pauses unless far off): the device skipped or repeated audio",
                )
            )
        if status.output_underflow:
            with self._lock:
                self.underruns += 1
                n = self.underruns
            self._fault_log(
                Fault("underruns", f"output underrun ({n} so far): a gap was heard (busy CPU?)")
            )

    # -- publishing the timeline ahead of the loudspeaker
    def _publish_ahead(self) -> None:
        if self._timeline is None:
            return
        for heard_s, samples in self._timeline.publish_until(self._now(), self._chunk):
            self._pub.publish(audio_chunk(samples, self._rate, heard_s, "agent", self._seq))
            self._seq += 1

    # -- speech in
    def _say(self, samples: np.ndarray, what: str, continues: bool = False) -> None:
        if self._timeline is None:
            why = (
                "waiting for conversation_policy's display delay (lead_s = -1)"
                if self._active
                else "the node is not active"
            )
            self._fault_log(Fault("not_active", f"{what} dropped: {why}"))
            return
        now = self._now()
        mode = "queue" if continues else self._p["on_busy"]
        busy = self._timeline.speaking_until() > now
        start, dropped = self._timeline.add(samples, now, mode)
        if not continues:
            note = ""
            if busy and mode == "queue":
                note = ", queued after the speech in progress"
            elif dropped:
                note = f", interrupting {dropped / self._rate:.2f} s of queued speech"
            self.get_logger().info(
                f"{what}: {len(samples) / self._rate:.2f} s heard from {start - now:+.2f} s{note}"
            )

    def _on_speech(self, msg: AudioChunk) -> None:
        data, channels = audio_buffer(msg)
        if data.size % channels or int(msg.sample_rate) <= 0:
            self._fault_log(Fault("malformed", "agent/speech chunk dropped: bad channels or rate"))
            return
        x = data.reshape(-1, channels).mean(axis=1) if channels > 1 else data
        if int(msg.sample_rate) != self._rate:
            x = resample(x, int(msg.sample_rate), self._rate)
        stamp = stamp_to_s(msg.header.stamp)
        prev = self._last_speech_end
        continues = prev is not None and abs(stamp - prev) < CONTINUES_S
        self._last_speech_end = stamp + len(data) / channels / int(msg.sample_rate)
        self._say(np.asarray(x, np.float32), "speech", continues)

    def _on_wav(self, msg: String) -> None:
        try:
            x = load_wav(Path(msg.data), self._rate)
        except Exception as exc:
            self._fault_log(Fault("bad_wav", f"agent/say_wav {msg.data!r} not played: {exc}"))
            return
        self._say(x, f"WAV {Path(msg.data).name}")

    def _on_text(self, msg: String) -> None:
        if shutil.which("flite") is None:
            self._fault_log(
                Fault("no_tts", "agent/say needs flite (apt install flite); text not spoken")
            )
            return
        with tempfile.TemporaryDirectory() as d:
            wav = Path(d) / "say.wav"
            cmd = ["flite", "-t", msg.data, "-o", str(wav)]
            if self._p["tts_voice"]:
                cmd[1:1] = ["-voice", self._p["tts_voice"]]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            if r.returncode != 0 or not wav.is_file():
                self._fault_log(Fault("no_tts", f"flite failed: {r.stderr.strip()[-200:]}"))
                return
            x = load_wav(wav, self._rate)
        self._say(x, f"text ({len(msg.data)} characters)")


def main(args=None) -> int:
    return run_node(VoicePlayer, NAME, args)


if __name__ == "__main__":
    sys.exit(main())
