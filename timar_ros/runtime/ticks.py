"""Streaming inside the turn: when a policy runs, what it has heard, and when its frames are shown.

The 1-s mode computes a whole turn once its last sample is heard, so a frame is shown
``1 s + margin`` after the sound it belongs with. A :class:`TickSchedule` runs the turn in
progress again every ``tick_frames`` frames instead: tick k of a turn emits frames
``[k b, k b + b)`` (b = ``tick_frames``), once the partner's audio is heard up to frame
``k b + b + lookahead_frames`` of the turn; frames already shown are the tick's visible prefix,
what has not been heard is masked (:meth:`timar_ros.model.timar.TIMAR.tick_tokens`). The
completed turn enters the history exactly as in the 1-s mode.

Display delay (display time - audio time of a frame): a tick's first frame is due when the tick
can run, ``(b + lookahead) / 25`` s after its audio time, plus ``margin_s`` for the audio chunk
that completes the tick to arrive and for the compute: ``display_delay_s``. The robot's voice is
held back by the same amount, so its mouth moves with its sound (one setting, not two). The 1-s
mode is the schedule with ``tick_frames = frames_per_turn``.

numpy only (the torch-free runtime uses it).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..motion import FPS

# Today's measured budget between a tick's last audio sample and its first frame being due: up
# to one 50-ms audio chunk until the sample arrives, the tick's compute (p99 < 40 ms for the
# bundled model) and the retargeter's interpolation. See docs/performance.md.
DEFAULT_MARGIN_S = 0.1


@dataclass(frozen=True)
class Tick:
    """One tick of a turn: emit frames ``shown .. shown + frames - 1`` having heard the
    partner's first ``heard`` frames of the turn."""

    shown: int
    frames: int
    heard: int


@dataclass(frozen=True)
class TickSchedule:
    frames_per_turn: int = 25
    tick_frames: int = 25
    lookahead_frames: int = 0

    def __post_init__(self) -> None:
        F = int(self.frames_per_turn)
        if not 1 <= int(self.tick_frames) <= F:
            raise ValueError(
                f"tick of {self.tick_frames} frames: it must be 1..{F} frames "
                f"(1/{FPS} s to one turn)"
            )
        if int(self.lookahead_frames) < 0:
            raise ValueError(f"lookahead of {self.lookahead_frames} frames: must be >= 0")

    @classmethod
    def from_seconds(
        cls, frames_per_turn: int, tick_s: float, lookahead_s: float = 0.0
    ) -> TickSchedule:
        """tick_s, lookahead_s in seconds, each a whole number of 1/25-s frames (0.04, 0.08,
        0.12, ...); ValueError naming the nearest valid values otherwise."""
        return cls(
            int(frames_per_turn),
            _frames("tick_s", tick_s, minimum=1),
            _frames("lookahead_s", lookahead_s, minimum=0),
        )

    @property
    def streaming(self) -> bool:
        """True when the turn is emitted in more than one block."""
        return self.tick_frames < self.frames_per_turn

    @property
    def tick_s(self) -> float:
        return self.tick_frames / FPS

    @property
    def lookahead_s(self) -> float:
        return self.lookahead_frames / FPS

    def ticks(self) -> list[Tick]:
        """The ticks of one turn, in order; their blocks tile the turn."""
        F, b = self.frames_per_turn, self.tick_frames
        return [
            Tick(s, min(b, F - s), min(F, s + min(b, F - s) + self.lookahead_frames))
            for s in range(0, F, b)
        ]

    def display_delay_s(self, margin_s: float = DEFAULT_MARGIN_S) -> float:
        """Seconds from a frame's audio time to its display time (and the voice's hold-back)."""
        if not margin_s >= 0:
            raise ValueError(f"latency margin must be >= 0 s, got {margin_s}")
        return (self.tick_frames + self.lookahead_frames) / FPS + float(margin_s)


def _frames(name: str, seconds: float, minimum: int) -> int:
    n = round(float(seconds) * FPS)
    if abs(n / FPS - float(seconds)) > 1e-6 or n < minimum:
        lo = max(minimum, int(float(seconds) * FPS))
        raise ValueError(
            f"{name}={seconds}: must be a whole number of {1000 // FPS}-ms motion frames "
            f"(>= {minimum / FPS:g} s), e.g. {lo / FPS:g} or {(lo + 1) / FPS:g}"
        )
    return n
