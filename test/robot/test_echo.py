"""The robot's voice taken out of its microphone (robot/echo.py), with WebRTC's AEC3 itself:
an echo made from a real voice through a synthetic room response, the partner's voice on top."""

import numpy as np
import pytest

from helpers.echo_signals import room_echo as _room_echo
from helpers.echo_signals import voices as _voices
from timar_ros.eval.echo_rooms import CHUNK_S, feed
from timar_ros.robot.echo import (
    AEC3_LEAD_S,
    EchoCanceller,
    EchoConfig,
    echo_return_loss_enhancement,
)
from timar_ros.robot.echo_timing import ReferenceTimeline, ReferenceWait, estimate_delay

RATE = 16000
CHUNK = int(CHUNK_S * RATE)  # 40 ms, as the microphone node sends


def _run(ec: EchoCanceller, mic: np.ndarray, reference: np.ndarray | None):
    """The canceller fed as the nodes feed it (40-ms chunks, the reference ahead) -> the output
    laid on the input's grid, and the output chunks' (stamp, samples)."""
    out, _, stamps = feed(ec, mic, reference, RATE)
    return out, stamps


def test_reference_timeline_places_chunks_by_their_stamps():
    tl = ReferenceTimeline(RATE, keep_s=1.0)
    tl.write(np.ones(160, np.float32), 0.0)
    assert tl.write(np.full(160, 2.0, np.float32), 0.02) == (False, True)  # a 10-ms hole
    np.testing.assert_array_equal(tl.read(0, 480), np.r_[np.ones(160), np.zeros(160), [2.0] * 160])
    assert tl.read(400, 160) is None  # beyond the newest sample: not known yet
    for k in range(200):  # old samples go; what is asked for before them is silence
        tl.write(np.zeros(160, np.float32), 0.03 + k * 0.01)
    np.testing.assert_array_equal(tl.read(0, 160), np.zeros(160))


def test_none_passes_the_microphone_and_chunks_are_contiguous():
    ec = EchoCanceller(RATE, EchoConfig(mode="none"))
    x = np.random.default_rng(0).standard_normal(RATE).astype(np.float32) * 0.1
    out, stamps = _run(ec, x, np.zeros_like(x))
    np.testing.assert_array_equal(out, x)
    ends = [t + n / RATE for t, n in stamps]
    assert all(abs(a - b[0]) < 1e-9 for a, b in zip(ends, stamps[1:]))


def test_aec3_removes_the_robots_voice_and_keeps_the_partner():
    robot, partner = _voices(12.0)
    reference = robot  # the TTS at its digital level (-20 dBFS RMS)
    echo = _room_echo(reference, delay_s=0.004, gain=0.5)  # loudspeaker a few cm away
    t = np.arange(len(robot)) / RATE
    talk = np.where(t >= 8.0, 0.1 * partner, 0.0)  # the partner alone from 8 s, -40 dBFS
    rob = t < 8.0
    reference = np.where(rob, reference, 0.0).astype(np.float32)
    echo = np.where(rob, echo, 0.0)
    mic = (echo + talk + 1e-4 * np.random.default_rng(1).standard_normal(len(t))).astype(np.float32)
    ec = EchoCanceller(RATE, EchoConfig(mode="aec"))
    out, stamps = _run(ec, mic, reference)
    settled = (t >= 2.0) & rob
    erle = echo_return_loss_enhancement(mic, out, settled)
    assert erle >= 20.0, erle  # measured 30+ dB
    partner_only = t >= 9.0
    kept = echo_return_loss_enhancement(mic, out, partner_only)
    assert abs(kept) < 3.0, kept  # the partner passes (within 3 dB)
    # the output is stamped as the input it carries: aligned with the partner's voice
    delay, prominence = estimate_delay(mic[partner_only], out[partner_only], RATE, 0.05)
    assert abs(delay) <= 1 / RATE and prominence > 5
    assert 0 < ec.cpu_s < 12.0  # its own CPU time is counted (~0.3 s for these 12 s)
    # only the last frames had no reference: AEC3 reads it AEC3_LEAD_S ahead, past the recording
    c = ec.counters
    assert c.no_reference == round(AEC3_LEAD_S / 0.01) and c.cancelled + c.no_reference == c.frames


