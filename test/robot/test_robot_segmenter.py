"""Turn segmentation and alignment (timar_ros.robot.segmenter): chunking, gaps, duplicates, late,
out-of-order, clock jumps, bad samples, resampling, bounded memory."""

import numpy as np
import pytest

from timar_ros.robot.segmenter import TurnSegmenter

SR = 16000
T0 = 1_700_000_000.25  # an epoch-like stamp: float64 precision must be enough


def signals(seconds, seed=0):
    rng = np.random.default_rng(seed)
    n = int(SR * seconds)
    return rng.uniform(-0.5, 0.5, n).astype(np.float32), rng.uniform(-0.5, 0.5, n).astype(
        np.float32
    )


def chunked(name, x, rng, t0=T0, max_chunk=4000):
    out, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, max_chunk))
        out.append((name, t0 + i / SR, x[i : i + n]))
        i += n
    return out


def run(seg, chunks):
    turns = []
    for c in chunks:
        turns += seg.push(*c)
    return turns + seg.flush()


def reference(u, a, **kw):
    seg = TurnSegmenter(**kw)
    return run(seg, [("user", T0, u), ("agent", T0, a)])


@pytest.mark.parametrize("seed", range(5))
def test_random_chunking_and_order_equals_one_big_chunk(seed):
    u, a = signals(4.37, seed)
    ref = reference(u, a, max_latency_s=60, start_s=T0)
    rng = np.random.default_rng(seed + 100)
    chunks = chunked("user", u, rng) + chunked("agent", a, rng)
    # interleave the streams and reorder locally (out of order within the open turns)
    order = np.argsort(
        np.arange(len(chunks)) % (len(chunks) // 2 + 1) + rng.uniform(0, 6, len(chunks))
    )
    seg = TurnSegmenter(max_latency_s=60, start_s=T0)  # the first chunk pushed is not the first one
    got = run(seg, [chunks[k] for k in order])
    assert [t.index for t in got] == [t.index for t in ref] == list(range(5))
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(g.user_audio, r.user_audio)
        np.testing.assert_array_equal(g.agent_audio, r.agent_audio)
        assert g.start_s == pytest.approx(T0 + g.index, abs=1e-9)
        assert (g.user_padded_s, g.agent_padded_s) == (r.user_padded_s, r.agent_padded_s)
    c = seg.counters
    assert c.late_chunks == c.duplicate_chunks == c.invalid_chunks == 0 and c.dropped_audio_s == 0
    # the last turn is partial (0.37 s of audio): padded 0.63 s per stream
    assert got[-1].user_padded_s == pytest.approx(0.63, abs=1 / SR)


def test_turns_emitted_in_order_as_soon_as_both_streams_cover_them():
    u, a = signals(2.5)
    seg = TurnSegmenter()
    assert seg.push("user", T0, u) == []  # agent missing: turns wait
    turns = seg.push("agent", T0, a)
    assert [t.index for t in turns] == [0, 1] and not any(t.forced for t in turns)


def test_gap_is_padded_and_counted_by_the_deadline():
    u, a = signals(4.0)
    seg = TurnSegmenter(max_latency_s=0.5)
    gap = slice(int(1.2 * SR), int(1.5 * SR))  # 0.3 s of user audio never arrives
    turns = []
    turns += seg.push("agent", T0, a)
    turns += seg.push("user", T0, u[: gap.start])
    turns += seg.push("user", T0 + gap.stop / SR, u[gap.stop :])
    turns += seg.flush()
    t1 = turns[1]
    assert t1.forced and t1.user_padded_s == pytest.approx(0.3) and t1.agent_padded_s == 0
    assert np.all(t1.user_audio[int(0.2 * SR) : int(0.5 * SR)] == 0)
    np.testing.assert_array_equal(t1.user_audio[: int(0.2 * SR)], u[SR : int(1.2 * SR)])
    assert seg.counters.user_padded_s == pytest.approx(0.3)
    assert [t.index for t in turns] == [0, 1, 2, 3]


def test_agent_silent_stream_deadline_and_poll():
    """The robot's TTS publishes nothing: turns still come out, padded, by the deadline."""
    u, _ = signals(3.0)
    seg = TurnSegmenter(max_latency_s=0.5)
    turns = []
    for i in range(0, len(u), 1600):  # 0.1 s chunks
        turns += seg.push("user", T0 + i / SR, u[i : i + 1600])
    assert [t.index for t in turns] == [
        0,
        1,
    ]  # turn 1 is due at 2.5 s; the last chunk starts at 2.9
    assert all(t.agent_padded_s == 1.0 and t.forced for t in turns)
    assert seg.poll(T0 + 3.4) == []
    late = seg.poll(T0 + 3.5)
    assert [t.index for t in late] == [2]
    assert seg.poll(T0 + 100.0) == []  # never beyond the newest audio


def test_duplicates_dropped_first_copy_wins():
    u, a = signals(2.0)
    seg = TurnSegmenter(max_latency_s=10)
    seg.push("agent", T0, a)
    seg.push("user", T0, u[:8000])
    seg.push("user", T0, u[:8000])  # exact duplicate
    noisy = np.ones(8000, dtype=np.float32) * 0.9
    seg.push("user", T0 + 0.25, noisy)  # overlaps 0.25 s already received + 0.25 s new
    turns = seg.push("user", T0 + 0.75, u[12000:]) + seg.flush()
    c = seg.counters
    assert c.duplicate_chunks == 2
    assert c.dropped_audio_s == pytest.approx(0.5 + 0.25)
    t0 = turns[0].user_audio
    np.testing.assert_array_equal(t0[:8000], u[:8000])
    assert np.all(t0[8000:12000] == np.float32(0.9))  # the new part of the overlapping chunk
    np.testing.assert_array_equal(t0[12000:], u[12000:16000])


def test_late_chunks_for_emitted_turns_are_dropped_and_counted():
    u, a = signals(3.0)
    seg = TurnSegmenter(max_latency_s=0.2)
    seg.push("agent", T0, a)
    seg.push("user", T0, u[:4000])
    turns = []
    for i in range(8000, len(u), 1600):  # gap 0.25..0.5 s, then 0.1 s chunks
        turns += seg.push("user", T0 + i / SR, u[i : i + 1600])
    assert [t.index for t in turns] == [0, 1, 2]  # 0 by the deadline, 1 and 2 complete
    assert turns[0].forced and turns[0].user_padded_s == pytest.approx(0.25)
    assert seg.push("user", T0 + 0.25, u[4000:8000]) == []  # the gap's audio arrives too late
    c = seg.counters
    assert c.late_chunks == 1 and c.dropped_audio_s == pytest.approx(0.25)
    # a re-sent chunk of an emitted turn that was received is a duplicate, not late
    seg.push("user", T0 + 2.5, u[40000:41000])
    assert seg.counters.duplicate_chunks == 1 and seg.counters.late_chunks == 1


def test_stamp_jitter_within_tolerance_is_contiguous():
    u, a = signals(2.0)
    seg = TurnSegmenter(stamp_tolerance_s=0.002)
    rng = np.random.default_rng(3)
    turns = []
    for i in range(0, len(u), 320):
        for name, x in (("user", u), ("agent", a)):
            turns += seg.push(name, T0 + i / SR + rng.uniform(-0.0009, 0.0009), x[i : i + 320])
    turns += seg.flush()
    # the user stream set the origin: exact; the agent stream is offset by its first chunk's jitter
    np.testing.assert_array_equal(np.concatenate([t.user_audio for t in turns])[: len(u)], u)
    assert seg.counters.dropped_audio_s == 0
    assert seg.counters.user_padded_s == 0 if len(turns) == 2 else seg.counters.user_padded_s == 1.0
    assert turns[0].agent_padded_s <= 0.0009 + 1 / SR


def test_bad_samples_nan_empty_stereo_int_oversize():
    seg = TurnSegmenter(max_latency_s=10, max_chunk_s=2.0)
    x = np.full(16000, 0.25, dtype=np.float32)
    x[10] = np.nan
    x[20] = np.inf
    x[30] = 7.0
    turns = seg.push("user", T0, x)
    stereo = np.stack([np.full(16000, 0.2, np.float32), np.full(16000, 0.4, np.float32)], 1)
    turns += seg.push("agent", T0, stereo)
    assert seg.push("agent", T0 + 1.0, np.zeros(0, np.float32)) == []
    turns += seg.push(
        "agent", T0 + 1.0, np.full(32000, 16384, dtype=np.int16), channels=2
    )  # interleaved
    turns += seg.push("user", T0 + 1.0, np.zeros(3 * SR, np.float32))  # oversize (3 s > 2 s)
    turns += seg.flush()
    c = seg.counters
    assert c.nonfinite_samples == 2 and c.clipped_samples == 1 and c.empty_chunks == 1
    assert c.downmixed_chunks == 2 and c.oversize_chunks == 1
    assert c.invalid_chunks == 3  # NaN chunk, empty chunk, oversize chunk
    assert c.dropped_audio_s == pytest.approx(3.0)
    u = turns[0].user_audio
    assert u[10] == 0 and u[20] == 0 and u[30] == 1.0 and np.isfinite(u).all()
    np.testing.assert_allclose(turns[0].agent_audio, 0.3, atol=1e-7)
    np.testing.assert_allclose(turns[1].agent_audio, 0.5, atol=1e-7)


def test_wrong_rate_resampled_or_rejected():
    t = np.arange(48000) / 48000
    x48 = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    seg = TurnSegmenter(max_latency_s=10)
    for i in range(0, 48000, 4800):  # 0.1 s chunks at 48 kHz
        seg.push("user", T0 + i / 48000, x48[i : i + 4800], sample_rate=48000)
    (turn,) = seg.push("agent", T0, np.zeros(SR, np.float32))
    assert seg.counters.resampled_chunks == 10 and turn.user_padded_s == 0
    ref = (0.5 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)).astype(np.float32)
    # away from the chunk edges the resampled signal matches the 16 kHz sine
    inner = np.concatenate([np.arange(i + 100, i + 1500) for i in range(0, SR, 1600)])
    assert np.max(np.abs(turn.user_audio[inner] - ref[inner])) < 0.02

    rej = TurnSegmenter(on_wrong_rate="reject")
    assert rej.push("user", T0, x48, sample_rate=48000) == []
    assert rej.counters.wrong_rate_chunks == 1 and rej.counters.dropped_audio_s == pytest.approx(
        1.0
    )


