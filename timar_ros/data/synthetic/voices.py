"""Speech-like audio for the synthetic speakers: a procedural formant voice, and Debian flite TTS
voices when installed."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from timar_ros.data.synthetic.config import AudioConfig, TTSConfig, TurnTakingConfig, VoiceConfig
from timar_ros.data.synthetic.signals import uniform
from timar_ros.motion import SAMPLE_RATE

_VOWELS = np.array(
    [  # F1, F2, F3 (Hz): a, e, i, o, u
        [730, 1090, 2440],
        [530, 1840, 2480],
        [300, 2250, 3000],
        [570, 840, 2410],
        [320, 870, 2240],
    ],
    dtype=np.float64,
)


_NASAL = np.array([250, 1100, 2300], dtype=np.float64)


_BW = np.array([90.0, 110.0, 160.0])


def _resonator_sos(formants: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    sos = []
    for f, bw in zip(formants, _BW):
        r = np.exp(-np.pi * bw / sr)
        th = 2 * np.pi * min(f, 0.45 * sr) / sr
        sos.append([1.0 - r, 0.0, 0.0, 1.0, -2 * r * np.cos(th), r * r])
    return np.asarray(sos)


class ProceduralVoice:
    """A speech-like synthesiser for one speaker (see the module docstring)."""

    def __init__(self, voice: VoiceConfig, audio: AudioConfig, rng: np.random.Generator):
        self.v = voice
        self.a = audio
        self.f0 = voice.f0_hz * 2 ** (rng.uniform(-1, 1) * voice.f0_jitter_semitones / 12)
        self.rate = voice.syllable_rate_hz * rng.uniform(0.92, 1.08)
        self.vowel_sos = [_resonator_sos(f * voice.formant_scale) for f in _VOWELS]
        self.nasal_sos = _resonator_sos(_NASAL * voice.formant_scale)
        from scipy.signal import butter

        self.hp = butter(2, 2500, "highpass", fs=SAMPLE_RATE, output="sos")
        # Calibrate each resonator chain (with the lip radiation) to unit RMS on this voice's
        # source, so that loudness follows the syllable envelope and not the vowel.
        probe = self._voiced(np.full(SAMPLE_RATE // 4, self.f0), np.random.default_rng(0))
        self.vowel_gain = [
            1.0 / max(1e-9, float(np.std(self._radiate(_sosfilt(sos, probe)))))
            for sos in self.vowel_sos
        ]
        self.nasal_gain = 1.0 / max(1e-9, float(np.std(_sosfilt(self.nasal_sos, probe))))

    @staticmethod
    def _radiate(x: np.ndarray) -> np.ndarray:
        from scipy.signal import lfilter

        return lfilter([1.0, -0.9], [1.0], x)

    def _voiced(self, f0: np.ndarray, rng) -> np.ndarray:
        phase = np.cumsum(f0 / SAMPLE_RATE)
        src = 2.0 * (phase - np.floor(phase)) - 1.0
        return src + self.v.breathiness * rng.standard_normal(len(src))

    def phrase(self, dur_s: float, rng, question: bool = False) -> np.ndarray:
        from scipy.signal import sosfilt

        n = max(1, int(dur_s * SAMPLE_RATE))
        t = np.arange(n) / SAMPLE_RATE
        u = t / max(dur_s, 1e-3)
        # syllable boundaries
        bounds = [0]
        while bounds[-1] < n:
            d = rng.gamma(8.0, 1.0 / (8.0 * self.rate))
            bounds.append(bounds[-1] + max(int(0.08 * SAMPLE_RATE), int(d * SAMPLE_RATE)))
        bounds[-1] = n
        env = np.zeros(n)
        cons = np.zeros(n)
        vidx = np.zeros(n, dtype=np.int64)
        stress = np.zeros(n)
        for s0, s1 in zip(bounds[:-1], bounds[1:]):
            L = s1 - s0
            if L <= 8:
                continue
            amp = rng.uniform(0.45, 1.0)
            x = np.linspace(0, 1, L)
            env[s0:s1] = amp * np.sin(np.pi * x) ** 1.5
            vidx[s0:s1] = rng.integers(len(_VOWELS))
            stress[s0:s1] = amp
            if rng.random() < self.a.consonant_prob:
                c = min(L // 2, int(uniform(rng, self.a.consonant_s) * SAMPLE_RATE))
                if c > 4:
                    cons[s0 : s0 + c] = 0.5 * np.hanning(c)
                    env[s0 : s0 + c] *= np.linspace(0.1, 1.0, c)
        semis = self.v.pitch_range_semitones * (0.5 - u)  # declination
        semis += 1.2 * np.sin(2 * np.pi * (rng.uniform(0.3, 0.8) * t + rng.uniform()))
        semis += 1.5 * (stress - 0.7)
        if question:
            semis += 6.0 * np.clip((u - 0.8) / 0.2, 0, 1) ** 2
        f0 = self.f0 * 2 ** (semis / 12)
        src = self._voiced(f0, rng) * env
        out = np.zeros(n)
        for k, sos in enumerate(self.vowel_sos):
            m = vidx == k
            if m.any():
                out += np.where(m, sosfilt(sos, src) * self.vowel_gain[k], 0.0)
        noise = sosfilt(self.hp, rng.standard_normal(n))
        noise *= cons / max(1e-9, float(np.std(noise)))
        return self._radiate(out) + 0.5 * noise

    def backchannel(self, dur_s: float, rng) -> np.ndarray:
        """A nasal "mm-hm": two voiced bumps through a nasal resonance, the second one rising."""
        from scipy.signal import sosfilt

        n = max(1, int(dur_s * SAMPLE_RATE))
        u = np.arange(n) / n
        env = np.where(u < 0.45, np.sin(np.pi * u / 0.45) ** 2, 0.0)
        env += np.where(u > 0.55, np.sin(np.pi * np.clip((u - 0.55) / 0.45, 0, 1)) ** 2, 0.0)
        f0 = self.f0 * 2 ** ((np.where(u > 0.5, 3.0 * (u - 0.5), -1.0 * u)) / 12)
        return sosfilt(self.nasal_sos, self._voiced(f0, rng) * env) * (0.8 * self.nasal_gain)

    def turn(self, target_s: float, tt: TurnTakingConfig, rng) -> np.ndarray:
        parts = []
        left = target_s
        while left > 0.3:
            p = min(left, uniform(rng, tt.phrase_s))
            g = 10 ** (uniform(rng, self.a.phrase_gain_db) / 20)
            parts.append(g * self.phrase(p, rng, question=rng.random() < 0.15))
            left -= p
            if left > 0.6:
                pause = uniform(rng, tt.phrase_pause_s)
                parts.append(np.zeros(int(pause * SAMPLE_RATE)))
                left -= pause
        x = np.concatenate(parts) if parts else np.zeros(int(0.3 * SAMPLE_RATE))
        return _normalise(x, self.v.loudness)


def _sosfilt(sos, x):
    from scipy.signal import sosfilt

    return sosfilt(sos, x)


def _normalise(x: np.ndarray, peak: float) -> np.ndarray:
    m = float(np.max(np.abs(x))) if len(x) else 0.0
    return (x * (peak / m)).astype(np.float32) if m > 0 else x.astype(np.float32)


def flite_available() -> bool:
    """True when the ``flite`` executable is on PATH."""
    return shutil.which("flite") is not None


class FliteVoice:
    """TTS turns from a Debian flite voice (``flite -voice X -t TEXT -o f.wav``), cached."""

    def __init__(self, voice: VoiceConfig, tts: TTSConfig, rng: np.random.Generator):
        if not flite_available():
            raise RuntimeError("flite is not on PATH (Debian: apt-get install flite)")
        self.v = voice
        self.tts = tts
        self._cache: dict[tuple, np.ndarray] = {}

    def say(self, text: str) -> np.ndarray:
        key = (self.v.tts_voice, text, self.v.tts_f0_hz, self.v.tts_stretch)
        if key not in self._cache:
            self._cache[key] = flite_say(
                text, self.v.tts_voice, self.v.tts_f0_hz, self.v.tts_stretch
            )
        return self._cache[key]

    def turn(self, target_s: float, tt: TurnTakingConfig, rng) -> np.ndarray:
        parts, total = [], 0.0
        while total < target_s or not parts:
            if parts:
                pause = uniform(rng, tt.phrase_pause_s)
                parts.append(np.zeros(int(pause * SAMPLE_RATE), np.float32))
                total += pause
            x = self.say(str(rng.choice(self.tts.sentences)))
            parts.append(x)
            total += len(x) / SAMPLE_RATE
            if len(parts) >= 5:
                break
        return _normalise(np.concatenate(parts), self.v.loudness)

    def backchannel(self, dur_s: float, rng) -> np.ndarray:
        return _normalise(self.say(str(rng.choice(self.tts.backchannels))), 0.7 * self.v.loudness)


def flite_say(
    text: str, voice: str, f0_hz: float | None = None, stretch: float = 1.0, trim: bool = True
) -> np.ndarray:
    """Synthesise ``text`` with flite -> float32 mono 16 kHz (leading/trailing silence trimmed)."""
    from timar_ros.data.audio import load_wav

    if not flite_available():
        raise RuntimeError("flite is not on PATH (Debian: apt-get install flite)")
    with tempfile.TemporaryDirectory() as td:
        out = Path(td) / "tts.wav"
        cmd = ["flite", "-voice", voice, "-t", text, "-o", str(out)]
        if f0_hz:
            cmd += ["--setf", f"int_f0_target_mean={float(f0_hz):g}"]
        if stretch and stretch != 1.0:
            cmd += ["--setf", f"duration_stretch={float(stretch):g}"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if r.returncode != 0 or not out.exists():
            raise RuntimeError(f"flite failed ({r.returncode}): {r.stderr.strip()[:300]}")
        x = load_wav(out)
    if trim and len(x):
        a = np.abs(x)
        thr = 0.02 * float(a.max())
        idx = np.flatnonzero(a > thr)
        if len(idx):
            pad = int(0.02 * SAMPLE_RATE)
            x = x[max(0, idx[0] - pad) : idx[-1] + pad]
    return x.astype(np.float32)
