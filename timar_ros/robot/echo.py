"""The robot's own voice taken out of its microphone (no ROS).

On a robot the loudspeaker is centimetres from the microphone, so what the microphone hears
while the robot speaks is mostly the robot. :class:`EchoCanceller` takes the microphone's chunks
and the loudspeaker's signal (the reference: voice_player's ``agent/audio``, stamped when each
sample is heard, published ahead of the sound) on the same clock, and returns the microphone's
audio with the robot's voice removed. Modes (:data:`MODES`):

* ``"aec"``: acoustic echo cancellation by WebRTC's AEC3 (the ``AudioProcessingModule`` of the
  ``livekit`` wheel: the canceller of browsers and WebRTC calls, adaptive filter, delay
  estimator and residual suppressor). Both sides run in 10-ms frames; the reference frame fed
  with a microphone frame is the one heard at the same time (plus ``reference_delay_s``, the
  extra delay of the robot's own audio path if calibration found one), so the canceller only
  has to find the acoustic path. Reference audio at another rate is resampled (counted).
* ``"half_duplex"``: the microphone is muted (``duck_gain``) while the loudspeaker plays and for
  ``duck_hangover_s`` after (the room's echo tail). No canceller needed, but the partner cannot
  interrupt the robot: what they say while it speaks is lost.
* ``"none"``: the microphone passes as it is (hardware that cancels its own echo, e.g. a
  microphone array with on-board AEC).

Faults are counted and returned, never silent: a microphone frame for which no reference has
arrived (voice_player not running: that frame passes or is muted, as ``fallback`` says), a
canceller error (the raw frame passes), a resampled reference.

Where the reference lies on the microphone's clock, and where the echo is against it, is
robot/echo_timing.py's (:class:`~timar_ros.robot.echo_timing.ReferenceTimeline`,
:class:`~timar_ros.robot.echo_timing.DelayMonitor`): the robot's audio path beyond the stamps,
which ``reference_delay_s`` takes out when AEC3 cannot (its delay estimator covers
:data:`AEC3_MAX_DELAY_S`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from timar_ros.robot.echo_timing import (
    DelayMonitor,
    ReferenceTimeline,
    estimate_delay,
)

MODES = ("aec", "half_duplex", "none")
FALLBACKS = ("pass", "mute")
FRAME_S = 0.01  # AEC3 works on 10-ms frames
MAX_EARLY_S = 0.5  # the reference is read at most this far ahead of the microphone
AEC_RATES = (8000, 16000, 32000, 48000)
# how far after its reference AEC3 finds an echo by itself (s). Measured (`timar echo bench
# --delays`, livekit 1.2.1): ERLE >= 34 dB with the echo 0-0.5 s late, 30 dB in the first 2 s up
# to 0.45 s, 5 dB at 0.55 s. Beyond it, reference_delay_s must take the rest
AEC3_MAX_DELAY_S = 0.45
# AEC3 finds no echo that comes before its reference, and two clocks' stamps are never exact
# (on PulseAudio the echo came 45 ms before the stamps): the reference is fed this much ahead of
# the time its stamps say, so the echo may come between AEC3_LEAD_S early and AEC3_MAX_DELAY_S -
# AEC3_LEAD_S late; the delay check follows one further out. 12 rooms (`timar echo bench`):
# lead 0 / 0.05 / 0.1 s: ERLE 33.6 / 35.6 / 35.1 dB, robot-alone turns heard as the partner
# 1.5 / 1.5 / 6.8 %: a longer lead costs suppression, so the rest is left to the check
AEC3_LEAD_S = 0.05
# an echo earlier than this (s) is followed even within reach (see EchoCanceller._check_delay)
FOLLOW_EARLY_S = 0.02
# where the echo may come against the reference's stamps (+ reference_delay_s) for AEC3 (s)
AEC3_REACH_S = (-AEC3_LEAD_S, AEC3_MAX_DELAY_S - AEC3_LEAD_S)


class EchoSetupError(RuntimeError):
    """The canceller cannot run as configured (a missing package, a rate it does not take)."""


@dataclass
class EchoConfig:
    """How :class:`EchoCanceller` treats the robot's voice (units: seconds, dB, linear)."""

    mode: str = "aec"
    # AEC3's noise suppressor after the canceller: it also takes most of the residual echo
    # (12 simulated rooms: robot-alone turns heard as "partner speaking" 9 % -> 1.5 %)
    noise_suppression: bool = True
    # a microphone frame with no reference for its time (voice_player not running, or its
    # audio late): "pass" the microphone as it is (the robot may be heard as the partner) or
    # "mute" it (the partner is not heard until the reference comes back)
    fallback: str = "pass"
    # the robot's audio path beyond the reference stamps (DAC, amplifier; negative: the echo
    # comes before the stamps say): the reference is fed this much later than its stamp says. 0
    # when voice_player's and the microphone's stamps agree; `timar echo calibrate` measures it
    reference_delay_s: float = 0.0
    # an echo found outside AEC3's reach by the delay check moves the reference by the delay
    # found (said and counted); False: only said
    follow_delay: bool = True
    # half_duplex: a reference frame louder than this (RMS, dB re full scale) counts as speech
    duck_threshold_dbfs: float = -50.0
    duck_hangover_s: float = 0.3
    duck_gain: float = 0.0
    # reference samples kept (s): covers reference_delay_s and a microphone running behind
    keep_s: float = 3.0
    # how often the echo's delay is checked against the reference (s of audio; 0 = never)
    delay_check_s: float = 10.0

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"echo mode must be one of {MODES}, got {self.mode!r}")
        if self.fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}, got {self.fallback!r}")
        if not -MAX_EARLY_S <= self.reference_delay_s < self.keep_s - 1.0:
            raise ValueError(
                f"reference_delay_s must be in [{-MAX_EARLY_S}, keep_s - 1 = {self.keep_s - 1}) "
                f"s, got {self.reference_delay_s}"
            )
        if not 0.0 <= self.duck_gain <= 1.0:
            raise ValueError(f"duck_gain must be in [0, 1], got {self.duck_gain}")
        if self.delay_check_s < 0:
            raise ValueError(f"delay_check_s must be >= 0, got {self.delay_check_s}")
        if self.duck_hangover_s < 0:
            raise ValueError(f"duck_hangover_s must be >= 0, got {self.duck_hangover_s}")