def test_clock_jump_resync_and_reject():
    u, a = signals(2.0)
    seg = TurnSegmenter(max_jump_s=5.0, max_latency_s=0.5)
    turns = seg.push("user", T0, u) + seg.push("agent", T0, a)
    assert [t.index for t in turns] == [0, 1]
    # the clock jumps forward by an hour: no 3600 silent turns; indices keep counting
    turns = seg.push("user", T0 + 3600, u) + seg.push("agent", T0 + 3600, a)
    assert [t.index for t in turns] == [2, 3]
    assert turns[0].start_s == pytest.approx(T0 + 3600)
    assert seg.counters.clock_jumps == 1 and seg.counters.resyncs == 1
    # a straggler of the old clock is late, not another jump
    assert seg.push("agent", T0 + 1.5, a[:100]) == []
    assert seg.counters.clock_jumps == 1 and seg.counters.late_chunks == 1
    # sim time reset (backwards)
    turns = seg.push("user", 0.0, u) + seg.push("agent", 0.0, a)
    assert [t.index for t in turns] == [4, 5] and seg.counters.resyncs == 2

    rej = TurnSegmenter(max_jump_s=5.0, on_clock_jump="reject")
    rej.push("user", T0, u)
    assert rej.push("user", T0 + 60, u) == []
    assert rej.counters.clock_jumps == 1 and rej.counters.invalid_chunks == 1


