"""Turn segmentation and alignment of two stamped audio streams on one clock (no ROS).

Two streams arrive as stamped chunks of any size: ``"user"`` (the partner, from the microphone)
and ``"agent"`` (the robot's own speech). :class:`TurnSegmenter` cuts them into aligned turns of
``frames_per_turn / fps`` seconds on the common clock and emits each turn once, in order.

The clock
---------
Every chunk carries the stamp (seconds) of its FIRST sample. Turn ``k`` covers
``[origin + k*T, origin + (k+1)*T)`` with ``T = frames_per_turn / fps``. The origin is the first
chunk's stamp (of either stream) unless ``start_s`` is given. A sample's position is
``round((stamp - origin) * sample_rate) + i``. A chunk whose stamp is within
``stamp_tolerance_s`` of where the previous chunk of the same stream ended is treated as
contiguous (stamps jitter; this neither pads nor drops a sample for sub-tolerance jitter). Pass
the publisher's ``seq`` so that only the chunk that really follows is snapped (see :meth:`push`).

The rules (each one counted in :class:`SegmenterCounters`)
---------------------------------------------------------
- **Emission.** Turn k is emitted when both streams fully cover it, or when the lateness deadline
  passes: a chunk of either stream STARTS at or after ``turn end + max_latency_s`` (data-driven,
  so bag replay at any speed gives the same turns; chunk starts, not ends, so that one stream's
  long chunk does not make the other stream's chunk of the same time late), or
  :meth:`TurnSegmenter.poll` is called with ``now_s >= turn end + max_latency_s`` (use the
  node's clock when a stream can stop entirely).
  Missing samples of an emitted turn are zeros (silence), counted in ``Turn.padded_s`` and in the
  totals. Turns are emitted in order, each index once; a gap in both streams shorter than
  ``max_jump_s`` gives silent turns (the conversation goes on); :meth:`poll` never emits a turn
  that starts after the newest received audio.
- **Out of order** within the open (not yet emitted) turns: placed by stamp; nothing is lost
  (``reordered_chunks`` counts chunks that start before the end of their stream's previous chunk).
- **Duplicates**: samples already received (in an open turn or in one of the last
  ``history_turns`` emitted turns) are not overwritten (first copy wins); the overlap is dropped
  and counted (``duplicate_chunks``, ``dropped_audio_s``).
- **Late**: samples for a turn already emitted that were not received before are dropped and
  counted (``late_chunks``, ``dropped_audio_s``).
- **Clock jumps**: a chunk starting more than ``max_jump_s`` after the newest audio, or more than
  ``max_jump_s`` before the oldest open turn, is a jump. ``on_clock_jump="resync"`` (default)
  holds it until the next chunk (of either stream) arrives: if that chunk jumps too (to within
  ``max_jump_s`` of the held one) the jump is real (``clock_jumps``): the open turns are emitted
  (padded), the origin moves so the held chunk starts the next turn index (turn indices keep
  counting up; ``resyncs``) and both chunks are placed; otherwise the held chunk was a lone
  far-future or far-past stamp and is dropped (``outlier_chunks``, ``invalid_chunks``,
  ``dropped_audio_s``) without disturbing the stream. Chunks that still belong to the clock
  before a resync are dropped as late rather than resyncing back.
  ``on_clock_jump="reject"`` drops the chunk (``invalid_chunks``, ``dropped_audio_s``); note a
  persistent jump then drops all further audio of that clock until :meth:`reset`.
- **The chunk itself** (NaN/Inf, clipping, empty, oversize, channels, sample rate): see
  :mod:`timar_ros.robot.chunk_input`.

Memory is bounded: open turns span at most ``(max_jump_s + max_chunk_s + max_latency_s) / T + 2``
turns per stream, and only ``history_turns`` emitted coverage masks are kept.

(The clock and coverage rules stay in one module because they are one state machine acting on
the same per-stream state; what a single chunk needs before it reaches that state is
:mod:`timar_ros.robot.chunk_input`.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction

import numpy as np

from timar_ros.robot.chunk_input import WRONG_RATE_ACTIONS, prepare_chunk

STREAMS = ("user", "agent")
CLOCK_JUMP_ACTIONS = ("resync", "reject")


@dataclass
class SegmenterCounters:
    """Totals since construction or :meth:`TurnSegmenter.reset`.

    The first four fields match ``timar_ros/ConversationState`` (``dropped_audio_s`` as float32
    seconds; the counts as uint32).
    """

    dropped_audio_s: float = 0.0  # late + duplicate + rejected audio, seconds (at 16 kHz)
    late_chunks: int = 0  # chunks with samples for already-emitted turns
    duplicate_chunks: int = 0  # chunks overlapping samples already received
    invalid_chunks: int = 0  # rejected or repaired chunks (NaN/Inf, empty, oversize, rate, jump)
    empty_chunks: int = 0
    nonfinite_samples: int = 0
    clipped_samples: int = 0
    oversize_chunks: int = 0
    downmixed_chunks: int = 0
    resampled_chunks: int = 0
    wrong_rate_chunks: int = 0  # rejected for their sample rate (on_wrong_rate="reject")
    clock_jumps: int = 0
    resyncs: int = 0
    outlier_chunks: int = 0  # a lone stamp jump not followed by the next chunk: dropped
    reordered_chunks: int = 0  # started before the end of the stream's previous chunk
    user_padded_s: float = 0.0  # silence inserted in emitted turns, per stream
    agent_padded_s: float = 0.0
    turns_emitted: int = 0
    turns_forced: int = 0  # emitted by the lateness deadline, with padding

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Turn:
    """One aligned turn of both streams on the common clock."""

    index: int
    start_s: float  # stamp of the turn's first sample (clock of the input stamps)
    duration_s: float
    sample_rate: int
    user_audio: np.ndarray  # float32 [samples_per_turn]
    agent_audio: np.ndarray  # float32 [samples_per_turn]
    user_padded_s: float  # silence inserted in this turn because user audio was missing
    agent_padded_s: float
    forced: bool  # True if emitted by the lateness deadline rather than complete coverage
    counters: SegmenterCounters = field(default_factory=SegmenterCounters)  # totals at emission

    def audio(self, stream: str) -> np.ndarray:
        return self.user_audio if stream == "user" else self.agent_audio

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass
class PartialTurn:
    """The turn in progress (the next to be emitted) as received so far."""

    index: int
    start_s: float
    user_audio: np.ndarray  # float32 [samples_per_turn], zeros where nothing was received
    agent_audio: np.ndarray
    user_heard: int  # frames from the turn's start received without a gap, per stream
    agent_heard: int


class _Stream:
    __slots__ = ("audio", "cov", "next_idx", "end_idx", "start_idx", "seq")

    def __init__(self):
        self.audio: dict[int, np.ndarray] = {}  # open turn index -> float32 [spt]
        self.cov: dict[int, np.ndarray] = {}  # turn index -> bool [spt] (open + recent emitted)
        self.next_idx: int | None = None  # where the last chunk of this stream ended (samples)
        self.end_idx: int | None = None  # furthest sample received (exclusive)
        self.start_idx: int | None = None  # latest chunk start (the stream's clock, for deadlines)
        self.seq: int | None = None  # sequence number of the last chunk (when given)


class TurnSegmenter:
    """Cut two stamped audio streams into aligned turns (see the module docstring for the rules).

    Args:
        frames_per_turn: motion frames per turn (25 = 1 s at 25 fps).
        fps: motion frame rate (Hz).
        sample_rate: audio rate of the turns (Hz); other input rates are resampled or rejected.
        on_wrong_rate: "resample" or "reject".
        max_latency_s: lateness deadline after a turn's end (seconds of newer audio, or of
            ``poll`` time) after which the turn is emitted with padding.
        max_jump_s: stamp discontinuity (s) treated as a clock jump.
        on_clock_jump: "resync" or "reject".
        stamp_tolerance_s: jitter (s) under which a chunk counts as contiguous with the previous
            chunk of its stream.
        max_chunk_s: longer chunks are rejected (s).
        clip: finite samples are clipped to [-clip, clip].
        history_turns: emitted turns whose coverage is kept to tell duplicates from late audio.
        start_s: explicit clock origin (s); default: the first chunk's stamp.
    """

    def __init__(
        self,
        frames_per_turn: int = 25,
        fps: int = 25,
        sample_rate: int = 16000,
        on_wrong_rate: str = "resample",
        max_latency_s: float = 0.5,
        max_jump_s: float = 5.0,
        on_clock_jump: str = "resync",
        stamp_tolerance_s: float = 0.002,
        max_chunk_s: float = 10.0,
        clip: float = 1.0,
        history_turns: int = 2,
        start_s: float | None = None,
    ):
        spt = Fraction(frames_per_turn * sample_rate, fps)
        if frames_per_turn <= 0 or fps <= 0 or sample_rate <= 0 or spt.denominator != 1:
            raise ValueError(
                f"frames_per_turn * sample_rate / fps must be a positive integer, got "
                f"{frames_per_turn} * {sample_rate} / {fps}"
            )
        if on_wrong_rate not in WRONG_RATE_ACTIONS:
            raise ValueError(
                f"on_wrong_rate must be one of {WRONG_RATE_ACTIONS}, got {on_wrong_rate!r}"
            )
        if on_clock_jump not in CLOCK_JUMP_ACTIONS:
            raise ValueError(
                f"on_clock_jump must be one of {CLOCK_JUMP_ACTIONS}, got {on_clock_jump!r}"
            )
        for name, value in (
            ("max_latency_s", max_latency_s),
            ("stamp_tolerance_s", stamp_tolerance_s),
        ):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        for name, value in (
            ("max_jump_s", max_jump_s),
            ("max_chunk_s", max_chunk_s),
            ("clip", clip),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        self.frames_per_turn = int(frames_per_turn)
        self.fps = int(fps)
        self.sample_rate = int(sample_rate)
        self.samples_per_turn = int(spt)
        self.turn_duration_s = self.samples_per_turn / self.sample_rate
        self.on_wrong_rate = on_wrong_rate
        self.on_clock_jump = on_clock_jump
        self.max_latency_s = float(max_latency_s)
        self.max_jump_s = float(max_jump_s)
        self.stamp_tolerance_s = float(stamp_tolerance_s)
        self.max_chunk_s = float(max_chunk_s)
        self.clip = float(clip)
        self.history_turns = max(0, int(history_turns))
        self._start_s = start_s
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget everything: clock origin, open turns, counters; the next turn is index 0."""
        self.origin_s: float | None = self._start_s
        self.next_turn = 0  # first turn not yet emitted
        self.counters = SegmenterCounters()
        self._streams = {s: _Stream() for s in STREAMS}
        self._prev_epoch: tuple[float, int, int] | None = None  # (origin, lo_idx, hi_idx)
        self._held: tuple | None = None  # a chunk that jumped, awaiting confirmation
        # The chunks placed on the current clock (since the origin was set or the last resync),
        # counted up to 2, and the first of them: a clock that only one chunk ever showed was
        # that chunk's own stamp, and a confirmed jump away from it means the chunk was the outlier.
        self._epoch_chunks = 0
        self._epoch_first: tuple | None = None  # (stream, stamp_s, samples, seq)
        self._epoch_turn = 0  # the first turn index of the current clock
        self.last_outlier: tuple | None = (
            None  # (stream, stamp_s, samples, seq) of the last one dropped
        )

    @property
    def open_turns(self) -> int:
        """Number of turns currently buffered (for diagnostics; bounded)."""
        return len(set().union(*(st.audio.keys() for st in self._streams.values())))

    @property
    def held_chunk(self) -> tuple | None:
        """The chunk held after a stamp jump until the next chunk confirms or refutes it:
        (stream, stamp_s, samples, seq), or None."""
        return self._held

    def stream_end_s(self, stream: str) -> float | None:
        """Stamp (s) just past the furthest sample received of ``stream`` on the current clock."""
        end = self._streams[stream].end_idx
        return None if end is None else self.origin_s + end / self.sample_rate

    @property
    def head_s(self) -> float | None:
        """Stamp (s) just past the newest audio of either stream on the current clock."""
        head = self._head_idx()
        return None if head is None else self.origin_s + head / self.sample_rate

    def _head_idx(self) -> int | None:
        ends = [st.end_idx for st in self._streams.values() if st.end_idx is not None]
        return max(ends) if ends else None

    # ------------------------------------------------------------------ input
    def push(
        self,
        stream: str,
        stamp_s: float,
        samples: np.ndarray,
        sample_rate: int | None = None,
        channels: int = 1,
        seq: int | None = None,
    ) -> list[Turn]:
        """Add one chunk; returns the turns that became ready (possibly none), in order.

        Args:
            stream: "user" or "agent".
            stamp_s: time of the chunk's first sample (s), on the same clock for both streams.
            samples: float (in [-1, 1]) or integer PCM, [n] mono, [n, channels], or interleaved
                [n * channels] with ``channels`` > 1.
            sample_rate: Hz (default: the segmenter's rate).
            channels: interleaved channel count of a 1-D ``samples``.
            seq: the publisher's sequence number (AudioChunk.seq), optional. With it, only a chunk
                that directly follows the previous one (seq + 1) is snapped to it within
                ``stamp_tolerance_s``; without it, any chunk within the tolerance is (so an
                out-of-order chunk can be misplaced by up to the tolerance).
        """
        if stream not in self._streams:
            raise ValueError(f"unknown stream {stream!r}; expected one of {STREAMS}")
        sr = self.sample_rate if sample_rate is None else int(sample_rate)
        if not math.isfinite(stamp_s):
            x = np.asarray(samples)
            self.counters.invalid_chunks += 1
            self.counters.dropped_audio_s += x.size / max(channels, 1) / max(sr, 1)
            return []
        x = prepare_chunk(
            samples,
            sr,
            max(int(channels), 1),
            rate=self.sample_rate,
            clip=self.clip,
            max_chunk_s=self.max_chunk_s,
            on_wrong_rate=self.on_wrong_rate,
            counters=self.counters,
        )
        if x is None:
            return []
        return self._push_prepared(stream, float(stamp_s), x, seq)

    def _is_jump(self, a: int) -> bool:
        boundary = self.next_turn * self.samples_per_turn
        head = self._head_idx()
        jump_lim = int(round(self.max_jump_s * self.sample_rate))
        # Before any audio the reference is the boundary (an explicit ``start_s``), so a first
        # chunk far from it is a jump too, not a million silent turns.
        return a > (boundary if head is None else head) + jump_lim or a < boundary - jump_lim

    def _count_outlier(self, chunk: tuple) -> None:
        self.last_outlier = chunk
        self.counters.outlier_chunks += 1
        self.counters.invalid_chunks += 1
        self.counters.dropped_audio_s += chunk[2].size / self.sample_rate

    def _drop_held(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._count_outlier(held)

    def _clear_streams(self) -> None:
        for s in self._streams.values():
            s.audio.clear()
            s.cov.clear()
            s.next_idx = s.end_idx = s.start_idx = s.seq = None
        self._epoch_chunks = 0
        self._epoch_first = None
        self._epoch_turn = self.next_turn

    def _push_prepared(
        self, stream: str, stamp_s: float, x: np.ndarray, seq: int | None
    ) -> list[Turn]:
        out: list[Turn] = []
        if self.origin_s is None:
            self.origin_s = stamp_s
        st = self._streams[stream]
        n = int(x.size)
        a = int(round((stamp_s - self.origin_s) * self.sample_rate))
        tol = int(round(self.stamp_tolerance_s * self.sample_rate))
        follows = seq is None or st.seq is None or int(seq) == st.seq + 1
        if st.next_idx is not None and follows and abs(a - st.next_idx) <= tol:
            a = st.next_idx
        if self._is_jump(a):
            if self._belongs_to_prev_epoch(stamp_s, n):
                self.counters.late_chunks += 1
                self.counters.dropped_audio_s += n / self.sample_rate
                return []
            if self.on_clock_jump == "reject":
                self.counters.clock_jumps += 1
                self.counters.invalid_chunks += 1
                self.counters.dropped_audio_s += n / self.sample_rate
                return []
            held = self._held
            if held is None or abs(stamp_s - held[1]) > self.max_jump_s:
                self._drop_held()  # an earlier lone jump that this chunk does not confirm
                self._held = (stream, stamp_s, x, seq)
                return []
            self._held = None
            boundary = self.next_turn * self.samples_per_turn
            if self._epoch_chunks == 1 and self.next_turn == self._epoch_turn:
                # Two chunks agree on a clock that only one earlier chunk (nothing emitted from
                # it) contradicts: that one was the lone far-off stamp (e.g. the stream's very
                # first chunk), not the clock. Drop it and start the clock on the held chunk.
                lone = self._epoch_first
                self._clear_streams()
                self._count_outlier(lone)
            else:
                # Confirmed: the clock really jumped. Resync on the held chunk, then place both.
                self.counters.clock_jumps += 1
                out.extend(self.flush())
                boundary = self.next_turn * self.samples_per_turn
                jump_lim = int(round(self.max_jump_s * self.sample_rate))
                head = self._head_idx()
                self._prev_epoch = (
                    self.origin_s,
                    boundary - jump_lim,
                    (head or boundary) + jump_lim,
                )
                self._clear_streams()
                self.counters.resyncs += 1
            self.origin_s = held[1] - boundary / self.sample_rate
            out.extend(self._push_prepared(held[0], held[1], held[2], held[3]))
            out.extend(self._push_prepared(stream, stamp_s, x, seq))
            return out
        self._drop_held()  # a normal chunk: the held jump was a lone outlier
        if st.next_idx is not None and a < st.next_idx - tol:
            self.counters.reordered_chunks += 1
        if seq is not None:
            st.seq = int(seq)
        self._place(st, a, x)
        if self._epoch_chunks == 0:
            self._epoch_first = (stream, stamp_s, x, seq)
        self._epoch_chunks = min(self._epoch_chunks + 1, 2)
        st.next_idx = a + n
        st.end_idx = a + n if st.end_idx is None else max(st.end_idx, a + n)
        st.start_idx = a if st.start_idx is None else max(st.start_idx, a)
        out.extend(self._emit_ready(now_idx=None))
        return out

    def _belongs_to_prev_epoch(self, stamp_s: float, n: int) -> bool:
        if self._prev_epoch is None:
            return False
        origin, lo, hi = self._prev_epoch
        a_old = int(round((stamp_s - origin) * self.sample_rate))
        return lo <= a_old <= hi

    def _place(self, st: _Stream, a: int, x: np.ndarray) -> None:
        spt = self.samples_per_turn
        c = self.counters
        b = a + x.size
        boundary = self.next_turn * spt
        late = dup = 0
        k = a // spt
        while k * spt < b:
            t0 = k * spt
            s, e = max(a, t0) - t0, min(b, t0 + spt) - t0
            seg = x[t0 + s - a : t0 + e - a]
            cov = st.cov.get(k)
            if t0 < boundary:  # already emitted
                if cov is None:
                    late += e - s
                else:
                    d = int(cov[s:e].sum())
                    dup += d
                    late += (e - s) - d
            else:
                if cov is None:
                    cov = st.cov[k] = np.zeros(spt, dtype=bool)
                    st.audio[k] = np.zeros(spt, dtype=np.float32)
                have = cov[s:e]
                d = int(have.sum())
                if d:
                    dup += d
                    new = ~have
                    st.audio[k][s:e][new] = seg[new]
                else:
                    st.audio[k][s:e] = seg
                cov[s:e] = True
            k += 1
        if late:
            c.late_chunks += 1
        if dup:
            c.duplicate_chunks += 1
        c.dropped_audio_s += (late + dup) / self.sample_rate

    # ------------------------------------------------------------------ output
    def _complete(self, k: int) -> bool:
        for st in self._streams.values():
            cov = st.cov.get(k)
            if cov is None or k not in st.audio or not cov.all():
                return False
        return True

    def _emit_ready(self, now_idx: int | None) -> list[Turn]:
        spt = self.samples_per_turn
        lat = int(round(self.max_latency_s * self.sample_rate))
        out = []
        while True:
            k = self.next_turn
            head = self._head_idx()
            if head is None:
                break
            if self._complete(k):
                out.append(self._emit(k, forced=False))
                continue
            end = (k + 1) * spt
            clock = max(s.start_idx for s in self._streams.values() if s.start_idx is not None)
            due = clock >= end + lat
            if not due and now_idx is not None:
                due = now_idx >= end + lat and k * spt < head
            if not due:
                break
            out.append(self._emit(k, forced=True))
        return out

    def _emit(self, k: int, forced: bool) -> Turn:
        spt = self.samples_per_turn
        audio, padded = {}, {}
        for name, st in self._streams.items():
            a = st.audio.pop(k, None)
            cov = st.cov.get(k)
            if a is None or cov is None:
                a = np.zeros(spt, dtype=np.float32)
                missing = spt
            else:
                missing = spt - int(cov.sum())
            audio[name] = a
            padded[name] = missing / self.sample_rate
            # keep coverage of the last `history_turns` emitted turns only
            for old in [j for j in st.cov if j <= k - self.history_turns]:
                del st.cov[old]
        c = self.counters
        c.user_padded_s += padded["user"]
        c.agent_padded_s += padded["agent"]
        c.turns_emitted += 1
        c.turns_forced += int(forced)
        self.next_turn = k + 1
        return Turn(
            index=k,
            start_s=self.origin_s + k * self.turn_duration_s,
            duration_s=self.turn_duration_s,
            sample_rate=self.sample_rate,
            user_audio=audio["user"],
            agent_audio=audio["agent"],
            user_padded_s=padded["user"],
            agent_padded_s=padded["agent"],
            forced=forced,
            counters=SegmenterCounters(**c.as_dict()),
        )

    def partial(self) -> PartialTurn | None:
        """The next turn to be emitted as received so far (copies), or None before any audio.
        ``*_heard``: the whole frames from its start received without a gap (what a tick of
        streaming inside the turn may use)."""
        if self.origin_s is None:
            return None
        k, spt = self.next_turn, self.samples_per_turn
        spf = spt // self.frames_per_turn
        audio, heard = {}, {}
        for name, st in self._streams.items():
            a, cov = st.audio.get(k), st.cov.get(k)
            if a is None or cov is None:
                audio[name], heard[name] = np.zeros(spt, np.float32), 0
                continue
            gap = np.flatnonzero(~cov)
            n = int(gap[0]) if gap.size else spt
            audio[name], heard[name] = a.copy(), n // spf
        return PartialTurn(
            k,
            self.origin_s + k * self.turn_duration_s,
            audio["user"],
            audio["agent"],
            heard["user"],
            heard["agent"],
        )

    def poll(self, now_s: float) -> list[Turn]:
        """Emit the turns whose lateness deadline has passed at ``now_s`` (the stamps' clock).

        Call it from a timer when a stream may stop entirely (e.g. the robot is silent and its
        TTS publishes nothing). Only turns that start before the newest received audio are
        emitted; with no audio at all, no turns are produced.
        """
        if self.origin_s is None or not math.isfinite(now_s):
            return []
        now_idx = int(math.floor((now_s - self.origin_s) * self.sample_rate))
        return self._emit_ready(now_idx=now_idx)

    def flush(self) -> list[Turn]:
        """Emit every turn up to the newest received audio (padded), e.g. at the end of a file.
        A held (unconfirmed) clock jump is dropped as an outlier."""
        self._drop_held()
        head = self._head_idx()
        out = []
        if head is None:
            return out
        while self.next_turn * self.samples_per_turn < head:
            k = self.next_turn
            out.append(self._emit(k, forced=not self._complete(k)))
        return out
