"""Every rule and parameter of the synthetic conversation generator, as dataclasses loadable
from YAML (config/synthetic.yaml; config/synthetic_ood.yaml is the held-out variant)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from timar_ros.errors import InputError


class SyntheticConfigError(InputError, ValueError):
    """A synthetic config that cannot be used; the message names the file and the problem."""


@dataclass
class VoiceConfig:
    name: str = "low"
    f0_hz: float = 115.0  # mean pitch
    f0_jitter_semitones: float = 1.0  # per-conversation random shift (+-)
    pitch_range_semitones: float = 4.0  # intonation excursion within a phrase
    syllable_rate_hz: float = 4.5
    formant_scale: float = 1.0  # vocal-tract scale (female ~1.15)
    breathiness: float = 0.04
    loudness: float = 0.35  # peak level of a turn
    tts_voice: str = "rms"  # flite voice used when TTS is on
    tts_f0_hz: float | None = None  # flite int_f0_target_mean (None: the voice's own)
    tts_stretch: float = 1.0  # flite duration_stretch


@dataclass
class TurnTakingConfig:
    duration_s: tuple[float, float] = (20.0, 30.0)
    lead_in_s: tuple[float, float] = (0.2, 1.0)
    turn_s: tuple[float, float] = (1.5, 6.0)
    phrase_s: tuple[float, float] = (0.8, 2.4)
    phrase_pause_s: tuple[float, float] = (0.3, 0.6)
    gap_mean_s: float = 0.35
    gap_std_s: float = 0.2
    keep_floor_prob: float = 0.1  # the same speaker takes the next turn
    overlap_prob: float = 0.15
    overlap_s: tuple[float, float] = (0.2, 0.7)
    backchannel_prob: float = 0.5  # per speaker phrase pause, times g(e)
    backchannel_s: tuple[float, float] = (0.3, 0.55)
    backchannel_lag_s: tuple[float, float] = (0.1, 0.3)


@dataclass
class AudioConfig:
    noise_floor: float = 3e-4  # std of the background noise on every track
    consonant_prob: float = 0.55  # a syllable starts with a noise burst
    consonant_s: tuple[float, float] = (0.03, 0.08)
    phrase_gain_db: tuple[float, float] = (-4.0, 0.0)
    # Recording conditions, applied to each track after the motion is rendered from the clean
    # speech (so the model learns motion from speech, not from the channel): a level change,
    # and with degrade_prob a telephone band (300-3400 Hz) and background noise.
    gain_db: tuple[float, float] = (-6.0, 3.0)
    degrade_prob: float = 0.3
    noise_snr_db: tuple[float, float] = (15.0, 35.0)


@dataclass
class MotionConfig:
    """The speaker's own motion, from their speech, and the idle motion of both."""

    range_db: float = 30.0  # envelope: 0 at (95th pct - range_db), 1 at 95th pct
    smooth_s: float = 0.06
    lag_s: float = 0.04  # motion follows the own envelope by this lag
    jaw_max_rad: float = 0.25
    jaw_gamma: float = 0.8
    mouth_exp: dict = field(default_factory=lambda: {0: 1.4, 2: -0.7, 4: 0.5, 7: 0.35})
    # Head motion with the speaker's prosody: a small downward nod on each accent (a prominent
    # energy peak of a syllable), the head raised with the phrase's loudness, and a slow turn
    # (yaw) that settles on a new direction at each phrase.
    accent_prominence: float = 0.12  # envelope above its 0.4-s average that makes an accent
    accent_min_gap_s: float = 0.3
    accent_pitch_rad: tuple[float, float] = (0.03, 0.07)
    accent_s: float = 0.4
    phrase_pitch_rad: float = 0.04  # head up by this at full phrase loudness
    phrase_yaw_rad: float = 0.08  # std of the direction a phrase settles on
    phrase_settle_s: float = 0.5
    idle_rot_std_rad: tuple[float, float, float] = (0.015, 0.02, 0.01)
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
    """The listener's reactions to the partner's pauses."""

    vad_threshold: float = 0.3  # on the [0,1] envelope
    fill_gap_s: float = 0.2  # syllable gaps shorter than this are speech
    min_speech_s: float = 0.7
    min_pause_s: float = 0.28
    turn_end_s: float = 0.6
    lag_mean_s: float = 0.3
    lag_std_s: float = 0.08
    react_prob: float = 0.85
    # What the listener does is the conversation's mood (MoodConfig), not a coin flip per pause.
    kind_by_mood: dict = field(default_factory=lambda: {"warm": "nod", "reserved": "tilt"})
    nod_amp_rad: tuple[float, float] = (0.07, 0.15)
    nod_s: tuple[float, float] = (0.5, 0.9)
    nod_cycles: tuple[int, int] = (1, 2)
    tilt_amp_rad: tuple[float, float] = (0.05, 0.1)
    tilt_s: tuple[float, float] = (0.8, 1.4)
    engagement_init: tuple[float, float] = (0.05, 0.3)
    engagement_rate: float = 0.25
    engagement_floor: float = 0.5