def test_a_first_chunk_far_off_is_the_outlier_not_the_clock():
    u, a = signals(2.0)
    want = reference(u, a)
    seg = TurnSegmenter()
    bad = signals(0.1, seed=9)[0]
    got = run(
        seg,
        [
            ("agent", T0 - 1e6, bad),
            ("user", T0, u[:8000]),
            ("agent", T0, a),
            ("user", T0 + 0.5, u[8000:]),
        ],
    )
    assert [t.index for t in got] == [t.index for t in want] == [0, 1]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.user_audio, w.user_audio)
        assert g.start_s == w.start_s
    c = seg.counters
    assert (c.outlier_chunks, c.clock_jumps, c.resyncs) == (1, 0, 0)
    assert seg.last_outlier[:2] == ("agent", T0 - 1e6)
    assert c.dropped_audio_s == pytest.approx(0.1)


def test_an_explicit_origin_and_a_first_chunk_far_from_it():
    u, a = signals(1.0)
    # Confirmed by the next chunk: a clock jump from the given origin, not 1e6 silent turns.
    seg = TurnSegmenter(start_s=T0)
    got = run(seg, [("user", T0 + 1e6, u), ("agent", T0 + 1e6, a)])
    assert [t.index for t in got] == [0]
    np.testing.assert_array_equal(got[0].user_audio, u)
    assert got[0].start_s == pytest.approx(T0 + 1e6)
    assert (seg.counters.clock_jumps, seg.counters.resyncs) == (1, 1)
    # Refuted by the next chunk: a lone outlier, dropped.
    seg = TurnSegmenter(start_s=T0)
    got = run(seg, [("user", T0 + 1e6, u[:100]), ("user", T0, u), ("agent", T0, a)])
    assert [t.index for t in got] == [0] and seg.counters.outlier_chunks == 1
    np.testing.assert_array_equal(got[0].user_audio, u)


