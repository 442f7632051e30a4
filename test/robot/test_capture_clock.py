"""CaptureClock: evenly spaced stamps from jittery per-block readings; re-anchors on a gap."""

import numpy as np
import pytest

from timar_ros.robot.capture_clock import CaptureClock

RATE, BLOCK = 16000, 320


def readings(n, jitter_s, seed=0, drift=0.0, start=100.0):
    rng = np.random.default_rng(seed)
    true = start + np.arange(n) * BLOCK / RATE * (1 + drift)
    return true, true + rng.uniform(0, jitter_s, n)  # a callback only ever wakes up late


def test_stamps_are_contiguous_and_lose_the_jitter():
    true, measured = readings(500, 0.008)
    clock = CaptureClock(RATE)
    stamps = np.array([clock.stamp(m, BLOCK)[0] for m in measured])
    steps = np.diff(stamps)
    assert np.abs(steps - BLOCK / RATE).max() < 1e-9  # exactly contiguous: no gap to pad
    assert np.abs(stamps - true).max() < 0.0081  # within the first reading's lateness
    # with a gain the anchor follows the readings: the mean lateness (4 ms), less spread
    clock = CaptureClock(RATE, gain=0.02)
    stamps = np.array([clock.stamp(m, BLOCK)[0] for m in measured])
    err = stamps[100:] - true[100:]
    # the mean lateness of the readings (4 ms) stays: it is the reading's bias, not jitter
    assert np.abs(err - 0.004).max() < 0.003 and clock.resyncs == 0
    assert np.std(err) < np.std(measured[100:] - true[100:]) / 3


def test_follows_a_device_clock_that_runs_slow_and_re_anchors_after_a_gap():
    true, measured = readings(3000, 0.002, drift=200e-6)  # 200 ppm: 12 ms per minute
    clock = CaptureClock(RATE, gain=0.02)
    stamps = np.array([clock.stamp(m, BLOCK)[0] for m in measured])
    assert np.abs(stamps[-500:] - true[-500:] - 0.001).max() < 0.003
    # 0.3 s of audio lost: the next block is re-anchored at once, and reported
    s, resynced = clock.stamp(measured[-1] + BLOCK / RATE + 0.3, BLOCK)
    assert resynced and clock.resyncs == 1
    assert abs(s - (measured[-1] + BLOCK / RATE + 0.3)) < 1e-9


def test_bad_settings_name_the_value():
    with pytest.raises(ValueError, match="rate must be > 0"):
        CaptureClock(0)
    with pytest.raises(ValueError, match="gain must be in"):
        CaptureClock(RATE, gain=1.5)
