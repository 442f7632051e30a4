"""Waveform normalisation before the speech encoder, one :class:`AudioNormalizer` per stream
(the user's and the agent's audio are normalised apart, as the reference normalises each file).
Imports only numpy, so both backends share it.

Modes (``TIMARConfig.audio_norm``, or the policy's ``audio_norm`` option):

* ``none``: the samples as given (bit-exact comparisons with another implementation).
* ``chunk``: each turn's chunk to zero mean and unit variance on its own.
* ``running``: with the mean and variance of everything this stream has heard so far, the
  current chunk included (causal: a turn never depends on later audio). They converge to the
  whole file's as the conversation goes on; the first turn is normalised as ``chunk``.
* ``file``: with the whole file's mean and variance, as the reference's ``Wav2Vec2Processor``
  does before chunking. Offline only: the statistics must be known before the first turn
  (:meth:`AudioNormalizer.fit`, done by ``run_offline`` from the conversation it is given).

All modes use the processor's formula ``(x - mean) / sqrt(var + 1e-7)``.
"""

from __future__ import annotations

import numpy as np

from ..model.config import AUDIO_NORMS  # torch-free

EPS = 1e-7  # transformers' Wav2Vec2FeatureExtractor zero_mean_unit_var_norm


class AudioNormalizer:
    """Normalises the chunks of one audio stream, in order. State: the running moments."""

    def __init__(self, mode: str):
        if mode not in AUDIO_NORMS:
            raise ValueError(f"audio_norm must be one of {AUDIO_NORMS}, got {mode!r}")
        self.mode = mode
        self.reset()

    def reset(self) -> None:
        """Forget the running moments and any fitted file statistics."""
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0  # sum of squared deviations from the mean (Chan et al.), float64
        self.file_stats: tuple[float, float] | None = None

    def fit(self, audio) -> None:
        """Whole-file statistics for mode ``file``: ``audio`` [samples] float, the entire file."""
        a = np.asarray(audio, dtype=np.float64).reshape(-1)
        if a.size == 0:
            raise ValueError("audio_norm='file': the file is empty")
        self.file_stats = (float(a.mean()), float(a.var()))

    def state(self):
        return (self.count, self.mean, self.m2, self.file_stats)

    def load_state(self, state) -> None:
        self.count, self.mean, self.m2, self.file_stats = state

    def _update(self, chunk: np.ndarray) -> None:
        n = chunk.size
        if n == 0:
            return
        c = chunk.astype(np.float64)
        mean_c = float(c.mean())
        m2_c = float(((c - mean_c) ** 2).sum())
        total = self.count + n
        delta = mean_c - self.mean
        self.mean += delta * n / total
        self.m2 += m2_c + delta * delta * self.count * n / total
        self.count = total

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        """chunk [samples] float32 (one turn, in stream order) -> normalised float32."""
        if self.mode == "none":
            return chunk
        if self.mode == "chunk":
            c = chunk.astype(np.float64)
            mean, var = float(c.mean()), float(c.var())
        elif self.mode == "running":
            self._update(chunk)
            mean, var = self.mean, self.m2 / max(self.count, 1)
        else:
            if self.file_stats is None:
                raise ValueError(
                    "audio_norm='file' needs the whole file's statistics before the first turn: "
                    "run the conversation offline (run_offline, timar evaluate), or use "
                    "audio_norm='running' for live audio"
                )
            mean, var = self.file_stats
        return ((chunk.astype(np.float64) - mean) / np.sqrt(var + EPS)).astype(np.float32)

    def peek(self, heard: np.ndarray) -> np.ndarray:
        """The heard part [samples] of a turn in progress, normalised as :meth:`__call__` would
        with the statistics so far, which it leaves as they were (the whole turn advances them
        when it completes)."""
        saved = self.state()
        try:
            return self(heard)
        finally:
            self.load_state(saved)

    def conversation(self, audio: np.ndarray, samples_per_turn: int) -> np.ndarray:
        """A whole stream [N * samples_per_turn] -> normalised, chunk by chunk, as a fresh stream
        would see it (``file``: fitted on ``audio`` itself). Leaves this normaliser's state as
        it was."""
        saved = self.state()
        try:
            self.reset()
            if self.mode == "file":
                self.fit(audio)
            spt = int(samples_per_turn)
            return np.concatenate(
                [self(audio[i : i + spt]) for i in range(0, len(audio), spt)] or [audio[:0]]
            ).astype(np.float32)
        finally:
            self.load_state(saved)
