"""The conversation loop of the robot, without ROS: audio chunks in, motion blocks out.

:class:`ConversationPipeline` joins the pieces the ``conversation_policy`` node runs, so that
bag evaluation (offline) and the node (live) do exactly the same thing:

    chunks -> TurnSegmenter -> the turn in progress -> StreamingPolicy.tick every tick_s
                                                       -> MotionBlock (frames, display stamp)
                            -> the completed turn   -> last ticks + end_turn (history), voice
                                                       activity -> TurnResult (state)

Timing (:mod:`timar_ros.runtime.ticks`). Every ``tick_s`` of the partner's audio the turn in
progress is run again on what has been heard and the next block of frames is emitted, so a frame
is shown ``display_delay_s = tick_s + lookahead_s + latency_margin_s`` after its audio time:
frame i of turn k is stamped ``turn_start + display_delay_s + i / fps``. ``tick_s`` = the turn
(1 s) is the 1-s mode, one block per completed turn. The robot's own speech is known before it
is played: publish it on the agent topic stamped with ``playback_time - display_delay_s`` (or
play it ``display_delay_s`` after the stamp it was published with) and the mouth moves with the
sound. The ``voice_player`` node stamps it with the time it is heard instead;
``agent_audio_heard`` then takes agent audio ``display_delay_s`` early into the turns (the same
thing), and voice_player takes its lead from the policy's display delay.

Faults. A policy step that raises, or returns NaN/Inf motion, is reported through
:attr:`TurnResult.error`; the turn is skipped (no motion) and the policy's history is reset so the
stream recovers. A clock jump that makes the segmenter resync also resets the history (the old
turns are not this conversation's recent past any more). Every repaired or dropped input and
every fault is also described as a :class:`Fault` (kind, one-line text saying what was done and
how much), collected by :meth:`ConversationPipeline.take_faults`;
:class:`timar_ros.robot.faults.FaultLog` rate-limits
them per kind for a log (the counters, not the log, are the complete record).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from timar_ros.motion import FPS
from timar_ros.robot.faults import Fault
from timar_ros.robot.partner_motion import UserMotionBuffer
from timar_ros.robot.segmenter import SegmenterCounters, Turn, TurnSegmenter
from timar_ros.robot.vad import TurnVoiceActivity
from timar_ros.runtime.ticks import TickSchedule

# segmenter counter -> what was done, for the fault texts
_COUNTER_TEXT = {
    "empty_chunks": "empty chunk ignored",
    "oversize_chunks": "chunk dropped: longer than max_chunk_s ({max_chunk_s:g} s); "
    "publish shorter chunks",
    "wrong_rate_chunks": "chunk at {rate} Hz dropped (on_wrong_rate=reject; expected {sr} Hz)",
    "resampled_chunks": "chunk at {rate} Hz resampled to {sr} Hz",
    "downmixed_chunks": "{channels}-channel chunk down-mixed to mono (channel average)",
    "nonfinite_samples": "{delta} NaN/Inf samples replaced with 0",
    "clipped_samples": "{delta} samples outside [-1, 1] clipped",
    "duplicate_chunks": "{dropped_ms:.0f} ms already received dropped "
    "(duplicate; the first copy is kept)",
    "late_chunks": "{dropped_ms:.0f} ms dropped: late, its turns were already processed "
    "(raise max_latency_s if this is frequent)",
    "outlier_chunks": "a chunk stamped {jump_s:+.1f} s away from the stream, not followed by the "
    "next chunk, was dropped ({outlier_ms:.0f} ms; lone far-future/far-past stamp)",
    "clock_jumps": "the audio clock jumped by {jump_s:+.1f} s "
    "(more than max_jump_s = {max_jump_s:g} s, confirmed by the next chunk): open turns emitted "
    "padded, clock resynchronised, policy history reset",
    "reordered_chunks": "chunk arrived out of order ({reorder_ms:.0f} ms before the end of the "
    "previous chunk): placed by its stamp",
}


@dataclass
class MotionBlock:
    """Frames to show: one tick's block, or a whole turn in the 1-s mode."""

    turn_index: int
    first_frame: int  # the frame of the turn that motion[0] is
    motion: np.ndarray  # [n, 56] float32 (exp | jaw | rotation)
    display_stamp_s: float  # when motion[0] is meant to be shown (clock of the audio stamps)
    latency_ms: float  # wall time of the policy call that made it
    final: bool  # the turn's last block