@pytest.mark.parametrize("delay_s", [-0.04, 0.25])
def test_an_echo_somewhat_before_or_after_the_stamps_is_cancelled(delay_s):
    """The microphone's and the loudspeaker's stamps never agree exactly: AEC3 is fed the
    reference AEC3_LEAD_S ahead, so an echo up to that much early is cancelled as well; the
    first delay check (3 s of robot speech) moves the reference to an early one, a late one
    within reach stays."""
    robot, _ = _voices(8.0)
    mic = (_room_echo(robot, delay_s, 0.5) + 1e-4).astype(np.float32)
    ec = EchoCanceller(RATE, EchoConfig(mode="aec"))
    out, _ = _run(ec, mic, robot.astype(np.float32))
    t = np.arange(len(mic)) / RATE
    assert echo_return_loss_enhancement(mic, out, t >= 2.0) >= 25.0  # measured 44-46 dB
    assert ec.counters.delay_out_of_range == 0
    assert ec.counters.delay_followed == (delay_s < 0)
    assert ec.reference_delay_s == pytest.approx(min(delay_s, 0.0), abs=0.002)


@pytest.mark.parametrize(
    "follow, delay_s, said_ms", [(True, 0.7, "+700"), (False, 0.7, "+700"), (True, -0.2, "-200")]
)
def test_an_echo_beyond_aec3s_reach_is_found_said_and_followed(follow, delay_s, said_ms):
    """An echo 0.7 s after or 0.2 s before the reference's stamps (AEC3 reaches -0.05 to
    +0.4 s): the first delay check (after 3 s of robot speech) finds it and says so; with
    follow_delay the reference moves and the echo is cancelled from then on, without it the
    microphone stays uncancelled and the warning names reference_delay_s."""
    robot, _ = _voices(14.0)
    mic = _room_echo(robot, delay_s, 0.5).astype(np.float32)
    faults = []
    cfg = EchoConfig(mode="aec", delay_check_s=10.0, follow_delay=follow)
    ec = EchoCanceller(RATE, cfg, on_fault=faults.append)
    # an echo 0.2 s early needs the reference 0.25 s ahead of the microphone: voice_player's
    # lead plus the microphone's arrival lag give ~0.33 s live (0.4 s here)
    out, _, _ = feed(ec, mic, robot.astype(np.float32), RATE, lead_chunks=10)
    t = np.arange(len(mic)) / RATE
    late = echo_return_loss_enhancement(mic, out, t >= 10.0)
    said = [f.text for f in faults if f.kind in ("delay_followed", "delay_out_of_range")]
    assert said and f"{said_ms} ms" in said[0] and "reference_delay_s" in said[0], said
    if follow:
        assert ec.counters.delay_followed == 1 and ec.counters.delay_out_of_range == 0
        assert ec.reference_delay_s == pytest.approx(delay_s, abs=0.002)
        assert late >= 25.0, late  # measured ~45 dB
    else:
        assert ec.counters.delay_out_of_range >= 1 and ec.reference_delay_s == 0.0
        assert late < 15.0, late


def test_half_duplex_mutes_while_the_robot_speaks_and_a_little_after():
    cfg = EchoConfig(mode="half_duplex", duck_hangover_s=0.2)
    ec = EchoCanceller(RATE, cfg)
    t = np.arange(2 * RATE) / RATE
    reference = np.where(t < 1.0, 0.1 * np.sin(2 * np.pi * 200 * t), 0.0).astype(np.float32)
    mic = np.full(len(t), 0.05, np.float32)
    out, _ = _run(ec, mic, reference)
    assert np.all(out[t < 1.0] == 0.0)
    assert np.all(out[(t > 1.0) & (t < 1.19)] == 0.0)  # the room's tail
    assert np.all(out[t > 1.22] == pytest.approx(0.05))


def test_faults_are_counted_and_the_raw_microphone_passes():
    x = np.random.default_rng(2).standard_normal(RATE).astype(np.float32) * 0.1
    # no reference at all (voice_player not running): through the canceller with nothing to
    # cancel, so the output keeps its latency (and its stamps)
    faults = []
    voice = (0.1 * _voices(3.0)[1]).astype(np.float32)  # the partner talking
    cfg = EchoConfig(mode="aec", noise_suppression=False)  # the canceller alone
    ec = EchoCanceller(RATE, cfg, on_fault=faults.append)
    out, _ = _run(ec, voice, None)
    t = np.arange(len(voice)) / RATE
    # the microphone passed
    assert abs(echo_return_loss_enhancement(voice, out, (t > 0.1) & (t < 2.9))) < 1.0
    assert estimate_delay(voice, out, RATE, 0.05)[0] == 0.0
    assert ec.counters.no_reference == ec.counters.frames == 3 * RATE // 160
    assert {f.kind for f in faults} == {"no_reference"}
    muted = EchoCanceller(RATE, EchoConfig(mode="aec", fallback="mute"))
    assert not _run(muted, x, None)[0].any()

    class Broken:
        def process(self, mic, ref):
            raise RuntimeError("apm gone")

    ec = EchoCanceller(RATE, EchoConfig(mode="aec"), canceller=Broken())
    out, _ = _run(ec, x, np.zeros_like(x))
    np.testing.assert_array_equal(out, x)  # the raw microphone (a canceller without latency)
    c = ec.counters
    assert c.canceller_errors == c.frames and c.errors == ["RuntimeError: apm gone"]