@dataclass
class MoodConfig:
    """A conversation-level state that only the partner's earlier turns reveal: in a warm
    conversation both smile while they speak and the listener nods; in a reserved one neither
    smiles and the listener tilts its head."""

    warm_prob: float = 0.5
    smile_index: int = 1
    speaking_smile: dict = field(
        default_factory=lambda: {"warm": [0.5, 1.1], "reserved": [0.0, 0.12]}
    )
    smile_rise_s: float = 0.4


@dataclass
class MimicryConfig:
    """The listener's smile follows the partner's speaking smile of a few seconds earlier,
    decaying: ``listener += gain * ema(partner speaking smile delayed by lag_s, tau_s)``."""

    gain: float = 0.7
    lag_s: float = 2.0
    tau_s: float = 3.0


@dataclass
class TTSConfig:
    mode: str = "off"  # off | auto (when flite is on PATH) | on (required)
    prob: float = 0.5  # fraction of conversations voiced by TTS
    sentences: list = field(default_factory=lambda: list(_SENTENCES))
    backchannels: list = field(
        default_factory=lambda: ["mm-hm", "yeah", "right", "okay", "uh-huh", "I see"]
    )


@dataclass
class SyntheticConfig:
    """Every rule and parameter of the generator (see the module docstring)."""

    name: str = "synthetic"
    voices: list = field(
        default_factory=lambda: [
            VoiceConfig("low", 110.0, syllable_rate_hz=4.3, formant_scale=1.0, tts_voice="rms"),
            VoiceConfig("high", 195.0, syllable_rate_hz=4.8, formant_scale=1.15, tts_voice="slt"),
        ]
    )
    turns: TurnTakingConfig = field(default_factory=TurnTakingConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    reactions: ReactionConfig = field(default_factory=ReactionConfig)
    mood: MoodConfig = field(default_factory=MoodConfig)
    mimicry: MimicryConfig = field(default_factory=MimicryConfig)
    tts: TTSConfig = field(default_factory=TTSConfig)

    @classmethod
    def from_dict(cls, d: dict | None) -> SyntheticConfig:
        return _build(cls, d or {})

    @classmethod
    def from_yaml(cls, path: str | Path) -> SyntheticConfig:
        """Raises :class:`SyntheticConfigError` naming the file and the problem."""
        import yaml

        try:
            with open(path, encoding="utf-8") as f:
                return cls.from_dict(yaml.safe_load(f) or {})
        except (OSError, UnicodeDecodeError, yaml.YAMLError, TypeError, ValueError) as exc:
            raise SyntheticConfigError(
                f"{path}: not a usable synthetic config ({exc}); start from config/synthetic.yaml"
            ) from exc

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
    "So how was your weekend?",
    "It was great, we went hiking by the lake.",
    "I have been meaning to ask you about that.",
    "Really? Tell me more.",
    "I think the second option is better.",
    "That makes a lot of sense to me.",
    "We could try it again tomorrow morning.",
    "Honestly, I am not so sure about that.",
    "The weather has been lovely lately.",
    "Did you see the news this morning?",
    "Let me think about it for a second.",
    "Well, it depends on the budget.",
    "My sister just moved to a new city.",
    "That sounds like a lot of fun.",
    "I would love to hear what you think.",
    "We should probably leave a bit earlier.",
    "Could you explain that part again?",
    "Oh, I did not know that at all.",
]
