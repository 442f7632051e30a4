"""Signals for the echo canceller's tests: the demo conversation's voices and a room's echo."""

import numpy as np

from timar_ros.data.audio import load_wav
from timar_ros.resources import share_dir

RATE = 16000


def voices(seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """(robot, partner) [seconds * RATE] float32: the demo's voices without their silent
    samples, repeated; about -20 dBFS RMS, the level voice_player sends to the loudspeaker."""
    conv = share_dir() / "data" / "demo_conversation"
    n = int(seconds * RATE)
    voiced = lambda x: x[np.abs(x) > 1e-3]  # noqa: E731
    return (
        np.resize(voiced(load_wav(conv / "demo_speaker2.wav")), n).astype(np.float32),
        np.resize(voiced(load_wav(conv / "demo_speaker1.wav")), n).astype(np.float32),
    )


def room_echo(reference: np.ndarray, delay_s: float, gain: float, seed: int = 0) -> np.ndarray:
    """``reference`` through a room response starting ``delay_s`` after it (negative: before):
    the direct path (the loudspeaker a few cm away), then a decaying random tail; ``gain``: the
    echo's level against the reference."""
    rng = np.random.default_rng(seed)
    h = 0.3 * rng.standard_normal(2400) * np.exp(-np.arange(2400) / 400.0)
    h[0] = 1.0
    k = int(round(delay_s * RATE))
    h = np.concatenate([np.zeros(max(k, 0)), h / np.sqrt(np.sum(h * h))])
    y = gain * np.convolve(reference, h)[: len(reference)]
    return np.concatenate([y[-k:], np.zeros(-k)]) if k < 0 else y
