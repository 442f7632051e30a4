"""Voice activity per stream: the fraction of a turn that holds speech (no ROS).

Backend ``"webrtc"`` uses webrtcvad (PyPI ``webrtcvad-wheels``) on 16-bit PCM frames of 10, 20 or
30 ms at 8/16/32/48 kHz. Backend ``"energy"`` is a fallback used when webrtcvad is not importable:
a frame is voiced when its RMS level is above ``energy_threshold_dbfs``. ``"auto"`` picks webrtc
when available.

One :class:`VoiceActivity` per stream: webrtcvad adapts to the stream's noise floor over time.
"""

from __future__ import annotations

import numpy as np

try:  # pragma: no cover - depends on the install
    import webrtcvad as _webrtcvad
except ImportError:  # pragma: no cover
    _webrtcvad = None

WEBRTC_AVAILABLE = _webrtcvad is not None
WEBRTC_RATES = (8000, 16000, 32000, 48000)


class VoiceActivity:
    """Voiced fraction of audio blocks.

    Args:
        sample_rate: Hz of the audio given to :meth:`voiced_fraction`.
        frame_ms: analysis frame, 10, 20 or 30 ms.
        aggressiveness: webrtcvad mode 0 (least) .. 3 (most aggressive at rejecting non-speech).
        backend: "auto", "webrtc" or "energy".
        energy_threshold_dbfs: energy backend threshold (RMS re full scale 1.0).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        frame_ms: int = 30,
        aggressiveness: int = 2,
        backend: str = "auto",
        energy_threshold_dbfs: float = -40.0,
    ):
        if frame_ms not in (10, 20, 30):
            raise ValueError(f"frame_ms must be 10, 20 or 30, got {frame_ms}")
        if not 0 <= int(aggressiveness) <= 3:
            raise ValueError(f"aggressiveness must be 0..3, got {aggressiveness}")
        if backend not in ("auto", "webrtc", "energy"):
            raise ValueError(f"backend must be 'auto', 'webrtc' or 'energy', got {backend!r}")
        if backend == "auto":
            backend = "webrtc" if WEBRTC_AVAILABLE and sample_rate in WEBRTC_RATES else "energy"
        if backend == "webrtc":
            if not WEBRTC_AVAILABLE:
                raise ImportError("webrtcvad is not installed: pip install webrtcvad-wheels")
            if sample_rate not in WEBRTC_RATES:
                raise ValueError(f"webrtcvad needs a rate in {WEBRTC_RATES}, got {sample_rate}")
            self._vad = _webrtcvad.Vad(int(aggressiveness))
        else:
            self._vad = None
        self.backend = backend
        self.sample_rate = int(sample_rate)
        self.frame_ms = int(frame_ms)
        self.frame_len = self.sample_rate * self.frame_ms // 1000
        self.aggressiveness = int(aggressiveness)
        self.energy_threshold_dbfs = float(energy_threshold_dbfs)

    def frames(self, audio: np.ndarray) -> np.ndarray:
        """Per-frame decisions (bool [n_frames]); a trailing partial frame is ignored."""
        x = np.nan_to_num(
            np.asarray(audio, dtype=np.float32).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0
        )
        n = x.size // self.frame_len
        if n == 0:
            return np.zeros(0, dtype=bool)
        x = x[: n * self.frame_len].reshape(n, self.frame_len)
        if self._vad is None:
            rms = np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=1))
            return 20.0 * np.log10(np.maximum(rms, 1e-10)) > self.energy_threshold_dbfs
        pcm = (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2")
        return np.array(
            [self._vad.is_speech(f.tobytes(), self.sample_rate) for f in pcm], dtype=bool
        )

    def voiced_fraction(self, audio: np.ndarray) -> float:
        """Fraction (0..1) of the block's whole frames that hold speech (0.0 below one frame)."""
        f = self.frames(audio)
        return float(f.mean()) if f.size else 0.0


class TurnVoiceActivity:
    """One detector per stream: ``(user_fraction, agent_fraction) = tva(turn)``."""

    def __init__(self, threshold: float = 0.2, **kwargs):
        self.threshold = float(threshold)
        self.user = VoiceActivity(**kwargs)
        self.agent = VoiceActivity(**kwargs)

    def __call__(self, turn) -> tuple[float, float]:
        return self.user.voiced_fraction(turn.user_audio), self.agent.voiced_fraction(
            turn.agent_audio
        )

    def speaking(self, fractions: tuple[float, float]) -> tuple[bool, bool]:
        """Who is speaking: voiced fraction >= threshold, per stream."""
        return fractions[0] >= self.threshold, fractions[1] >= self.threshold
