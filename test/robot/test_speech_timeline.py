"""SpeechTimeline: speech heard lead_s after it arrives, queued or interrupting, published ahead
with final stamps; PlaybackClock counts device buffers and re-aligns after a jump."""

import numpy as np
import pytest

from timar_ros.robot.speech_timeline import PlaybackClock, SpeechTimeline

RATE = 1000  # small numbers keep the arithmetic visible


def test_speech_is_heard_lead_after_it_arrives_and_queues():
    tl = SpeechTimeline(RATE, lead_s=0.5, t0=10.0)
    start, dropped = tl.add(np.ones(300), now=10.0)
    assert start == pytest.approx(10.5) and dropped == 0
    start2, _ = tl.add(2 * np.ones(100), now=10.1)  # arrives while the first is queued
    assert start2 == pytest.approx(10.8)  # right after it
    x = tl.read(tl.index(10.5), 400)
    assert (x[:300] == 1).all() and (x[300:] == 2).all()
    assert tl.speaking_until() == pytest.approx(10.9)


def test_published_chunks_are_stamped_when_heard_and_never_change():
    tl = SpeechTimeline(RATE, lead_s=0.5, t0=0.0)
    tl.add(np.ones(200), now=0.0)  # heard 0.5 .. 0.7
    chunks = tl.publish_until(now=0.3, chunk=100)  # from 0.5 (lead_s after t0) up to 0.8
    assert [round(t, 3) for t, _ in chunks] == [0.5, 0.6, 0.7]
    assert [c.sum() for _, c in chunks] == [100, 100, 0]
    # an interrupt now starts at the published horizon, not earlier (what is out stays true)
    start, dropped = tl.add(3 * np.ones(50), now=0.0, mode="interrupt")
    assert start == pytest.approx(0.8) and dropped == 0
    start, dropped = tl.add(4 * np.ones(50), now=0.2, mode="interrupt")  # heard from 0.8 too
    assert start == pytest.approx(0.8) and dropped == 50 and tl.interrupted_samples == 50
    assert (tl.read(800, 60)[:50] == 4).all()
    with pytest.raises(ValueError, match="mode must be one of"):
        tl.add(np.ones(1), now=0.0, mode="skip")


def test_playback_clock_counts_buffers_and_realigns_after_a_jump():
    pc = PlaybackClock(RATE, resync_s=0.02)
    assert pc.start_index(100, 10) == 100
    assert pc.start_index(113, 10) == 110  # DAC-time jitter (3 ms) does not move the count
    assert pc.start_index(200, 10) == 200 and pc.resyncs == 1  # an underrun: re-aligned


def test_playback_clock_waits_for_a_pause_unless_far_off():
    pc = PlaybackClock(RATE, resync_s=0.02, force_s=0.25)
    pc.start_index(100, 10)
    assert pc.start_index(150, 10, quiet=False) == 110  # 40 ms off during speech: wait
    assert pc.start_index(160, 10, quiet=True) == 160 and pc.resyncs == 1  # in a pause: now
    assert pc.start_index(700, 10, quiet=False) == 700 and pc.resyncs == 2  # 0.53 s: at once
    tl = SpeechTimeline(RATE, lead_s=0.0, t0=0.0)
    tl.add(np.ones(100), now=0.0)
    assert tl.has_speech(50, 60) and not tl.has_speech(100, 200)