def test_a_late_reference_is_waited_for_a_missing_one_is_not():
    """ReferenceWait with the canceller's own reference_covers: a microphone chunk whose
    reference is late waits for it (up to wait_s), in order; none waits while the reference does
    not stream (voice_player not running)."""
    ec = EchoCanceller(RATE, EchoConfig(mode="aec"))
    wait = ReferenceWait(0.1)

    def covered(chunk):
        return ec.reference_covers(chunk[0], chunk[1])

    def reference(stamp, now):
        ec.add_reference(np.zeros(CHUNK, np.float32), RATE, stamp)
        wait.reference_arrived(now)

    # nothing streams yet: the microphone is not held
    wait.push((0.0, CHUNK), now=0.0)
    assert wait.release(covered, now=0.0) == [(0.0, CHUNK)] and wait.held == 0
    for k in range(5):  # the reference ahead, as voice_player sends it
        reference(k * CHUNK_S, now=0.01)
    a, b, c = (1.0 * CHUNK_S, CHUNK), (6 * CHUNK_S, CHUNK), (7 * CHUNK_S, CHUNK)
    wait.push(a, now=0.02)
    assert wait.release(covered, now=0.02) == [a] and wait.held == 0  # its reference was there
    wait.push(b, now=0.03)  # 6 and 7 come before their reference: held, in order
    wait.push(c, now=0.04)
    assert wait.release(covered, now=0.05) == []
    for k in range(5, 9):  # up to 6's end and AEC3's 50-ms lead beyond it
        reference(k * CHUNK_S, now=0.06)
    assert wait.release(covered, now=0.06) == [b] and wait.held == 1
    assert wait.release(covered, now=0.139) == []  # c still waits ...
    assert wait.release(covered, now=0.141) == [c] and wait.held == 2  # ... 0.1 s at most
    # the reference stopped a second ago: no waiting any more
    wait.push((9 * CHUNK_S, CHUNK), now=1.2)
    assert wait.release(covered, now=1.2) == [(9 * CHUNK_S, CHUNK)] and wait.held == 2
    wait.push(c, now=1.3)
    assert wait.flush() == [c] and wait.release(covered, now=1.3) == []
    with pytest.raises(ValueError, match="reference wait"):
        ReferenceWait(-0.1)


def test_a_reference_at_another_rate_is_resampled_and_counted():
    from timar_ros.data.audio import resample

    robot, _ = _voices(6.0)
    reference = robot.astype(np.float32)
    mic = _room_echo(reference, 0.003, 0.5).astype(np.float32)
    ref48 = resample(reference, RATE, 48000)
    ec = EchoCanceller(RATE, EchoConfig(mode="aec"))
    out = np.zeros_like(mic)
    step48 = 3 * CHUNK
    ec.add_reference(ref48[: 5 * step48], 48000, 0.0)
    for k, i in enumerate(range(0, len(mic) - CHUNK + 1, CHUNK)):
        j = (k + 5) * step48
        ec.add_reference(ref48[j : j + step48], 48000, j / 48000)
        y, t0 = ec.process(mic[i : i + CHUNK], i / RATE)
        s = int(round(t0 * RATE))
        y, s = (y[-s:], 0) if s < 0 else (y, s)
        out[s : s + len(y)] = y
    t = np.arange(len(mic)) / RATE
    assert echo_return_loss_enhancement(mic, out, t >= 2.0) >= 20.0
    assert ec.counters.resampled_reference_chunks > 0


@pytest.mark.parametrize("bad", [dict(mode="aecm"), dict(fallback="duck"), dict(duck_gain=2.0)])
def test_bad_configuration_names_the_field(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        EchoCanceller(RATE, EchoConfig(**bad))