@dataclass
class EchoCounters:
    """What happened to the microphone's frames (10 ms each)."""

    frames: int = 0
    cancelled: int = 0  # through the canceller with the reference known for them
    ducked: int = 0  # half_duplex: muted while the robot spoke
    no_reference: int = 0  # no reference known for the frame: passed as the fallback says
    canceller_errors: int = 0  # the canceller raised: the raw frame passed
    resampled_reference_chunks: int = 0
    late_reference_chunks: int = 0  # arrived after the microphone frames they belonged to
    held_for_reference: int = 0  # microphone chunks held until their reference came (late)
    reference_gaps: int = 0  # reference streams with a hole (filled with silence)
    delay_out_of_range: int = 0  # delay checks that found the echo where AEC3 cannot
    delay_followed: int = 0  # ... and moved the reference by it (follow_delay)
    errors: list[str] = field(default_factory=list)  # distinct error texts, first few

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["errors"] = list(self.errors)
        return d


def _int16(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, -1.0, 1.0) * 32767.0).round().astype(np.int16)


class Aec3:
    """WebRTC AEC3 on one mono stream (``livekit.rtc.AudioProcessingModule``); 10-ms frames of
    float32 in [-1, 1] at a rate in :data:`AEC_RATES`."""

    def __init__(self, sample_rate: int, noise_suppression: bool = False):
        if sample_rate not in AEC_RATES:
            raise EchoSetupError(
                f"AEC3 runs at {AEC_RATES} Hz, the microphone is at {sample_rate} Hz: set the "
                "microphone's sample_rate to one of them"
            )
        try:
            from livekit import rtc
        except ImportError as exc:
            raise EchoSetupError(
                f"echo cancellation needs WebRTC's AEC3 from the 'livekit' package ({exc}): pip "
                "install livekit, or set the echo mode to 'half_duplex' or 'none'"
            ) from exc
        self._rtc = rtc
        self.rate = int(sample_rate)
        self.n = int(round(self.rate * FRAME_S))
        self._ns = bool(noise_suppression)
        self._apm = self._new()
        # the output lags the input by the canceller's own blocking (8-15 ms by rate and noise
        # suppression): the cleaned samples are stamped that much earlier than the frames that
        # carried them out
        key = (self.rate, self._ns)
        if key not in _LATENCY_S:
            _LATENCY_S[key] = self._measure_latency()
        self.latency_s = _LATENCY_S[key]

    def _new(self):
        return self._rtc.AudioProcessingModule(
            echo_cancellation=True, noise_suppression=self._ns, high_pass_filter=True
        )

    def _frame(self, x: np.ndarray):
        return self._rtc.AudioFrame(bytearray(_int16(x).tobytes()), self.rate, 1, self.n)

    def process(self, mic: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """One frame: mic, reference [n] float32 -> the microphone with the echo removed [n]."""
        return self._run(self._apm, mic, reference)

    def _run(self, apm, mic: np.ndarray, reference: np.ndarray) -> np.ndarray:
        apm.process_reverse_stream(self._frame(reference))
        m = self._frame(mic)
        apm.set_stream_delay_ms(0)  # aligned by the stamps; AEC3 finds the rest
        apm.process_stream(m)
        return np.frombuffer(m.data, dtype=np.int16).astype(np.float32) / 32767.0

    def _measure_latency(self) -> float:
        """The input -> output delay (s), on a scratch instance fed noise and a silent
        reference."""
        scratch, n = self._new(), self.n
        x = (0.1 * np.random.default_rng(0).standard_normal(n * 50)).astype(np.float32)
        silent = np.zeros(n, np.float32)
        y = np.concatenate([self._run(scratch, x[i : i + n], silent) for i in range(0, len(x), n)])
        delay, prominence = estimate_delay(x, y, self.rate, 0.05)
        if prominence < 5 or delay < 0:
            raise EchoSetupError(f"AEC3's latency at {self.rate} Hz not measurable ({delay} s)")
        return delay


_LATENCY_S: dict[tuple[int, bool], float] = {}  # (rate, noise suppression) -> AEC3's latency


class EchoCanceller:
    """Microphone chunks in, the partner's audio out (see the module doc).

    :meth:`add_reference` the loudspeaker's chunks as they arrive; :meth:`process` each
    microphone chunk: it returns the finished 10-ms frames as one chunk (float32 [k * 10 ms],
    stamp of its first sample in s), or None while less than a frame is buffered. A chunk_s that
    is a multiple of 10 ms adds no delay."""

    def __init__(
        self, sample_rate: int, config: EchoConfig | None = None, canceller=None, on_fault=None
    ):
        self.on_fault = on_fault or (lambda fault: None)  # gets robot.faults.Fault
        self.config = config or EchoConfig()
        self.config.validate()
        self.rate = int(sample_rate)
        self.n = int(round(self.rate * FRAME_S))
        if abs(self.n - self.rate * FRAME_S) > 1e-9:
            raise EchoSetupError(f"sample_rate {sample_rate} Hz is not a whole number per 10 ms")
        self.counters = EchoCounters()
        self.cpu_s = 0.0  # this thread's CPU time in add_reference and process (s)
        self.reference = ReferenceTimeline(self.rate, self.config.keep_s)
        self._aec = None
        self.latency_s = 0.0  # output stamps = input stamps - this
        if self.config.mode == "aec":
            self._aec = (
                canceller
                if canceller is not None
                else Aec3(self.rate, noise_suppression=self.config.noise_suppression)
            )
            self.latency_s = float(getattr(self._aec, "latency_s", 0.0))
        self._lag = int(round(self.latency_s * self.rate))
        self.latency_s = self._lag / self.rate
        self._raw_tail = np.zeros(self._lag, np.float32)
        self._pending = np.zeros(0, np.float32)
        self._pending_i0: int | None = None
        self._last_loud = -(10**12)  # absolute sample index of the last loud reference frame
        self.delay = DelayMonitor(self.rate, self.config.delay_check_s)
        # the reference read for the microphone's sample i is the one stamped i - shift
        # (reference_delay_s; moved by the delay check with follow_delay), and AEC3 gets it
        # `lead` samples ahead of that
        self._shift = int(round(self.config.reference_delay_s * self.rate))
        self._lead = int(round(AEC3_LEAD_S * self.rate)) if self.config.mode == "aec" else 0

    def reference_covers(self, stamp_s: float, n: int) -> bool:
        """Whether the reference has arrived for the microphone's samples from ``stamp_s`` on,
        ``n`` of them (always, in mode "none")."""
        if self.config.mode == "none":
            return True
        end = self.reference.end
        i0 = int(round(stamp_s * self.rate))
        return end is not None and i0 + n - self._shift + self._lead <= end

    @property
    def reference_delay_s(self) -> float:
        """The reference's delay in use (s): reference_delay_s, moved by followed checks."""
        return self._shift / self.rate

    # -- the loudspeaker
    def add_reference(self, samples: np.ndarray, rate: int, stamp_s: float) -> None:
        """The loudspeaker's chunk [n] float32 at ``rate`` Hz, heard from ``stamp_s`` on."""
        t = time.thread_time()
        try:
            self._add_reference(samples, rate, stamp_s)
        finally:
            self.cpu_s += time.thread_time() - t

    def _add_reference(self, samples: np.ndarray, rate: int, stamp_s: float) -> None:
        x = np.asarray(samples, np.float32).reshape(-1)
        c = self.counters
        if int(rate) != self.rate:
            from timar_ros.data.audio import resample

            x = resample(x, int(rate), self.rate)
            c.resampled_reference_chunks += 1
            self._fault(
                "resampled_reference_chunks",
                f"reference at {rate} Hz resampled to the microphone's {self.rate} Hz "
                f"({c.resampled_reference_chunks} chunks so far)",
                "info",
            )
        late, gap = self.reference.write(x, stamp_s)
        if late:
            c.late_reference_chunks += 1
            self._fault(
                "late_reference_chunks",
                f"reference audio arrived after the microphone frames it belongs to "
                f"({c.late_reference_chunks} chunks so far): those frames passed uncancelled; "
                "is voice_player publishing ahead of the sound (lead_s)?",
            )
        if gap:
            c.reference_gaps += 1
            self._fault(
                "reference_gaps",
                f"hole in the reference stream, read as the robot silent ({c.reference_gaps} "
                "so far)",
                "info",
            )

    def _fault(self, kind: str, text: str, level: str = "warn") -> None:
        from timar_ros.robot.faults import Fault

        self.on_fault(Fault(kind, text, level))

    # -- the microphone
    def process(self, samples: np.ndarray, stamp_s: float):
        """A microphone chunk [n] float32 at the canceller's rate, its first sample captured at
        ``stamp_s`` -> (cleaned [k * frame], stamp_s of its first sample) or None."""
        t = time.thread_time()
        try:
            return self._process(samples, stamp_s)
        finally:
            self.cpu_s += time.thread_time() - t

    def _process(self, samples: np.ndarray, stamp_s: float):
        x = np.asarray(samples, np.float32).reshape(-1)
        i0 = int(round(stamp_s * self.rate))
        if self._pending_i0 is None or i0 != self._pending_i0 + len(self._pending):
            # the first chunk, or the capture clock jumped: start the frame grid here
            self._pending, self._pending_i0 = np.zeros(0, np.float32), i0
        self._pending = np.concatenate([self._pending, x])
        k = len(self._pending) // self.n
        if k == 0:
            return None
        out = np.empty(k * self.n, np.float32)
        start = self._pending_i0
        raw = self._pending[: k * self.n]
        for f in range(k):
            sl = slice(f * self.n, (f + 1) * self.n)
            out[sl] = self._frame(raw[sl], start + f * self.n)
        self._pending = self._pending[k * self.n :]
        self._pending_i0 = start + k * self.n
        if self.config.mode != "none":
            ref = self.reference.read(start - self._shift, k * self.n)
            if ref is not None:
                found = self.delay.add(raw, ref)
                if found is not None:
                    self._check_delay(*found)
        return out, start / self.rate - self.latency_s

    def _check_delay(self, delay_s: float, prominence: float) -> None:
        """The echo's delay against the reference as it is fed: AEC3 finds it within
        AEC3_REACH_S; beyond that (a robot audio path slower than the stamps say, or clocks
        apart) it cancels nothing: say it, and with follow_delay move the reference by what was
        found. An echo more than FOLLOW_EARLY_S early but within reach is cancelled at the
        edge of the lead, worse (PulseAudio: -45 ms, ERLE 31 dB there, 40 dB with more lead):
        follow_delay moves the reference to it as well."""
        if self.config.mode != "aec" or prominence < DelayMonitor.MIN_PROMINENCE:
            return
        lo, hi = AEC3_REACH_S
        reach = lo <= delay_s <= hi
        early = delay_s < -FOLLOW_EARLY_S
        if reach and not (early and self.config.follow_delay):
            return
        c = self.counters
        fix = min(max(self.reference_delay_s + delay_s, -MAX_EARLY_S), self.config.keep_s - 1.0)
        where = (
            f"the echo comes {delay_s * 1000:+.0f} ms after the reference's stamps"
            + (f" + {self.reference_delay_s:.3f} s" if self._shift else "")
            + (
                f", outside what AEC3 finds ({lo * 1000:+.0f} to {hi * 1000:+.0f} ms)"
                if not reach
                else f", at the edge of AEC3's {AEC3_LEAD_S * 1000:.0f}-ms lead"
            )
        )
        if self.config.follow_delay:
            self._shift = int(round(fix * self.rate))
            c.delay_followed += 1
            self._fault(
                "delay_followed",
                f"{where}: the reference is now fed {fix:.3f} s after its stamps; set "
                f"reference_delay_s to {fix:.3f} to start there (`timar echo calibrate` "
                "measures it)",
            )
        else:
            c.delay_out_of_range += 1
            self._fault(
                "delay_out_of_range",
                f"{where}: the robot's voice is not cancelled; set reference_delay_s to "
                f"{fix:.3f} (now {self.config.reference_delay_s:.3f}) or check the clocks",
            )

    def _frame(self, mic: np.ndarray, i0: int) -> np.ndarray:
        c = self.counters
        c.frames += 1
        mode = self.config.mode
        raw = self._delayed(mic)  # the microphone as it is, as late as the canceller's output
        if mode == "none":
            return raw
        ref = self.reference.read(i0 - self._shift + self._lead, self.n)
        known = ref is not None
        if not known:
            c.no_reference += 1
            self._fault(
                "no_reference",
                f"no reference audio for the microphone's frames ({c.no_reference} frames of 10 "
                f"ms so far): the robot's voice is not taken out, the microphone is "
                f"{'passed' if self.config.fallback == 'pass' else 'muted'} (fallback); is "
                "voice_player running and publishing agent/audio?",
            )
            if self.config.fallback == "mute":
                return np.zeros_like(mic)
            if mode == "half_duplex":
                return raw
            ref = np.zeros_like(mic)  # through the canceller with nothing to cancel: it stays
            # adapted, and its output keeps its latency
        elif mode == "half_duplex":
            return self._duck(raw, ref, i0)
        try:
            out = self._aec.process(mic, ref)
        except Exception as exc:  # the canceller failing must not take the microphone down
            c.canceller_errors += 1
            text = f"{type(exc).__name__}: {exc}"
            if text not in c.errors and len(c.errors) < 5:
                c.errors.append(text)
            self._fault(
                "canceller_errors",
                f"echo canceller failed ({text}; {c.canceller_errors} frames so far): the raw "
                "microphone passed",
                "error",
            )
            return raw
        c.cancelled += known
        return out

    def _delayed(self, mic: np.ndarray) -> np.ndarray:
        """``mic`` delayed by the canceller's latency (whole samples)."""
        if not self._lag:
            return mic
        both = np.concatenate([self._raw_tail, mic])
        self._raw_tail = both[len(mic) :]
        return both[: len(mic)]

    def _duck(self, mic: np.ndarray, ref: np.ndarray, i0: int) -> np.ndarray:
        level = 10.0 * np.log10(float(np.mean(ref * ref)) + 1e-12)
        if level > self.config.duck_threshold_dbfs:
            self._last_loud = i0
        if i0 - self._last_loud <= self.config.duck_hangover_s * self.rate:
            self.counters.ducked += 1
            return mic * np.float32(self.config.duck_gain)
        return mic


def echo_return_loss_enhancement(mic: np.ndarray, out: np.ndarray, mask=None) -> float:
    """ERLE in dB: the microphone's power over the output's (where ``mask`` [n] bool)."""
    m, o = np.asarray(mic, np.float64), np.asarray(out, np.float64)
    if mask is not None:
        m, o = m[mask], o[mask]
    return float(10.0 * np.log10((np.mean(m * m) + 1e-20) / (np.mean(o * o) + 1e-20)))


__all__ = [
    "MODES",
    "EchoConfig",
    "EchoCanceller",
    "EchoCounters",
    "EchoSetupError",
    "Aec3",
    "echo_return_loss_enhancement",
]
