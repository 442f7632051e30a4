"""The per-turn token layout: the one definition used by the model, the masks, the runtime and
the ONNX export.

One turn of F motion frames (F = 25 is 1 s at 25 fps) is ``4F + 10`` tokens, in this order
(the reference implementation's order, positions for F = 25 in brackets)::

    <TURN>[0] <USER_SPEECH>[1] user speech x F [2..26] <USER_SPEECH/>[27]
    <USER_MOTION>[28] user motion x F [29..53] <USER_MOTION/>[54]
    <AGENT_SPEECH>[55] agent speech x F [56..80] <AGENT_SPEECH/>[81]
    <AGENT_MOTION>[82] agent motion x F [83..107] <AGENT_MOTION/>[108] <TURN/>[109]

The 10 delimiters are a learned embedding indexed by :data:`DELIMITERS` order. Turn ``t`` of a
sequence occupies token indices ``t * tokens_per_turn ... (t + 1) * tokens_per_turn - 1``.
This module imports only numpy so that the torch-free runtime can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..motion import SAMPLES_PER_FRAME

# Delimiter names, in embedding-index order (the reference spells the first and last "<TRUN>").
DELIMITERS = (
    "<TURN>",
    "<USER_SPEECH>",
    "<USER_SPEECH/>",
    "<USER_MOTION>",
    "<USER_MOTION/>",
    "<AGENT_SPEECH>",
    "<AGENT_SPEECH/>",
    "<AGENT_MOTION>",
    "<AGENT_MOTION/>",
    "<TURN/>",
)
NUM_DELIMITERS = len(DELIMITERS)

# Segments in layout order; each is wrapped by its open/close delimiter.
SEGMENTS = ("user_speech", "user_motion", "agent_speech", "agent_motion")

# Token kinds (the value of TurnLayout.kinds): 0 delimiter, then one per segment.
KIND_DELIMITER = 0
KIND = {name: i + 1 for i, name in enumerate(SEGMENTS)}


@dataclass(frozen=True)
class TurnLayout:
    """Token positions of one turn of ``frames_per_turn`` frames."""

    frames_per_turn: int = 25

    def __post_init__(self) -> None:
        if int(self.frames_per_turn) < 1:
            raise ValueError(f"frames_per_turn must be >= 1, got {self.frames_per_turn}")

    @property
    def F(self) -> int:  # noqa: N802 - the paper's symbol
        return self.frames_per_turn

    @property
    def tokens_per_turn(self) -> int:
        return 4 * self.frames_per_turn + NUM_DELIMITERS

    @property
    def samples_per_turn(self) -> int:
        """16 kHz audio samples per turn (640 per 25-fps frame)."""
        return self.frames_per_turn * SAMPLES_PER_FRAME

    def segment(self, name: str) -> slice:
        """Token slice (within a turn) of the F frame tokens of segment ``name``."""
        i = SEGMENTS.index(name)
        start = 2 + i * (self.frames_per_turn + 2)
        return slice(start, start + self.frames_per_turn)

    @cached_property
    def delimiter_positions(self) -> np.ndarray:
        """[10] token index (within a turn) of each delimiter, in :data:`DELIMITERS` order."""
        pos = [0]
        for name in SEGMENTS:
            s = self.segment(name)
            pos += [s.start - 1, s.stop]
        pos.append(self.tokens_per_turn - 1)
        return np.asarray(pos, dtype=np.int64)

    @cached_property
    def kinds(self) -> np.ndarray:
        """[tokens_per_turn] int: 0 for delimiters, KIND[segment] for frame tokens."""
        k = np.zeros(self.tokens_per_turn, dtype=np.int64)
        for name in SEGMENTS:
            k[self.segment(name)] = KIND[name]
        return k

    @cached_property
    def frame_of_token(self) -> np.ndarray:
        """[tokens_per_turn] int: the frame (0..F-1) of each frame token within its segment; -1
        for delimiters (what a turn in progress masks after its heard/shown frames)."""
        f = np.full(self.tokens_per_turn, -1, dtype=np.int64)
        for name in SEGMENTS:
            f[self.segment(name)] = np.arange(self.frames_per_turn)
        return f

    @cached_property
    def user_mask(self) -> np.ndarray:
        """[tokens_per_turn] bool: user speech and user motion frame tokens (the CFG condition)."""
        return (self.kinds == KIND["user_speech"]) | (self.kinds == KIND["user_motion"])

    @cached_property
    def agent_motion_mask(self) -> np.ndarray:
        """[tokens_per_turn] bool: the agent-motion frame tokens (the targets)."""
        return self.kinds == KIND["agent_motion"]

    @cached_property
    def encoder_positions(self) -> np.ndarray:
        """Token indices kept by the MAE-style encoder at inference (all but agent motion)."""
        return np.nonzero(~self.agent_motion_mask)[0]

    def turn_ids(self, n_turns: int, first_turn: int = 0) -> np.ndarray:
        """[n_turns * tokens_per_turn] turn index of every token of ``n_turns`` turns."""
        return np.repeat(np.arange(first_turn, first_turn + n_turns), self.tokens_per_turn)

    def band_mask(self, n_turns: int, window_turns: int) -> np.ndarray:
        """[L, L] bool, True where query token q may attend key token k (turn-level causal band):
        turn(q) - window_turns < turn(k) <= turn(q). Bidirectional inside a turn."""
        t = self.turn_ids(n_turns)
        dq, dk = t[:, None], t[None, :]
        return (dk <= dq) & (dk > dq - window_turns)