@dataclass
class TurnResult:
    """What one turn produced (its blocks are :meth:`ConversationPipeline.take_blocks`)."""

    turn: Turn
    motion: np.ndarray | None  # [F, 56] float32 (exp | jaw | rotation); None if the step failed
    display_stamp_s: float  # when frame 0 is meant to be shown (clock of the audio stamps)
    user_voice_fraction: float
    agent_voice_fraction: float
    user_speaking: bool
    agent_speaking: bool
    history_turns: int
    latency_ms: float  # wall time of the policy (slowest tick, with the turn's commit)
    deadline_missed: bool  # latency_ms > deadline_ms
    used_user_motion: bool
    counters: SegmenterCounters
    skipped_turns: int  # total turns skipped (policy errors) so far
    error: str | None = None


@dataclass
class PipelineConfig:
    """Timing and fault handling of the loop: conversation_policy's parameters of the same
    names, whose defaults live in config/timar.yaml (:meth:`defaults`)."""

    display_delay_s: float  # s: audio time -> display time of a frame
    deadline_ms: float  # ms
    speaking_threshold: float  # voiced fraction of a turn
    vad_aggressiveness: int  # webrtcvad 0..3
    use_user_motion: bool
    segmenter: dict = field(default_factory=dict)  # TurnSegmenter keyword arguments
    agent_audio_heard: bool = False  # agent stamps = heard times: shifted by -display_delay_s
    tick_s: float = 1.0  # a block every tick_s (s); the turn's length = the 1-s mode
    lookahead_s: float = 0.0  # partner audio heard beyond a block before it is computed (s)

    @classmethod
    def from_params(cls, p: dict) -> PipelineConfig:
        """From conversation_policy's parameter dict ``p`` (``display_delay_s`` < 0: derived,
        tick_s + lookahead_s + latency_margin_s)."""
        tick, look = float(p["tick_s"]), float(p["lookahead_s"])
        delay = float(p["display_delay_s"])
        if delay < 0:
            delay = tick + look + float(p["latency_margin_s"])
        elif delay < tick + look:
            raise ValueError(
                f"display_delay_s={delay:g} is shorter than tick_s + lookahead_s = "
                f"{tick + look:g} s: frames would be due before they can be computed; use -1 "
                "(tick_s + lookahead_s + latency_margin_s) or a larger value"
            )
        return cls(
            display_delay_s=delay,
            tick_s=tick,
            lookahead_s=look,
            deadline_ms=float(p["deadline_ms"]),
            speaking_threshold=float(p["speaking_threshold"]),
            vad_aggressiveness=int(p["vad_aggressiveness"]),
            use_user_motion=bool(p["use_user_motion"]),
            agent_audio_heard=bool(p.get("agent_audio_heard", False)),
            segmenter=dict(
                on_wrong_rate=p["on_wrong_rate"],
                max_latency_s=float(p["max_latency_s"]),
                max_jump_s=float(p["max_jump_s"]),
            ),
        )

    @classmethod
    def defaults(cls) -> PipelineConfig:
        """conversation_policy's defaults (config/timar.yaml)."""
        from timar_ros.resources import node_defaults

        return cls.from_params(node_defaults("conversation_policy"))


