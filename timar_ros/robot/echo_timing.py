"""Where the robot's voice is on the microphone's clock (no ROS): the loudspeaker's signal laid
on the microphone's sample grid by its stamps (:class:`ReferenceTimeline`), microphone chunks
held until their reference has arrived (:class:`ReferenceWait`), and the echo's delay against
the reference (:func:`estimate_delay`, GCC-PHAT; checked as the robot speaks by
:class:`DelayMonitor`). robot/echo.py's canceller runs on these.
"""

from __future__ import annotations

from collections import deque

import numpy as np


def estimate_delay(reference: np.ndarray, mic: np.ndarray, rate: int, max_s: float = 1.0):
    """The delay (s) of ``reference`` inside ``mic`` by GCC-PHAT (both [n] at ``rate``), and
    the peak's prominence (peak over the correlation's RMS; below ~5 there is no clear echo).
    A positive delay: the echo comes after the reference."""
    n = len(reference) + len(mic)
    nfft = 1 << (n - 1).bit_length()
    R = np.fft.rfft(reference, nfft)
    M = np.fft.rfft(mic, nfft)
    cross = M * np.conj(R)
    cc = np.fft.irfft(cross / (np.abs(cross) + 1e-12), nfft)
    k = int(max_s * rate)
    lags = np.concatenate([cc[-k:], cc[: k + 1]])  # lags -k .. k
    peak = int(np.argmax(np.abs(lags)))
    prominence = float(np.abs(lags[peak]) / (np.sqrt(np.mean(lags * lags)) + 1e-20))
    return (peak - k) / rate, prominence


class ReferenceTimeline:
    """The loudspeaker's signal on the microphone's sample grid: chunks stamped when heard are
    written at ``round(stamp * rate)``; what was never written reads as silence (the robot said
    nothing) and is reported as unknown past the newest chunk's end."""

    def __init__(self, rate: int, keep_s: float):
        self.rate = int(rate)
        self.keep = int(keep_s * rate)
        self.start: int | None = None  # absolute sample index of buf[0]
        self.buf = np.zeros(0, np.float32)
        self.end: int | None = None  # one past the newest written sample

    def write(self, x: np.ndarray, stamp_s: float) -> tuple[bool, bool]:
        """-> (late, gap): late = the chunk starts before what was dropped already, gap = it
        starts after the newest end (a hole in the reference, read as silence)."""
        i0 = int(round(stamp_s * self.rate))
        late = gap = False
        if self.start is None:
            self.start, self.buf, self.end = i0, np.zeros(0, np.float32), i0
        if i0 < self.start:
            late = True
            x, i0 = x[self.start - i0 :], self.start
            if not len(x):
                return late, gap
        gap = i0 > self.end
        need = i0 + len(x) - self.start
        if need > len(self.buf):
            self.buf = np.concatenate([self.buf, np.zeros(need - len(self.buf), np.float32)])
        self.buf[i0 - self.start : i0 - self.start + len(x)] = x
        self.end = max(self.end, i0 + len(x))
        if len(self.buf) > 2 * self.keep:  # drop the oldest, keep `keep` samples
            drop = len(self.buf) - self.keep
            self.buf, self.start = self.buf[drop:], self.start + drop
        return late, gap

    def read(self, i0: int, n: int) -> np.ndarray | None:
        """Samples [i0, i0 + n) (absolute), silence where nothing was written; None when the
        reference has not reached i0 + n yet (nothing known about that time)."""
        if self.end is None or i0 + n > self.end:
            return None
        out = np.zeros(n, np.float32)
        lo, hi = max(i0, self.start), min(i0 + n, self.start + len(self.buf))
        if hi > lo:
            out[lo - i0 : hi - i0] = self.buf[lo - self.start : hi - self.start]
        return out


class ReferenceWait:
    """Microphone chunks held, in order, until the reference for them has arrived.

    voice_player publishes the reference ahead of the sound, so it is normally there first; a
    CPU burst can deliver it after the microphone's chunk, which would then pass uncancelled
    (the fallback). A chunk waits at most ``wait_s`` (wall clock) for it, and not at all while
    the reference stream is silent for ``alive_s`` (voice_player not running: waiting would only
    delay the microphone). Items are opaque; ``covered(item)`` says whether its reference is
    there. Times in seconds of a monotonic clock."""

    def __init__(self, wait_s: float, alive_s: float = 1.0):
        if not wait_s >= 0:
            raise ValueError(f"reference wait must be >= 0 s, got {wait_s}")
        self.wait_s, self.alive_s = float(wait_s), float(alive_s)
        self._held: deque = deque()  # (item, arrival time)
        self._last_reference: float | None = None
        self.held = 0  # items that waited (their reference was late)

    def reference_arrived(self, now: float) -> None:
        self._last_reference = now

    def push(self, item, now: float) -> None:
        self._held.append((item, now))

    def release(self, covered, now: float) -> list:
        """The items due now, in arrival order: the first ones whose reference has come, or
        that waited ``wait_s``, or all while the reference is not alive."""
        alive = self._last_reference is not None and now - self._last_reference < self.alive_s
        out = []
        while self._held:
            item, t = self._held[0]
            ready = covered(item)
            if not ready and alive and now - t < self.wait_s:
                break
            if now > t:
                self.held += 1  # it waited: its reference came late (or never)
            self._held.popleft()
            out.append(item)
        return out

    def flush(self) -> list:
        """Everything held, in order (e.g. before the canceller is made again)."""
        out = [item for item, _ in self._held]
        self._held.clear()
        return out


class DelayMonitor:
    """After the first ``FIRST_S`` and then every ``every_s`` of audio in which the robot
    spoke, the echo's delay in the last ``window_s`` of raw microphone audio against the
    reference (:func:`estimate_delay`)."""

    MIN_PROMINENCE = 6.0  # a GCC-PHAT peak this far above the rest is an echo, not chance
    # the first check comes early: an echo out of AEC3's reach is not cancelled until a check
    # finds it (3 s of speech give a clear peak: prominence 25-160 in the tests and rooms)
    FIRST_S = 3.0

    def __init__(self, rate: int, every_s: float, window_s: float = 4.0, max_s: float = 1.0):
        self.rate, self.every, self.max_s = rate, int(every_s * rate), max_s
        self.window = int(window_s * rate)
        self.mic: deque = deque()
        self.ref: deque = deque()
        self.held = 0
        self.active = 0  # samples with the robot speaking since the last check
        self.last: tuple[float, float] | None = None  # (delay s, prominence)
        self.first = min(self.every, int(self.FIRST_S * rate))

    def add(self, mic: np.ndarray, ref: np.ndarray):
        """Aligned raw microphone and reference samples -> (delay_s, prominence) when a check
        ran, else None."""
        if self.every <= 0:
            return None
        self.mic.append(mic.copy())
        self.ref.append(ref)
        self.held += len(mic)
        while self.held - len(self.mic[0]) >= self.window:
            self.held -= len(self.mic.popleft())
            self.ref.popleft()
        if float(np.mean(ref * ref)) > 1e-6:  # the robot speaks (above -60 dBFS)
            self.active += len(ref)
        due = self.every if self.last is not None else self.first
        if self.active < due or self.held < self.window:
            return None
        self.active = 0
        self.last = estimate_delay(
            np.concatenate(self.ref), np.concatenate(self.mic), self.rate, self.max_s
        )
        return self.last
