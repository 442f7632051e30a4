"""The robot's voice on one timeline (ROS-free; the ``voice_player`` node drives it).

Sample i of the timeline is heard at ``t0 + i / rate`` (wall clock, seconds). Speech is placed
``lead_s`` after it arrives (the policy's ``display_delay_s``: the motion frames for a sample
are due when it is heard, so the policy must have it that much earlier), after the speech
already queued (``queue``) or replacing it from then on (``interrupt``). Two readers:

* the publisher (:meth:`SpeechTimeline.publish_until`) takes the timeline up to
  ``now + lead_s`` in chunks, speech or silence, each stamped with the time it will be heard;
  what it took is never changed afterwards (an interrupt starts at the published horizon);
* the sound device (:meth:`SpeechTimeline.read`) takes the samples due at its DAC time.

A lock makes the two threads safe; old speech is forgotten once played.
"""

from __future__ import annotations

import threading

import numpy as np

BUSY_MODES = ("queue", "interrupt")


class SpeechTimeline:
    """Args: rate (Hz), lead_s (s, >= 0), t0 (wall time of sample 0, s)."""

    def __init__(self, rate: int, lead_s: float, t0: float):
        if rate <= 0 or lead_s < 0:
            raise ValueError(f"rate must be > 0 and lead_s >= 0, got {rate}, {lead_s}")
        self.rate, self.lead_s, self.t0 = int(rate), float(lead_s), float(t0)
        self._segments: list[tuple[int, np.ndarray]] = []  # (start sample, samples), sorted
        # samples [0, published) are out (their stamps final); publishing starts lead_s ahead,
        # so the first published sample is heard lead_s after t0 (nothing before it exists)
        self.published = self.index(t0 + self.lead_s)
        self.interrupted_samples = 0  # queued speech dropped by interrupts
        self._lock = threading.Lock()

    def index(self, t: float) -> int:
        """Timeline sample heard at wall time ``t``."""
        return int(round((t - self.t0) * self.rate))

    def time(self, index: int) -> float:
        return self.t0 + index / self.rate

    @property
    def end(self) -> int:
        """One past the last scheduled speech sample (0: none)."""
        with self._lock:
            return self._segments[-1][0] + len(self._segments[-1][1]) if self._segments else 0

    def speaking_until(self) -> float:
        """Wall time the queued speech ends (s)."""
        return self.time(self.end)

    def add(self, samples: np.ndarray, now: float, mode: str = "queue") -> tuple[float, int]:
        """Schedule ``samples`` [N] float32 (at ``rate``); -> (heard start time, samples of
        queued speech the interrupt dropped)."""
        if mode not in BUSY_MODES:
            raise ValueError(f"mode must be one of {BUSY_MODES}, got {mode!r}")
        x = np.asarray(samples, np.float32).reshape(-1)
        with self._lock:
            start = max(self.index(now + self.lead_s), self.published)
            dropped = 0
            if mode == "queue":
                if self._segments:
                    s, seg = self._segments[-1]
                    start = max(start, s + len(seg))
            else:
                kept = []
                for s, seg in self._segments:
                    if s + len(seg) <= start:
                        kept.append((s, seg))
                    elif s < start:
                        kept.append((s, seg[: start - s]))
                        dropped += s + len(seg) - start
                    else:
                        dropped += len(seg)
                self._segments = kept
                self.interrupted_samples += dropped
            if len(x):
                self._segments.append((start, x))
        return self.time(start), dropped

    def _render(self, a: int, b: int) -> np.ndarray:
        out = np.zeros(b - a, np.float32)
        for s, seg in self._segments:
            lo, hi = max(a, s), min(b, s + len(seg))
            if lo < hi:
                out[lo - a : hi - a] = seg[lo - s : hi - s]
        return out

    def publish_until(self, now: float, chunk: int) -> list[tuple[float, np.ndarray]]:
        """Whole chunks of ``chunk`` samples up to ``now + lead_s``: [(heard time, samples)]."""
        with self._lock:
            horizon = self.index(now + self.lead_s)
            out = []
            while self.published + chunk <= horizon:
                a = self.published
                out.append((self.time(a), self._render(a, a + chunk)))
                self.published = a + chunk
            return out

    def has_speech(self, a: int, b: int) -> bool:
        """Whether any scheduled speech overlaps samples [a, b)."""
        with self._lock:
            return any(s < b and s + len(g) > a for s, g in self._segments)

    def read(self, index: int, frames: int) -> np.ndarray:
        """Samples [index, index + frames) for the device (silence where nothing is scheduled);
        forgets speech that ends before ``index``."""
        with self._lock:
            self._segments = [(s, g) for s, g in self._segments if s + len(g) > index]
            return self._render(index, index + frames)


class PlaybackClock:
    """Which timeline sample a device buffer starts at: counted from the first buffer's DAC
    time, re-aligned (counted) when the DAC time says the count is off by more than
    ``resync_s`` (an underrun, a device restart). A re-alignment skips or repeats audio, so
    during speech it waits for the next pause unless the count is off by more than
    ``force_s`` (the DAC estimates of a busy machine jitter by tens of ms)."""

    def __init__(self, rate: int, resync_s: float = 0.02, force_s: float = 0.25):
        self.rate, self.resync_s, self.force_s = int(rate), float(resync_s), float(force_s)
        self.next: int | None = None
        self.resyncs = 0

    def start_index(self, measured: int, frames: int, quiet: bool = True) -> int:
        """The buffer's first sample given its DAC-time index ``measured`` (``quiet``: no
        speech in the buffer, so a re-alignment is not heard); advances."""
        if self.next is None:
            self.next = measured
        else:
            off = abs(measured - self.next)
            if off > self.force_s * self.rate or (quiet and off > self.resync_s * self.rate):
                self.next = measured
                self.resyncs += 1
        i = self.next
        self.next += int(frames)
        return i