class ConversationPipeline:
    """Segment two audio streams into turns and run the streaming policy on each.

    Args:
        policy: a :class:`timar_ros.runtime.StreamingPolicy` (any backend).
        config: timing and fault handling.
    """

    def __init__(self, policy, config: PipelineConfig | None = None):
        self.policy = policy
        self.config = config or PipelineConfig.defaults()
        self.segmenter = TurnSegmenter(
            frames_per_turn=policy.frames_per_turn, fps=FPS, **self.config.segmenter
        )
        if self.segmenter.samples_per_turn != policy.samples_per_turn:
            raise ValueError(
                f"segmenter turns have {self.segmenter.samples_per_turn} samples but the policy "
                f"expects {policy.samples_per_turn}"
            )
        self.vad = TurnVoiceActivity(
            threshold=self.config.speaking_threshold,
            sample_rate=self.segmenter.sample_rate,
            aggressiveness=self.config.vad_aggressiveness,
        )
        try:
            self.schedule = TickSchedule.from_seconds(
                policy.frames_per_turn, self.config.tick_s, self.config.lookahead_s
            )
        except ValueError as exc:
            raise ValueError(f"tick_s/lookahead_s: {exc}") from exc
        if self.schedule.streaming:
            try:
                policy._check_tick_support()
            except ValueError as exc:
                raise ValueError(
                    f"tick_s={self.config.tick_s:g}: {exc}; set tick_s to the turn's length "
                    f"({policy.frames_per_turn / FPS:g}) for this policy"
                ) from exc
        self.reset()

    def reset(self) -> None:
        """Start a new conversation: clock origin, open turns, counters and history."""
        self.segmenter.reset()
        self.policy.reset()
        self.user_motion = UserMotionBuffer(self.policy.frames_per_turn)
        self.skipped_turns = 0
        self._resyncs = 0
        # Pipeline-level counters (the segmenter's are in segmenter.counters).
        self.counters = {
            "turns": 0,
            "skipped_turns": 0,
            "deadline_misses": 0,
            "rate_changes": 0,
            "padded_turns": 0,
            "clock_offset_chunks": 0,
        }
        self._arrival: tuple[float, float] | None = None  # (newest audio end stamp, arrival time)
        self._faults: list[Fault] = []
        self._rate: dict[str, int] = {}
        self._blocks: list[MotionBlock] = []
        # the turn in progress: its index, ticks done, frames emitted, slowest tick (ms), error
        self._open: dict | None = None

    def take_blocks(self) -> list[MotionBlock]:
        """The motion blocks made since the last call (in display order), and forget them."""
        out, self._blocks = self._blocks, []
        return out

    def take_faults(self) -> list[Fault]:
        """The faults since the last call (oldest first), and forget them."""
        out, self._faults = self._faults, []
        return out

    def push_audio(
        self,
        stream: str,
        stamp_s: float,
        samples: np.ndarray,
        sample_rate: int,
        channels: int = 1,
        seq: int | None = None,
        now_s: float | None = None,
    ) -> list[TurnResult]:
        """Add a chunk of "user" or "agent" audio (stamp of its first sample, seconds; seq = the
        publisher's chunk counter, which orders chunks whose stamps jitter; now_s = the receiver's
        clock at arrival, which lets :meth:`poll` work when that clock is not the stamps' clock)."""
        if stream == "agent" and self.config.agent_audio_heard:
            stamp_s -= self.config.display_delay_s  # heard then: its frames are due then
        seg = self.segmenter
        before = seg.counters.as_dict()
        held, prev_end, newest = seg.held_chunk, seg.stream_end_s(stream), seg.head_s
        turns = seg.push(stream, stamp_s, samples, sample_rate, channels=channels, seq=seq)
        self._describe(
            stream,
            stamp_s,
            samples,
            int(sample_rate),
            channels,
            seq,
            before,
            held,
            prev_end,
            newest,
        )
        if now_s is not None and seg.head_s is not None:
            newest = seg.head_s
            self._arrival = (newest, float(now_s))
            offset = float(now_s) - newest
            if abs(offset) > seg.max_jump_s:
                self.counters["clock_offset_chunks"] += 1
                self._faults.append(
                    Fault(
                        "clock_offset_chunks",
                        (
                            f"{stream} audio stamps are {abs(offset):.1f} s "
                            f"{'behind' if offset > 0 else 'ahead of'} "
                            "this node's clock (bag replay without /clock, or use_sim_time "
                            "differs between "
                            "publisher and node?): turn deadlines follow the audio stamps"
                        ),
                        level="info",
                    )
                )
        out = [self._run(t) for t in turns]
        self._tick_open()
        return out

    def _describe(
        self, stream, stamp_s, samples, rate, channels, seq, before, held, prev_end, newest
    ) -> None:
        """Turn the counter changes of one push into faults (``held``, ``prev_end``, ``newest``:
        the segmenter's held chunk, this stream's end and the newest audio before the push)."""
        seg = self.segmenter
        after = seg.counters.as_dict()
        x = np.asarray(samples)
        chans = x.shape[1] if x.ndim == 2 else max(int(channels), 1)
        where = (
            f"{stream} audio"
            + (f" seq {seq}" if seq is not None else "")
            + f" (stamp {stamp_s:.3f} s)"
        )
        prev_rate = self._rate.get(stream)
        if rate > 0 and prev_rate is not None and rate != prev_rate:
            self.counters["rate_changes"] += 1
            self._faults.append(
                Fault("rate_changes", f"{where}: sample rate changed from {prev_rate} to {rate} Hz")
            )
        if rate > 0:
            self._rate[stream] = rate
        if prev_end is None:
            prev_end = newest
        jump_s = stamp_s - newest if newest is not None else 0.0
        info = dict(
            rate=rate,
            sr=seg.sample_rate,
            channels=chans,
            max_chunk_s=seg.max_chunk_s,
            max_jump_s=seg.max_jump_s,
            jump_s=jump_s,
            dropped_ms=(after["dropped_audio_s"] - before["dropped_audio_s"]) * 1e3,
            reorder_ms=(prev_end - stamp_s) * 1e3 if prev_end is not None else 0.0,
            outlier_ms=0.0,
        )
        outlier = seg.last_outlier if after["outlier_chunks"] > before["outlier_chunks"] else None
        if outlier is not None:
            info["outlier_ms"] = outlier[2].size / seg.sample_rate * 1e3
            head = seg.head_s  # the clock the stream kept (also when the outlier came first)
            info["jump_s"] = outlier[1] - (head if head is not None else outlier[1])
            where_o = (
                f"{outlier[0]} audio"
                + (f" seq {outlier[3]}" if outlier[3] is not None else "")
                + f" (stamp {outlier[1]:.3f} s)"
            )
        if after["clock_jumps"] > before["clock_jumps"] and held is not None:
            info["jump_s"] = held[1] - (newest if newest is not None else held[1])
        for key, text in _COUNTER_TEXT.items():
            delta = after[key] - before[key]
            if delta <= 0:
                continue
            if key == "reordered_chunks" and (
                after["duplicate_chunks"] > before["duplicate_chunks"]
                or after["late_chunks"] > before["late_chunks"]
            ):
                continue  # already said (duplicate or late)
            w = where_o if key == "outlier_chunks" and outlier is not None else where
            self._faults.append(Fault(key, f"{w}: " + text.format(delta=delta, **info)))
        torn = x.ndim == 1 and chans > 1 and x.size % chans > 0  # not whole frames: dropped
        if after["invalid_chunks"] > before["invalid_chunks"] and not any(
            after[k] > before[k]
            for k in (
                "empty_chunks",
                "oversize_chunks",
                "wrong_rate_chunks",
                "nonfinite_samples",
                "outlier_chunks",
                "clock_jumps",
            )
        ):
            if torn:
                text = (
                    f"{where}: chunk dropped: {x.size} interleaved samples are not a whole number "
                    f"of {chans}-channel frames (the publisher's channels field or buffer is wrong)"
                )
            else:
                text = (
                    f"{where}: chunk dropped ({x.size} samples, {chans} channels, {rate} Hz: "
                    "not usable audio)"
                )
            self._faults.append(Fault("invalid_chunks", text))

    def push_user_motion(self, stamp_s: float, frame_period_s: float, frames: np.ndarray) -> None:
        """Add the partner's tracked motion frames [N, 56]."""
        if self.config.use_user_motion:
            self.user_motion.push(stamp_s, frame_period_s, frames)

    def note_time(self, now_s: float) -> None:
        """The receiver's clock after it handled a chunk: :meth:`poll` counts the time since the
        newest audio from the later of its arrival and this (a slow policy step, or chunks queued
        behind it, must not make the next turn look overdue)."""
        if self._arrival is not None:
            self._arrival = (self._arrival[0], max(self._arrival[1], float(now_s)))

    def poll(self, now_s: float) -> list[TurnResult]:
        """Emit turns whose lateness deadline has passed at now_s (padded with silence).

        When :meth:`push_audio` was given the receiver's clock (``now_s``), ``now_s`` here is on
        that clock and only the time elapsed since the newest audio arrived counts (so stamps on
        another clock, e.g. a bag replayed without /clock, are never forced out early);
        otherwise ``now_s`` is on the stamps' clock."""
        if self._arrival is not None:
            newest, arrived = self._arrival
            now_s = newest + max(float(now_s) - arrived, 0.0)
        return [self._run(t) for t in self.segmenter.poll(now_s)]

    def flush(self) -> list[TurnResult]:
        """Emit every open turn (end of a recording)."""
        return [self._run(t) for t in self.segmenter.flush()]

    # ------------------------------------------------------------------ inside the turn
    def _open_turn(self, index: int, start_s: float) -> dict:
        if self._open is None or self._open["index"] != index:
            if self.policy.shown:  # ticks of a turn that was never emitted (cannot happen
                self.policy.reset()  # while turns are emitted in order): start clean
            self._open = {
                "index": index,
                "start_s": start_s,
                "ticks": 0,
                "frames": [],
                "latency_ms": 0.0,
                "error": None,
            }
        return self._open

    def _tick_open(self) -> None:
        """Run the due ticks of the turn in progress on the audio heard so far."""
        if not self.schedule.streaming:
            return
        part = self.segmenter.partial()
        if part is None:
            return
        ticks = self.schedule.ticks()
        st = self._open_turn(part.index, part.start_s)
        # A tick runs once both streams are heard up to its frame, and sees exactly that much of
        # each: what it makes does not depend on which stream's chunk came first (bag replay
        # over DDS = offline = StreamingPolicy.run_ticks).
        heard = min(part.user_heard, part.agent_heard)
        while (
            st["error"] is None and st["ticks"] < len(ticks) and ticks[st["ticks"]].heard <= heard
        ):
            tk = ticks[st["ticks"]]
            um = (
                self.user_motion.take(part.start_s, heard=tk.heard)
                if self.config.use_user_motion
                else None
            )
            self._tick(st, tk, part.user_audio, part.agent_audio, um)

    def _tick(self, st: dict, tk, user_audio, agent_audio, user_motion) -> None:
        F = self.policy.frames_per_turn
        history = int(getattr(self.policy, "history_turns", 0))
        t0 = time.perf_counter()
        try:
            motion = self.policy.tick(
                user_audio, agent_audio, (tk.heard, tk.heard), tk.frames, user_motion
            )
            self._check_finite(motion)
        except Exception as exc:  # noqa: BLE001 - a model fault skips the turn, the stream goes on
            st["error"] = self._policy_failed(exc, st["index"], st["start_s"], history, user_motion)
            return
        ms = (time.perf_counter() - t0) * 1e3
        st["ticks"] += 1
        st["frames"].append(motion)
        st["latency_ms"] = max(st["latency_ms"], ms)
        st["last_ms"] = ms
        self._blocks.append(
            MotionBlock(
                st["index"],
                tk.shown,
                motion,
                st["start_s"] + self.config.display_delay_s + tk.shown / FPS,
                ms,
                tk.shown + tk.frames == F,
            )
        )

    def _finish_streamed(self, turn: Turn, user_motion) -> tuple[np.ndarray | None, str | None]:
        """The completed turn: its remaining ticks on the whole audio, then its commit to the
        history. -> (the turn's motion [F, 56] or None, error)."""
        st = self._open_turn(turn.index, turn.start_s)
        for tk in self.schedule.ticks()[st["ticks"] :]:
            if st["error"] is not None:
                break
            self._tick(st, tk, turn.user_audio, turn.agent_audio, user_motion)
        self._open = None
        if st["error"] is not None:
            return None, st["error"]
        history = int(getattr(self.policy, "history_turns", 0))
        t0 = time.perf_counter()
        try:
            self.policy.end_turn(turn.user_audio, turn.agent_audio, user_motion)
        except Exception as exc:  # noqa: BLE001
            return None, self._policy_failed(exc, turn.index, turn.start_s, history, user_motion)
        commit_ms = (time.perf_counter() - t0) * 1e3
        # the commit runs right after the turn's last tick, before the next: they add up
        st["latency_ms"] = max(st["latency_ms"], st.get("last_ms", 0.0) + commit_ms)
        self._turn_latency_ms = st["latency_ms"]
        return np.concatenate(st["frames"], 0), None

    @staticmethod
    def _check_finite(motion) -> None:
        bad = int(np.size(motion) - np.isfinite(motion).sum())
        if bad:  # e.g. overflow in the weights: never pass NaN/Inf on, nor keep them in history
            raise FloatingPointError(
                f"the policy returned {bad} NaN/Inf values of {np.size(motion)}"
            )

    def _policy_failed(self, exc, index, start_s, history, user_motion) -> str:
        error = f"{type(exc).__name__}: {exc}"
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None:
            error += f" (at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno})"
        self.skipped_turns += 1
        self.counters["skipped_turns"] += 1
        self.policy.reset()
        self._faults.append(
            Fault(
                "skipped_turns",
                (
                    f"policy step failed on turn {index} (start {start_s:.2f} s, "
                    f"{history} history turns, user motion "
                    f"{'given' if user_motion is not None else 'absent'}, "
                    f"model {getattr(self.policy, 'model_id', '?')}): {error}; turn skipped, "
                    "history reset"
                ),
                level="error",
            )
        )
        return error

    def _run(self, turn: Turn) -> TurnResult:
        counters = turn.counters
        self.counters["turns"] += 1
        if counters.resyncs != self._resyncs:  # the clock jumped: history is not recent any more
            self._resyncs = counters.resyncs
            if not self.policy.shown:  # (a turn half shown ends on the history it began with)
                self.policy.reset()
                self._open = None
        if turn.user_padded_s or turn.agent_padded_s:
            self.counters["padded_turns"] += 1
            missing = " and ".join(
                f"{s:.2f} s of {name}"
                for name, s in (("user", turn.user_padded_s), ("agent", turn.agent_padded_s))
                if s
            )
            self._faults.append(
                Fault(
                    "padded_turns",
                    f"turn {turn.index}: {missing} audio missing "
                    f"(gap or stream stopped): padded with silence",
                    level="info",
                )
            )
        user_frac, agent_frac = self.vad(turn)
        user_sp, agent_sp = self.vad.speaking((user_frac, agent_frac))
        user_motion = self.user_motion.take(turn.start_s) if self.config.use_user_motion else None
        t0 = time.perf_counter()
        motion, error = None, None
        history = int(getattr(self.policy, "history_turns", 0))
        if self.schedule.streaming:
            motion, error = self._finish_streamed(turn, user_motion)
            latency_ms = self._turn_latency_ms if motion is not None else 0.0
        else:
            try:
                motion = self.policy.step(turn.user_audio, turn.agent_audio, user_motion)
                self._check_finite(motion)
            except Exception as exc:  # noqa: BLE001 - a model fault skips the turn, stream goes on
                motion = None
                error = self._policy_failed(exc, turn.index, turn.start_s, history, user_motion)
            latency_ms = (time.perf_counter() - t0) * 1e3
            if motion is not None:
                self._blocks.append(
                    MotionBlock(
                        turn.index,
                        0,
                        motion,
                        turn.start_s + self.config.display_delay_s,
                        latency_ms,
                        True,
                    )
                )
        if latency_ms > self.config.deadline_ms:
            self.counters["deadline_misses"] += 1
            self._faults.append(
                Fault(
                    "deadline_misses",
                    (
                        f"turn {turn.index}: policy step took {latency_ms:.0f} ms, over "
                        "deadline_ms = "
                        f"{self.config.deadline_ms:g} ms (the motion is late; the retargeter "
                        "eases to it)"
                    ),
                )
            )
        return TurnResult(
            turn=turn,
            motion=motion,
            display_stamp_s=turn.start_s + self.config.display_delay_s,
            user_voice_fraction=user_frac,
            agent_voice_fraction=agent_frac,
            user_speaking=user_sp,
            agent_speaking=agent_sp,
            history_turns=int(getattr(self.policy, "history_turns", 0))
            if motion is not None
            else 0,
            latency_ms=latency_ms,
            deadline_missed=latency_ms > self.config.deadline_ms,
            used_user_motion=user_motion is not None,
            counters=counters,
            skipped_turns=self.skipped_turns,
            error=error,
        )