def test_memory_bounded_over_a_long_run():
    seg = TurnSegmenter(max_latency_s=0.5)
    rng = np.random.default_rng(0)
    x = np.zeros(640, np.float32)
    n_turns = 0
    for k in range(3 * 60 * 25):  # 3 minutes of 40 ms chunks; the agent stream stops half way
        n_turns += len(seg.push("user", T0 + k * 0.04 + rng.uniform(-1e-4, 1e-4), x))
        if k < 1000:
            n_turns += len(seg.push("agent", T0 + k * 0.04, x))
        assert seg.open_turns <= 3
        assert all(len(s.cov) <= 2 + 3 for s in seg._streams.values())
    assert n_turns == 179
    assert seg.counters.turns_emitted == 179


def test_invalid_parameters():
    with pytest.raises(ValueError, match="positive integer"):
        TurnSegmenter(frames_per_turn=1, fps=25, sample_rate=16001)
    with pytest.raises(ValueError, match="on_wrong_rate"):
        TurnSegmenter(on_wrong_rate="drop")
    with pytest.raises(ValueError, match="unknown stream"):
        TurnSegmenter().push("robot", 0.0, np.zeros(10, np.float32))


def test_short_turns():
    u, a = signals(2.0)
    seg = TurnSegmenter(frames_per_turn=10)  # 0.4 s turns
    turns = run(seg, [("user", T0, u), ("agent", T0, a)])
    assert len(turns) == 5 and all(t.user_audio.shape == (6400,) for t in turns)
    np.testing.assert_array_equal(np.concatenate([t.user_audio for t in turns]), u)


# ----------------------------------------------------------------------------- property test

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(
    seed=st.integers(0, 2**31 - 1),
    drop_p=st.sampled_from([0.0, 0.05, 0.3]),
    dup_p=st.sampled_from([0.0, 0.1, 0.3]),
    shuffle=st.sampled_from([0.0, 3.0, 30.0]),
    latency=st.sampled_from([0.0, 0.3, 1.0, 60.0]),
    max_chunk=st.sampled_from([50, 700, 9000]),
)
def test_property_alignment_and_conservation(seed, drop_p, dup_p, shuffle, latency, max_chunk):
    """Whatever the chunking, gaps, duplicates and order: turns are consecutive, every sample is
    either the source sample at its exact position or padding (counted), and every pushed sample
    is accounted for (emitted or counted as dropped)."""
    rng = np.random.default_rng(seed)
    n = int(SR * rng.uniform(0.5, 3.5))
    src = {
        s: (rng.uniform(0.1, 0.5, n) * rng.choice([-1, 1], n)).astype(np.float32)
        for s in ("user", "agent")
    }
    chunks = []
    for name, x in src.items():
        for i, c in enumerate(chunked(name, x, rng, max_chunk=max_chunk)):
            c = c + (None, 1, i)  # sample_rate, channels, seq: only seq + 1 is snapped
            if rng.random() >= drop_p:
                chunks.append(c)
            if rng.random() < dup_p:
                chunks.append(c)
    order = np.argsort(
        np.arange(len(chunks)) % max(1, len(chunks) // 2)
        + rng.uniform(0, shuffle + 1e-9, len(chunks))
    )
    seg = TurnSegmenter(max_latency_s=latency, start_s=T0)
    pushed = sum(len(chunks[k][2]) for k in order)
    turns = run(seg, [chunks[k] for k in order])
    assert [t.index for t in turns] == list(range(len(turns)))
    kept = 0
    for name, x in src.items():
        out = np.concatenate([t.audio(name) for t in turns])
        pad = sum(getattr(t, f"{name}_padded_s") for t in turns)
        m = min(len(out), n)
        got = out[:m]
        assert np.all((got == x[:m]) | (got == 0)), "misaligned sample"
        zeros = int(np.sum(out == 0))
        assert pad * SR == pytest.approx(zeros, abs=1e-6)
        kept += len(out) - zeros
    c = seg.counters
    assert kept + c.dropped_audio_s * SR == pytest.approx(pushed, abs=1e-6)
    if drop_p == 0 and dup_p == 0 and latency == 60.0:
        assert c.dropped_audio_s == 0
