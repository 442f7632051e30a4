"""Synthetic two-person conversations with rule-generated FLAME-layout head motion.

**This is a test bench, not a claim about humans.** The rules below are simple, known and
parametric so that a model trained on the output can be checked against them (does the jaw
follow the speech? does the listener react after the partner pauses? does it use history?).
Magnitudes are kept in plausible FLAME ranges (radians: nods 0.05-0.15, jaw opening 0..0.3;
expression coefficients within about +-2), but no parameter is fitted to human data, and the
expression indices used for "mouth", "smile" and "blink" are conventions of this bench, not
statements about FLAME's basis.

Pipeline (all parameters in :class:`SyntheticConfig`, loadable from YAML):

1. **Timeline** (:func:`plan_conversation`): the floor alternates between two speakers (with a
   small chance of keeping it); a turn is 1..n phrases separated by short pauses; the gap
   between turns is Gaussian, or negative (an overlap) with ``overlap_prob``; the listener puts
   short backchannels ("mm-hm") into the speaker's phrase pauses with a probability that grows
   with engagement.
2. **Audio**: a procedural speech-like synthesiser (:class:`ProceduralVoice`): a sawtooth glottal
   source on a pitch contour (declination, slow drift, stress), vowel formants (three resonators,
   per-syllable vowel), a syllable envelope at ``syllable_rate_hz`` (~4-5 Hz), noise bursts for
   consonant onsets, a low noise floor. Speakers differ in pitch, rate and vocal-tract scale.
   Optionally real TTS from Debian ``flite`` voices (:class:`FliteVoice`), when on PATH.
3. **Motion** (:func:`render_motion`), from the two audio tracks only (so TTS and procedural audio
   get the same rules), at 25 fps:

   - speech envelope: frame RMS in dB mapped to [0, 1] (``range_db`` below the track's 95th
     percentile is 0), smoothed;
   - speaker: jaw opening = ``jaw_max_rad * env(t - lag)^jaw_gamma``; mouth expression
     coefficients ``exp[i] += mouth_exp[i] * env(t - lag)``; a small head pitch bob with the
     envelope;
   - listener: the partner's voice activity is found from its envelope; a *pause* is a silence
     of at least ``min_pause_s`` after at least ``min_speech_s`` of speech. At each pause, if the
     listener is not itself holding the floor, it reacts with probability
     ``react_prob * g(e)`` after a lag ~ N(``lag_mean_s``, ``lag_std_s``): a **nod** (pitch) or
     a **tilt** (roll, random side): a stochastic, multi-modal choice with ``choice_weights``;
     amplitude ~ U(range) * g(e);
   - engagement ``e`` of each listener starts in ``engagement_init`` and after each completed
     partner turn (a pause >= ``turn_end_s``) moves ``e += engagement_rate * (1 - e)``;
     ``g(e) = engagement_floor + (1 - engagement_floor) * e``; while listening, a smile-ish
     coefficient ``exp[smile_index] += smile_gain * e``. History therefore matters: the size
     and rate of reactions depend on how many turns have passed;
   - idle: Ornstein-Uhlenbeck head rotation and expression noise, a per-speaker expression
     offset, blink-ish bumps on ``exp[blink_index]`` at ``blink_rate_hz``.

It writes the DualTalk layout (:func:`write_conversation`, :func:`generate_dataset`).
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from timar_ros.motion import EXP_DIM, FPS, MOTION_DIM, SAMPLE_RATE, SAMPLES_PER_FRAME

__all__ = [
    "VoiceConfig", "TurnTakingConfig", "AudioConfig", "MotionConfig", "ReactionConfig",
    "TTSConfig", "SyntheticConfig", "Conversation", "ProceduralVoice", "FliteVoice",
    "flite_available", "speech_envelope", "voice_activity", "find_pauses", "render_motion",
    "plan_conversation", "generate_conversation", "write_conversation", "generate_dataset",
    "engagement_after",
]

JAW_OPEN = 50  # model-vector index of the jaw opening (jaw axis-angle x)
ROT_PITCH, ROT_YAW, ROT_ROLL = 53, 54, 55


# ----------------------------------------------------------------------------- config
@dataclass
class VoiceConfig:
    name: str = "low"
    f0_hz: float = 115.0                # mean pitch
    f0_jitter_semitones: float = 1.0    # per-conversation random shift (+-)
    pitch_range_semitones: float = 4.0  # intonation excursion within a phrase
    syllable_rate_hz: float = 4.5
    formant_scale: float = 1.0          # vocal-tract scale (female ~1.15)
    breathiness: float = 0.04
    loudness: float = 0.35              # peak level of a turn
    tts_voice: str = "rms"              # flite voice used when TTS is on
    tts_f0_hz: float | None = None      # flite int_f0_target_mean (None: the voice's own)
    tts_stretch: float = 1.0            # flite duration_stretch


@dataclass
class TurnTakingConfig:
    duration_s: tuple[float, float] = (20.0, 30.0)
    lead_in_s: tuple[float, float] = (0.2, 1.0)
    turn_s: tuple[float, float] = (1.5, 6.0)
    phrase_s: tuple[float, float] = (0.8, 2.4)
    phrase_pause_s: tuple[float, float] = (0.3, 0.6)
    gap_mean_s: float = 0.35
    gap_std_s: float = 0.2
    keep_floor_prob: float = 0.1        # the same speaker takes the next turn
    overlap_prob: float = 0.15
    overlap_s: tuple[float, float] = (0.2, 0.7)
    backchannel_prob: float = 0.5       # per speaker phrase pause, times g(e)
    backchannel_s: tuple[float, float] = (0.3, 0.55)
    backchannel_lag_s: tuple[float, float] = (0.1, 0.3)


@dataclass
class AudioConfig:
    noise_floor: float = 3e-4           # std of the background noise on every track
    consonant_prob: float = 0.55        # a syllable starts with a noise burst
    consonant_s: tuple[float, float] = (0.03, 0.08)
    phrase_gain_db: tuple[float, float] = (-4.0, 0.0)


@dataclass
class MotionConfig:
    range_db: float = 30.0              # envelope: 0 at (95th pct - range_db), 1 at 95th pct
    smooth_s: float = 0.06
    lag_s: float = 0.04                 # motion follows the own envelope by this lag
    jaw_max_rad: float = 0.25
    jaw_gamma: float = 0.8
    mouth_exp: dict = field(default_factory=lambda: {0: 1.4, 2: -0.7, 4: 0.5, 7: 0.35})
    speak_pitch_gain_rad: float = 0.025
    speak_yaw_std_rad: float = 0.03
    idle_rot_std_rad: tuple[float, float, float] = (0.012, 0.02, 0.008)
    idle_tau_s: float = 1.2
    idle_exp_std: float = 0.12
    identity_exp_std: float = 0.25
    idle_jaw_std_rad: float = 0.004
    blink_rate_hz: float = 0.3
    blink_index: int = 9
    blink_amp: float = 0.9
    blink_s: float = 0.2


@dataclass
class ReactionConfig:
    vad_threshold: float = 0.3          # on the [0,1] envelope
    fill_gap_s: float = 0.2             # syllable gaps shorter than this are speech
    min_speech_s: float = 0.7
    min_pause_s: float = 0.28
    turn_end_s: float = 0.6
    lag_mean_s: float = 0.3
    lag_std_s: float = 0.08
    react_prob: float = 0.85
    choice_weights: dict = field(default_factory=lambda: {"nod": 0.6, "tilt": 0.4})
    nod_amp_rad: tuple[float, float] = (0.07, 0.15)
    nod_s: tuple[float, float] = (0.5, 0.9)
    nod_cycles: tuple[int, int] = (1, 2)
    tilt_amp_rad: tuple[float, float] = (0.07, 0.12)
    tilt_s: tuple[float, float] = (0.8, 1.4)
    engagement_init: tuple[float, float] = (0.05, 0.3)
    engagement_rate: float = 0.25
    engagement_floor: float = 0.5
    smile_index: int = 1
    smile_gain: float = 0.8


@dataclass
class TTSConfig:
    mode: str = "off"                   # off | auto (when flite is on PATH) | on (required)
    prob: float = 0.5                   # fraction of conversations voiced by TTS
    sentences: list = field(default_factory=lambda: list(_SENTENCES))
    backchannels: list = field(default_factory=lambda: ["mm-hm", "yeah", "right", "okay",
                                                        "uh-huh", "I see"])


@dataclass
class SyntheticConfig:
    """Every rule and parameter of the generator (see the module docstring)."""

    name: str = "synthetic"
    voices: list = field(default_factory=lambda: [
        VoiceConfig("low", 110.0, syllable_rate_hz=4.3, formant_scale=1.0, tts_voice="rms"),
        VoiceConfig("high", 195.0, syllable_rate_hz=4.8, formant_scale=1.15, tts_voice="slt"),
    ])
    turns: TurnTakingConfig = field(default_factory=TurnTakingConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    reactions: ReactionConfig = field(default_factory=ReactionConfig)
    tts: TTSConfig = field(default_factory=TTSConfig)

    @classmethod
    def from_dict(cls, d: dict | None) -> "SyntheticConfig":
        return _build(cls, d or {})

    @classmethod
    def from_yaml(cls, path: str | Path) -> "SyntheticConfig":
        import yaml

        with open(path, encoding="utf-8") as f:
            return cls.from_dict(yaml.safe_load(f) or {})

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _build(cls, d: dict):
    if not isinstance(d, dict):
        raise TypeError(f"{cls.__name__}: expected a mapping, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(fields)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
    defaults = cls()
    kw = {}
    for name, value in d.items():
        cur = getattr(defaults, name)
        if dataclasses.is_dataclass(cur):
            kw[name] = _build(type(cur), value)
        elif name == "voices":
            kw[name] = [_build(VoiceConfig, v) for v in value]
        elif isinstance(cur, tuple):
            kw[name] = tuple(value)
        elif isinstance(cur, dict) and name == "mouth_exp":
            kw[name] = {int(k): float(v) for k, v in value.items()}
        else:
            kw[name] = value
    return cls(**kw)


_SENTENCES = [
    "So how was your weekend?", "It was great, we went hiking by the lake.",
    "I have been meaning to ask you about that.", "Really? Tell me more.",
    "I think the second option is better.", "That makes a lot of sense to me.",
    "We could try it again tomorrow morning.", "Honestly, I am not so sure about that.",
    "The weather has been lovely lately.", "Did you see the news this morning?",
    "Let me think about it for a second.", "Well, it depends on the budget.",
    "My sister just moved to a new city.", "That sounds like a lot of fun.",
    "I would love to hear what you think.", "We should probably leave a bit earlier.",
    "Could you explain that part again?", "Oh, I did not know that at all.",
]


# ----------------------------------------------------------------------------- helpers
def _u(rng, lo_hi) -> float:
    lo, hi = lo_hi
    return float(rng.uniform(lo, hi))


def _ou(rng, n: int, std, tau_s: float, fps: float = FPS, dims: int = 1) -> np.ndarray:
    """Stationary Ornstein-Uhlenbeck noise [n, dims] with the given std per dim."""
    from scipy.signal import lfilter

    a = float(np.exp(-1.0 / (tau_s * fps)))
    std = np.broadcast_to(np.asarray(std, dtype=np.float64), (dims,))
    w = rng.standard_normal((n, dims))
    x = lfilter([np.sqrt(1 - a * a)], [1.0, -a], w, axis=0)
    # start in the stationary distribution: add a decaying initial state
    x0 = rng.standard_normal(dims)
    x += np.outer(a ** np.arange(1, n + 1), x0)
    return (x * std).astype(np.float64)


def engagement_after(n_turns: int, e0: float, rate: float) -> float:
    """Engagement after ``n_turns`` completed partner turns: ``1 - (1-e0)(1-rate)^n``."""
    return float(1.0 - (1.0 - e0) * (1.0 - rate) ** max(0, n_turns))


def _gain(e: float, floor: float) -> float:
    return floor + (1.0 - floor) * e


# ----------------------------------------------------------------------------- audio
_VOWELS = np.array([  # F1, F2, F3 (Hz): a, e, i, o, u
    [730, 1090, 2440], [530, 1840, 2480], [300, 2250, 3000], [570, 840, 2410], [320, 870, 2240],
], dtype=np.float64)
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
        self.vowel_gain = [1.0 / max(1e-9, float(np.std(self._radiate(_sosfilt(sos, probe)))))
                           for sos in self.vowel_sos]
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
                c = min(L // 2, int(_u(rng, self.a.consonant_s) * SAMPLE_RATE))
                if c > 4:
                    cons[s0 : s0 + c] = 0.5 * np.hanning(c)
                    env[s0 : s0 + c] *= np.linspace(0.1, 1.0, c)
        semis = self.v.pitch_range_semitones * (0.5 - u)          # declination
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
            p = min(left, _u(rng, tt.phrase_s))
            g = 10 ** (_u(rng, self.a.phrase_gain_db) / 20)
            parts.append(g * self.phrase(p, rng, question=rng.random() < 0.15))
            left -= p
            if left > 0.6:
                pause = _u(rng, tt.phrase_pause_s)
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
            self._cache[key] = flite_say(text, self.v.tts_voice, self.v.tts_f0_hz,
                                         self.v.tts_stretch)
        return self._cache[key]

    def turn(self, target_s: float, tt: TurnTakingConfig, rng) -> np.ndarray:
        parts, total = [], 0.0
        while total < target_s or not parts:
            if parts:
                pause = _u(rng, tt.phrase_pause_s)
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


def flite_say(text: str, voice: str, f0_hz: float | None = None, stretch: float = 1.0,
              trim: bool = True) -> np.ndarray:
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


# ----------------------------------------------------------------------------- timeline
@dataclass
class Segment:
    speaker: int
    start: float   # seconds
    end: float
    kind: str      # "turn" | "backchannel"


def _frame_rms(x: np.ndarray, n_frames: int) -> np.ndarray:
    x = np.asarray(x, np.float64)
    need = n_frames * SAMPLES_PER_FRAME
    if len(x) < need:
        x = np.pad(x, (0, need - len(x)))
    return np.sqrt(np.mean(x[:need].reshape(n_frames, SAMPLES_PER_FRAME) ** 2, axis=1) + 1e-12)


def find_pauses(x: np.ndarray, min_pause_s: float, thr_rel: float = 0.05) -> list[tuple[float, float]]:
    """Internal silences (start_s, end_s) of at least ``min_pause_s`` in a single utterance."""
    n = len(x) // SAMPLES_PER_FRAME
    if n < 3:
        return []
    rms = _frame_rms(x, n)
    act = rms > thr_rel * float(np.percentile(rms, 95))
    runs = _runs(~act)
    mp = int(round(min_pause_s * FPS))
    return [(s / FPS, e / FPS) for s, e in runs if e - s >= mp and s > 0 and e < n]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of the True runs of a boolean array."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def plan_conversation(cfg: SyntheticConfig, sources, rng, duration_s: float | None = None):
    """Place turns and backchannels of two sources on a timeline.

    Returns ``(tracks [2][N] float32, segments list[Segment], duration_s)``.
    """
    tt, rc = cfg.turns, cfg.reactions
    dur = duration_s if duration_s is not None else _u(rng, tt.duration_s)
    n = int(round(dur * FPS)) * SAMPLES_PER_FRAME
    tracks = [np.zeros(n, np.float32), np.zeros(n, np.float32)]
    segs: list[Segment] = []
    e0 = [_u(rng, rc.engagement_init) for _ in range(2)]
    heard = [0, 0]
    t = _u(rng, tt.lead_in_s)
    cur = int(rng.integers(2))

    def place(spk, x, start_s, kind):
        s0 = int(start_s * SAMPLE_RATE)
        if s0 >= n:
            return
        seg = x[: n - s0]
        tracks[spk][s0 : s0 + len(seg)] += seg
        segs.append(Segment(spk, start_s, start_s + len(seg) / SAMPLE_RATE, kind))

    while t < dur - 0.5:
        x = sources[cur].turn(_u(rng, tt.turn_s), tt, rng)
        place(cur, x, t, "turn")
        other = 1 - cur
        g = _gain(engagement_after(heard[other], e0[other], rc.engagement_rate),
                  rc.engagement_floor)
        for ps, pe in find_pauses(x, 0.25):
            if rng.random() < tt.backchannel_prob * g:
                bc = sources[other].backchannel(_u(rng, tt.backchannel_s), rng)
                place(other, bc, t + ps + _u(rng, tt.backchannel_lag_s), "backchannel")
        end = t + len(x) / SAMPLE_RATE
        heard[other] += 1
        if rng.random() >= tt.keep_floor_prob:
            cur = other
            if rng.random() < tt.overlap_prob:
                gap = -min(_u(rng, tt.overlap_s), 0.4 * len(x) / SAMPLE_RATE)
            else:
                gap = max(0.05, rng.normal(tt.gap_mean_s, tt.gap_std_s))
        else:
            gap = max(0.3, rng.normal(2 * tt.gap_mean_s + 0.3, tt.gap_std_s))
        t = end + gap
    nf = cfg.audio.noise_floor
    for k in range(2):
        tracks[k] = (tracks[k] + nf * rng.standard_normal(n)).astype(np.float32)
        np.clip(tracks[k], -1.0, 1.0, out=tracks[k])
    return tracks, segs, dur


# ----------------------------------------------------------------------------- motion
def speech_envelope(x: np.ndarray, n_frames: int, mc: MotionConfig) -> np.ndarray:
    """Speech envelope [n_frames] in [0, 1] at 25 fps (see the module docstring)."""
    from scipy.signal import lfilter

    rms = _frame_rms(x, n_frames)
    db = 20 * np.log10(rms)
    active = db > db.max() - 45.0
    ref = float(np.percentile(db[active], 95)) if active.any() else float(db.max())
    env = np.clip(1.0 + (db - ref) / mc.range_db, 0.0, 1.0)
    a = float(np.exp(-1.0 / max(mc.smooth_s * FPS, 1e-3)))
    env = lfilter([1 - a], [1, -a], env)  # causal one-pole smoothing
    return np.clip(env, 0.0, 1.0)


def voice_activity(env: np.ndarray, rc: ReactionConfig) -> np.ndarray:
    """Boolean activity [T]: envelope above threshold, gaps shorter than ``fill_gap_s`` filled."""
    act = env > rc.vad_threshold
    fill = int(round(rc.fill_gap_s * FPS))
    for s, e in _runs(~act):
        if 0 < s and e < len(act) and e - s <= fill:
            act[s:e] = True
    return act


def _partner_pauses(act: np.ndarray, rc: ReactionConfig):
    """(pause_start_frame, pause_len_frames) after >= min_speech of activity."""
    out = []
    ms, mp = int(round(rc.min_speech_s * FPS)), int(round(rc.min_pause_s * FPS))
    speech = _runs(act)
    for i, (s, e) in enumerate(speech):
        if e - s < ms or e >= len(act):
            continue
        nxt = speech[i + 1][0] if i + 1 < len(speech) else len(act)
        if nxt - e >= mp:
            out.append((int(e), int(nxt - e)))
    return out


def render_motion(audio: list[np.ndarray], cfg: SyntheticConfig, rng: np.random.Generator,
                  n_frames: int | None = None):
    """Motion targets [T, 56] of both speakers from their two audio tracks.

    Returns ``(motions [2][T,56] float32, info)``; ``info`` holds ``envelopes`` [2][T],
    ``activity`` [2][T], ``events`` (list of dicts: frame, speaker, kind, amp, pause_frame,
    engagement) and ``engagement`` [2][T].
    """
    mc, rc = cfg.motion, cfg.reactions
    T = n_frames if n_frames is not None else min(len(a) for a in audio) // SAMPLES_PER_FRAME
    envs = [speech_envelope(a, T, mc) for a in audio]
    acts = [voice_activity(e, rc) for e in envs]
    lag = int(round(mc.lag_s * FPS))
    motions, events, engagement = [], [], []
    holding = []
    for k in range(2):  # the floor: activity runs of at least min_speech_s
        h = np.zeros(T, bool)
        for s, e in _runs(acts[k]):
            if e - s >= int(round(rc.min_speech_s * FPS)):
                h[s:e] = True
        holding.append(h)
    for k in range(2):
        other = 1 - k
        m = np.zeros((T, MOTION_DIM), np.float64)
        env = np.concatenate([np.zeros(lag), envs[k]])[:T]
        # speaker rules
        m[:, JAW_OPEN] = mc.jaw_max_rad * env ** mc.jaw_gamma
        for idx, gain in mc.mouth_exp.items():
            m[:, int(idx)] += gain * env
        m[:, ROT_PITCH] += mc.speak_pitch_gain_rad * env
        m[:, ROT_YAW] += _ou(rng, T, mc.speak_yaw_std_rad, 1.5)[:, 0] * holding[k]
        # idle
        dscale = 1.0 / (1.0 + np.arange(EXP_DIM) / 8.0)
        m[:, :EXP_DIM] += rng.normal(0, mc.identity_exp_std, EXP_DIM) * dscale
        m[:, :EXP_DIM] += _ou(rng, T, mc.idle_exp_std * dscale, mc.idle_tau_s, dims=EXP_DIM)
        m[:, 53:56] += _ou(rng, T, mc.idle_rot_std_rad, mc.idle_tau_s, dims=3)
        m[:, 50:53] += _ou(rng, T, mc.idle_jaw_std_rad, 0.5, dims=3)
        nb = rng.poisson(mc.blink_rate_hz * T / FPS)
        bl = max(2, int(round(mc.blink_s * FPS)))
        for f in rng.integers(0, max(1, T - bl), nb):
            m[f : f + bl, mc.blink_index] += mc.blink_amp * np.hanning(bl + 2)[1:-1]
        # listener rules
        e0 = _u(rng, rc.engagement_init)
        n_heard = 0
        e_track = np.full(T, e0)
        pauses = _partner_pauses(acts[other], rc)
        names = list(rc.choice_weights)
        w = np.asarray([rc.choice_weights[c] for c in names], np.float64)
        w = w / w.sum()
        for pf, plen in pauses:
            e = engagement_after(n_heard, e0, rc.engagement_rate)
            if plen >= int(round(rc.turn_end_s * FPS)):
                n_heard += 1
                e_track[pf:] = engagement_after(n_heard, e0, rc.engagement_rate)
            g = _gain(e, rc.engagement_floor)
            lagf = int(round(max(0.1, rng.normal(rc.lag_mean_s, rc.lag_std_s)) * FPS))
            f = pf + lagf
            if f >= T or holding[k][f] or holding[k][pf]:
                continue
            if rng.random() >= rc.react_prob * g:
                continue
            kind = str(names[rng.choice(len(names), p=w)])
            if kind == "nod":
                amp = _u(rng, rc.nod_amp_rad) * g
                L = max(3, int(round(_u(rng, rc.nod_s) * FPS)))
                cyc = int(rng.integers(rc.nod_cycles[0], rc.nod_cycles[1] + 1))
                u = np.arange(L) / L
                shape = amp * np.sin(np.pi * cyc * u) ** 2 * (1 - 0.35 * u)
                dim, side = ROT_PITCH, 1.0
            elif kind == "tilt":
                amp = _u(rng, rc.tilt_amp_rad) * g
                L = max(4, int(round(_u(rng, rc.tilt_s) * FPS)))
                u = np.arange(L) / L
                r = np.clip(np.minimum(u / 0.25, (1 - u) / 0.3), 0, 1)
                shape = amp * r * r * (3 - 2 * r)  # smooth rise, hold, smooth return
                side = float(rng.choice([-1.0, 1.0]))
                dim = ROT_ROLL
            else:
                raise ValueError(f"unknown reaction kind {kind!r} (nod, tilt)")
            seg = slice(f, min(T, f + L))
            m[seg, dim] += side * shape[: seg.stop - seg.start]
            events.append({"frame": int(f), "speaker": k, "kind": kind, "amp": float(amp),
                           "side": side, "pause_frame": int(pf), "engagement": float(e)})
        listening = (~holding[k]).astype(np.float64)
        m[:, rc.smile_index] += rc.smile_gain * e_track * _smooth(listening, 0.5)
        m[:, JAW_OPEN] = np.clip(m[:, JAW_OPEN], 0.0, 0.3)
        m[:, 53:56] = np.clip(m[:, 53:56], -0.4, 0.4)
        motions.append(m.astype(np.float32))
        engagement.append(e_track.astype(np.float32))
    events.sort(key=lambda d: (d["frame"], d["speaker"]))
    info = {"envelopes": envs, "activity": acts, "holding": holding, "events": events,
            "engagement": engagement}
    return motions, info


def _smooth(x: np.ndarray, tau_s: float) -> np.ndarray:
    from scipy.signal import lfilter

    a = float(np.exp(-1.0 / (tau_s * FPS)))
    return lfilter([1 - a], [1, -a], x, zi=[a * x[0]] if len(x) else None)[0] if len(x) else x


# ----------------------------------------------------------------------------- conversation
@dataclass
class Conversation:
    audio: list            # [2] float32 [N] at 16 kHz, N = T * 640
    motion: list           # [2] float32 [T, 56]
    events: list           # listener reactions
    segments: list         # Segment
    meta: dict = field(default_factory=dict)


def _pick_voices(cfg: SyntheticConfig, rng) -> list[VoiceConfig]:
    if len(cfg.voices) < 1:
        raise ValueError("config needs at least one voice")
    if len(cfg.voices) == 1:
        return [cfg.voices[0], cfg.voices[0]]
    i, j = rng.choice(len(cfg.voices), 2, replace=False)
    return [cfg.voices[int(i)], cfg.voices[int(j)]]


def generate_conversation(cfg: SyntheticConfig, rng: np.random.Generator | int,
                          duration_s: float | None = None) -> Conversation:
    """One conversation: timeline, audio (procedural or flite) and motion for both speakers."""
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    voices = _pick_voices(cfg, rng)
    mode = cfg.tts.mode
    if mode not in ("off", "auto", "on"):
        raise ValueError(f"tts.mode must be off, auto or on, got {mode!r}")
    if mode == "on" and not flite_available():
        raise RuntimeError("tts.mode is 'on' but flite is not on PATH (apt-get install flite)")
    use_tts = mode != "off" and flite_available() and rng.random() < cfg.tts.prob
    if use_tts:
        sources = [FliteVoice(v, cfg.tts, rng) for v in voices]
    else:
        sources = [ProceduralVoice(v, cfg.audio, rng) for v in voices]
    tracks, segs, dur = plan_conversation(cfg, sources, rng, duration_s)
    motions, info = render_motion(tracks, cfg, rng)
    meta = {
        "config": cfg.name, "duration_s": len(tracks[0]) / SAMPLE_RATE, "tts": bool(use_tts),
        "voices": [v.tts_voice if use_tts else v.name for v in voices],
        "f0_hz": [None if use_tts else round(s.f0, 1) for s in sources],
        "turns": sum(1 for s in segs if s.kind == "turn"),
        "backchannels": sum(1 for s in segs if s.kind == "backchannel"),
        "reactions": len(info["events"]),
    }
    return Conversation(tracks, motions, info["events"], segs, meta)


def write_conversation(conv: Conversation, out_dir: str | Path, clip: str,
                       meta: bool = True) -> list[Path]:
    """Write ``<clip>_speaker{1,2}.wav/.npz`` (DualTalk layout) and ``<clip>.meta.json``."""
    from timar_ros.data.audio import write_wav
    from timar_ros.data.layout import save_motion

    out_dir = Path(out_dir)
    paths = []
    for k in range(2):
        stem = f"{clip}_speaker{k + 1}"
        paths.append(write_wav(out_dir / f"{stem}.wav", conv.audio[k]))
        paths.append(save_motion(out_dir / f"{stem}.npz", conv.motion[k]))
    if meta:
        m = dict(conv.meta)
        m["segments"] = [dataclasses.asdict(s) for s in conv.segments]
        m["events"] = conv.events
        p = out_dir / f"{clip}.meta.json"
        p.write_text(json.dumps(_jsonable(m), indent=1))
        paths.append(p)
    return paths


def _jsonable(x: Any):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float):
        return round(x, 4)
    return x


def generate_dataset(out_dir: str | Path, cfg: SyntheticConfig, conversations: int,
                     seed: int = 0, prefix: str | None = None, progress: bool = False) -> dict:
    """Write ``conversations`` conversations; conversation i uses ``default_rng([seed, i])``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = prefix or f"syn{seed}"
    it = range(conversations)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="synth", unit="conv")
    stats = {"conversations": 0, "seconds": 0.0, "tts": 0, "reactions": 0}
    for i in it:
        conv = generate_conversation(cfg, np.random.default_rng([seed, i]))
        write_conversation(conv, out_dir, f"{prefix}_{i:05d}")
        stats["conversations"] += 1
        stats["seconds"] += conv.meta["duration_s"]
        stats["tts"] += int(conv.meta["tts"])
        stats["reactions"] += conv.meta["reactions"]
    (out_dir / "synthetic_config.json").write_text(json.dumps(
        {"seed": seed, "conversations": conversations, "config": cfg.to_dict()}, indent=1))
    return stats
