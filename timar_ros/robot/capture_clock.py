"""Stamps for a captured audio stream: one clock for the whole stream instead of one reading per
block.

A sound device delivers blocks on a callback whose wake-up time jitters with the scheduler (a
few ms, more on a busy CPU), while the samples themselves are evenly spaced. Stamping each block
with "now - its duration - the input latency" passes that jitter on to every stamp (and to the
turn segmentation downstream). :class:`CaptureClock` instead counts samples from an anchor: the
stamp of block k is ``anchor + samples_before_k / rate``, so consecutive blocks are exactly
contiguous (the segmenter pads any gap, however small, and drops overlaps); a reading further
off than ``resync_s`` (an overflow, a device that paused, a clock jump, or the device's clock
drifting that far from the wall clock: ~8 min at 100 ppm) re-anchors at once, reported to the
caller. ``gain`` > 0 pulls the anchor towards each reading instead (following the drift
smoothly, at the price of sub-millisecond gaps and overlaps between blocks).
"""

from __future__ import annotations


def capture_reading(now_s: float, frames: int, rate: int, input_latency_s: float) -> float:
    """When an input block's first sample was captured, as read in its callback (s): now - the
    block's duration - the stream's reported input latency (jitters; :class:`CaptureClock`
    smooths it)."""
    return now_s - frames / rate - input_latency_s


def output_ahead_s(time_info, output_latency_s: float) -> float:
    """How long after now an output block is heard (s): PortAudio's DAC time when it gives a
    sane one (0 to 2 s ahead), else the stream's reported output latency."""
    dac = float(getattr(time_info, "outputBufferDacTime", 0.0) or 0.0)
    current = float(getattr(time_info, "currentTime", 0.0) or 0.0)
    return dac - current if dac > 0 and 0 <= dac - current < 2.0 else float(output_latency_s)


class CaptureClock:
    """Smooth capture stamps (seconds) for consecutive blocks of one stream.

    Args:
        rate: samples per second of the stream (Hz).
        resync_s: a block whose measured stamp is further than this from the predicted one
            re-anchors the clock (s).
        gain: share of each block's measured-minus-predicted error taken into the anchor
            (0: contiguous stamps, re-anchored only past ``resync_s``; small: follows a device
            clock that runs fast or slow smoothly).
    """

    def __init__(self, rate: int, resync_s: float = 0.05, gain: float = 0.0):
        if rate <= 0:
            raise ValueError(f"rate must be > 0 Hz, got {rate}")
        if not 0.0 <= gain <= 1.0:
            raise ValueError(f"gain must be in [0, 1], got {gain}")
        self.rate = int(rate)
        self.resync_s = float(resync_s)
        self.gain = float(gain)
        self.anchor: float | None = None  # stamp of the stream's sample 0 (s)
        self.samples = 0
        self.resyncs = 0

    def stamp(self, measured_s: float, frames: int) -> tuple[float, bool]:
        """The stamp of a block's first sample, given its per-block reading ``measured_s`` (s)
        and its length ``frames``; -> (stamp_s, re-anchored). Call once per block, in order."""
        resynced = False
        if self.anchor is None:
            self.anchor = measured_s
        else:
            error = measured_s - (self.anchor + self.samples / self.rate)
            if abs(error) > self.resync_s:
                self.anchor = measured_s - self.samples / self.rate
                self.resyncs += 1
                resynced = True
            else:
                self.anchor += self.gain * error
        out = self.anchor + self.samples / self.rate
        self.samples += int(frames)
        return out, resynced
