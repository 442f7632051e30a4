"""The conversation loop of the robot, without ROS: audio chunks in, one motion block per turn out.

:class:`ConversationPipeline` joins the pieces the ``conversation_policy`` node runs, so that
bag evaluation (offline) and the node (live) do exactly the same thing:

    chunks -> TurnSegmenter -> aligned turn -> voice activity + user motion for the turn
           -> StreamingPolicy.step -> TurnResult (motion [F, 56], display stamp, state)

Timing. A turn's motion can only be computed once the whole turn of audio is in (attention is
bidirectional inside a turn), so it is shown ``display_delay_s`` after the turn's start on the
audio clock: frame i of turn k is stamped ``turn_start + display_delay_s + i / fps``. With a live
partner the delay must cover the turn length plus the policy latency (default: 1 s turn + 0.25 s).
The robot's own speech is known before it is played: publish it on the agent topic stamped with
``playback_time - display_delay_s`` (or play it ``display_delay_s`` after the stamp it was
published with) and the mouth moves with the sound.

Faults. A policy step that raises is logged by the caller through :attr:`TurnResult.error`; the
turn is skipped (no motion) and the policy's history is reset so the stream recovers. A clock
jump that makes the segmenter resync also resets the history (the old turns are not this
conversation's recent past any more).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from timar_ros.motion import FPS, MOTION_DIM
from timar_ros.robot.segmenter import SegmenterCounters, Turn, TurnSegmenter
from timar_ros.robot.vad import TurnVoiceActivity


@dataclass
class TurnResult:
    """What one turn produced."""

    turn: Turn
    motion: np.ndarray | None  # [F, 56] float32 (exp | jaw | rotation); None if the step failed
    display_stamp_s: float  # when frame 0 is meant to be shown (clock of the audio stamps)
    user_voice_fraction: float
    agent_voice_fraction: float
    user_speaking: bool
    agent_speaking: bool
    history_turns: int
    latency_ms: float  # wall time of the policy step
    deadline_missed: bool  # latency_ms > deadline_ms
    used_user_motion: bool
    counters: SegmenterCounters
    skipped_turns: int  # total turns skipped (policy errors) so far
    error: str | None = None


class UserMotionBuffer:
    """Holds the partner's tracked motion frames by time, to cut them per turn.

    A turn gets the partner's motion only when at least ``min_coverage`` of its frames were
    tracked (the nearest tracked frame fills small holes); otherwise the policy sees no user motion
    for that turn (the null token, as in classifier-free guidance).
    """

    def __init__(self, frames_per_turn: int, fps: int = FPS, min_coverage: float = 0.8,
                 keep_s: float = 10.0):
        self.frames_per_turn = int(frames_per_turn)
        self.fps = int(fps)
        self.min_coverage = float(min_coverage)
        self.keep_s = float(keep_s)
        self._times = np.zeros(0)
        self._frames = np.zeros((0, MOTION_DIM), np.float32)

    def push(self, stamp_s: float, frame_period_s: float, frames: np.ndarray) -> None:
        """Add frames [N, 56]; frame i was captured at stamp_s + i * frame_period_s."""
        frames = np.asarray(frames, np.float32).reshape(-1, MOTION_DIM)
        ok = np.isfinite(frames).all(axis=1)
        times = stamp_s + frame_period_s * np.arange(len(frames))
        self._times = np.concatenate([self._times, times[ok]])
        self._frames = np.concatenate([self._frames, frames[ok]])
        order = np.argsort(self._times, kind="stable")
        self._times, self._frames = self._times[order], self._frames[order]

    def take(self, start_s: float) -> np.ndarray | None:
        """Motion [F, 56] for the turn starting at start_s, or None if too little was tracked."""
        half = 0.5 / self.fps
        want = start_s + np.arange(self.frames_per_turn) / self.fps
        keep = self._times >= start_s - self.keep_s
        self._times, self._frames = self._times[keep], self._frames[keep]
        if self._times.size == 0:
            return None
        idx = np.clip(np.searchsorted(self._times, want), 1, self._times.size - 1) if self._times.size > 1 \
            else np.zeros(len(want), int)
        if self._times.size > 1:
            left = idx - 1
            closer_left = np.abs(self._times[left] - want) <= np.abs(self._times[idx] - want)
            idx = np.where(closer_left, left, idx)
        covered = np.abs(self._times[idx] - want) <= half
        if covered.mean() < self.min_coverage:
            return None
        return self._frames[idx].copy()


@dataclass
class PipelineConfig:
    """Timing and fault handling of the loop (the node's parameters of the same names)."""

    display_delay_s: float = 1.25
    deadline_ms: float = 250.0
    speaking_threshold: float = 0.2
    vad_aggressiveness: int = 2
    use_user_motion: bool = True
    segmenter: dict = field(default_factory=dict)  # TurnSegmenter keyword arguments


class ConversationPipeline:
    """Segment two audio streams into turns and run the streaming policy on each.

    Args:
        policy: a :class:`timar_ros.runtime.StreamingPolicy` (any backend).
        config: timing and fault handling.
    """

    def __init__(self, policy, config: PipelineConfig | None = None):
        self.policy = policy
        self.config = config or PipelineConfig()
        self.segmenter = TurnSegmenter(frames_per_turn=policy.frames_per_turn, fps=FPS,
                                       **self.config.segmenter)
        if self.segmenter.samples_per_turn != policy.samples_per_turn:
            raise ValueError(
                f"segmenter turns have {self.segmenter.samples_per_turn} samples but the policy "
                f"expects {policy.samples_per_turn}"
            )
        self.vad = TurnVoiceActivity(threshold=self.config.speaking_threshold,
                                     sample_rate=self.segmenter.sample_rate,
                                     aggressiveness=self.config.vad_aggressiveness)
        self.user_motion = UserMotionBuffer(policy.frames_per_turn)
        self.skipped_turns = 0
        self._resyncs = 0

    def reset(self) -> None:
        """Start a new conversation: clock origin, open turns, counters and history."""
        self.segmenter.reset()
        self.policy.reset()
        self.user_motion = UserMotionBuffer(self.policy.frames_per_turn)
        self.skipped_turns = 0
        self._resyncs = 0

    def push_audio(self, stream: str, stamp_s: float, samples: np.ndarray, sample_rate: int,
                   channels: int = 1, seq: int | None = None) -> list[TurnResult]:
        """Add a chunk of "user" or "agent" audio (stamp of its first sample, seconds; seq = the
        publisher's chunk counter, which orders chunks whose stamps jitter)."""
        turns = self.segmenter.push(stream, stamp_s, samples, sample_rate, channels=channels, seq=seq)
        return [self._run(t) for t in turns]

    def push_user_motion(self, stamp_s: float, frame_period_s: float, frames: np.ndarray) -> None:
        """Add the partner's tracked motion frames [N, 56]."""
        if self.config.use_user_motion:
            self.user_motion.push(stamp_s, frame_period_s, frames)

    def poll(self, now_s: float) -> list[TurnResult]:
        """Emit turns whose lateness deadline has passed at now_s (padded with silence)."""
        return [self._run(t) for t in self.segmenter.poll(now_s)]

    def flush(self) -> list[TurnResult]:
        """Emit every open turn (end of a recording)."""
        return [self._run(t) for t in self.segmenter.flush()]

    def _run(self, turn: Turn) -> TurnResult:
        counters = turn.counters
        if counters.resyncs != self._resyncs:  # the clock jumped: history is not recent any more
            self._resyncs = counters.resyncs
            self.policy.reset()
        user_frac, agent_frac = self.vad(turn)
        user_sp, agent_sp = self.vad.speaking((user_frac, agent_frac))
        user_motion = self.user_motion.take(turn.start_s) if self.config.use_user_motion else None
        t0 = time.perf_counter()
        motion, error = None, None
        try:
            motion = self.policy.step(turn.user_audio, turn.agent_audio, user_motion)
        except Exception as exc:  # noqa: BLE001 - any model fault skips this turn, the stream goes on
            error = f"{type(exc).__name__}: {exc}"
            self.skipped_turns += 1
            self.policy.reset()
        latency_ms = (time.perf_counter() - t0) * 1e3
        return TurnResult(
            turn=turn, motion=motion, display_stamp_s=turn.start_s + self.config.display_delay_s,
            user_voice_fraction=user_frac, agent_voice_fraction=agent_frac,
            user_speaking=user_sp, agent_speaking=agent_sp,
            history_turns=int(getattr(self.policy, "history_turns", 0)),
            latency_ms=latency_ms, deadline_missed=latency_ms > self.config.deadline_ms,
            used_user_motion=user_motion is not None, counters=counters,
            skipped_turns=self.skipped_turns, error=error,
        )
