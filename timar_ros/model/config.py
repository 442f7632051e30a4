"""TIMARConfig: the one dataclass that defines a model; saved as ``config.json`` next to the
weights. Presets: ``robot`` (default, small, real time on a 2-core CPU), ``tiny`` (tests),
``paper-base`` / ``paper-large`` (our architecture at the published sizes; configs only), and
``timar_base`` / ``timar_large`` / ``timar_huge``: the reference implementation's architecture
(learned absolute positions, wav2vec 2.0), the layout ``timar import-reference`` writes."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .token_layout import TurnLayout

SPEECH_ENCODERS = ("builtin", "wav2vec2")
HEADS = ("diffusion", "mlp")
ATTENTIONS = ("turn_causal", "bidirectional")
STREAM_PREFIXES = ("truth", "own")
GUIDANCE_GROUPS = ("all", "pose")  # the motion classifier-free guidance pushes
ARCHITECTURES = ("encoder_only", "mae_encdec")
# "rope": rotary positions over the token index + learned intra-turn tables (exact rolling KV
# cache); "learned_absolute": the reference's learned tables over the whole window_turns-turn
# window, added after z_proj (every turn re-encodes its cropped window).
POSITIONS = ("rope", "learned_absolute")
# Waveform normalisation before the speech encoder, per stream (user, agent): "none" (as given),
# "chunk" (each turn's chunk on its own), "running" (mean and variance of everything heard so
# far, causal), "file" (the whole file's, as the reference's processor; offline only).
AUDIO_NORMS = ("none", "chunk", "running", "file")


@dataclass
class TIMARConfig:
    # turn layout and context
    frames_per_turn: int = 25  # F: 25 = 1 s turns at 25 fps; 10 = 0.4 s
    window_turns: int = 8  # W: turn t attends turns t-W+1..t at every layer
    motion_dim: int = 56  # exp 50 | jaw 3 | head rotation 3
    # backbone
    d_model: int = 256
    encoder_depth: int = 2  # encoder-only stacks encoder_depth + decoder_depth blocks (reference)
    decoder_depth: int = 2
    num_heads: int = 4
    mlp_ratio: float = 4.0
    token_dim: int = 256  # token embedding width before z_proj (reference: 1024)
    motion_hidden: int = 256  # motion encoder MLP hidden width (reference: 512)
    attn_dropout: float = 0.1
    proj_dropout: float = 0.1
    rope_theta: float = 10000.0
    positions: str = "rope"  # or "learned_absolute" (the reference's)
    attention: str = "turn_causal"  # or "bidirectional" (ablation)
    architecture: str = "encoder_only"  # or "mae_encdec" (ablation)
    # speech encoder
    speech_encoder: str = "builtin"  # or "wav2vec2"
    speech_dim: int = 128  # builtin encoder output width
    n_mels: int = 64
    speech_channels: int = 128
    wav2vec2_path: str = ""  # local directory for Wav2Vec2Model.from_pretrained
    wav2vec2_finetune: bool = False  # frozen by default (reference)
    audio_norm: str = "none"  # see AUDIO_NORMS; the builtin encoder normalises its log-mel
    # head
    head: str = "diffusion"  # or "mlp" (ablation)
    diffusion_width: int = 256  # reference: 1024
    diffusion_depth: int = 3
    diffusion_steps: int = 1000  # training steps (cosine schedule)
    num_sampling_steps: int = 5  # respaced ancestral DDPM steps at inference
    temperature: float = 1.0
    # Keep the learned variance inside its bounds when sampling (the reference leaves it open,
    # which an under-trained head can blow up; see model/diffusion.py).
    clamp_variance: bool = True
    # Sampling noise correlated over frames with this time constant (s; 0 = independent per
    # frame, as the reference): each frame's noise is still N(0, 1), so each frame's motion is
    # drawn from the same distribution, but neighbouring frames draw alike (smooth motion).
    noise_tau_s: float = 0.0
    # Share of the expression's sampling noise held for the whole conversation (0 = none): the
    # face's own baseline, which the policy cannot see, stays put instead of being redrawn.
    noise_hold_exp: float = 0.0
    diffusion_batch_mul: int = 4
    # Motion centred per dimension and scaled per group (expression, jaw, rotation) by the
    # training data's statistics (the buffers motion_mean / motion_std, saved with the weights;
    # TIMAR.set_motion_stats), so that the small head rotations weigh as much in the loss as the
    # expression (off: the reference's raw values).
    normalize_motion: bool = False
    # masking and guidance
    # Share of agent frames masked in training: truncated normal (mean 1, std 0.25) on [min, 1]
    # (the reference's 0.7). 1.0 masks every frame, the regime of single-pass inference, where
    # the history's and the current turn's agent motion are all masked.
    mask_ratio_min: float = 0.7
    cfg_drop_prob: float = 0.1  # per user token, training
    # Share of training windows with no partner motion at all (training): its tokens are the
    # null token and never masked, exactly as inference runs with user_motion None (a robot
    # without a camera). cfg_drop_prob's scattered tokens never show the model that regime: the
    # bundled weights, trained without it, lose most of their reactions there (reaction F1
    # 0.41 -> 0.11 on the synthetic test split at 0.12-s ticks).
    user_motion_drop_prob: float = 0.0
    guidance_scale: float = 1.0  # inference; 1 = no CFG (published setting)
    # What guidance pushes (inference): "all" the motion, or only the head "pose" (listener nods
    # and tilts live there; guiding the face too weakens its smile mimicry, which the history
    # drives, and roughens it). And in how many of the sampling steps, from the noisiest (0 =
    # every step): the noisy steps decide whether the head reacts, the last ones its detail,
    # and guiding those too makes the motion jump more where turns meet (a guidance interval,
    # Kynkaanniemi et al. 2024).
    guidance_groups: str = "all"
    guidance_steps: int = 0
    # Streaming inside the turn with guidance (inference): the unconditional backbone pass (half
    # of a tick's compute) runs at the turn's first tick and every guidance_every-th after it;
    # the ticks between reuse its features for their frames. Its input has every user token
    # null, so from one tick to the next it changes only by the robot's own audio heard in
    # between (and the shown prefix, when it is shown). 1 = every tick.
    guidance_every: int = 1
    # Streaming inside the turn (training; the runtime's ticks, runtime/ticks.py): the share of
    # training windows whose last turn is seen as a tick sees it: cut at a random frame c, the
    # agent's frames before c visible (the shown prefix, ground truth), the user's inputs heard
    # for 1..stream_max_ahead frames after c and the agent's speech as far or further (TTS is
    # known early), everything after that the mask token; its loss is on the agent frames from
    # c on, weighted stream_loss_weight against the other turns' (0 = the 1-s mode only). The
    # other turns are the history, whole, as the stream commits them.
    stream_train_prob: float = 0.0
    stream_max_ahead: int = 8
    stream_loss_weight: float = 0.5
    # What the cut turn shows before the cut: "truth" (the ground-truth frames) or "own" (the
    # model's own sample of the turn, drawn with the current weights and no gradient: scheduled
    # sampling, since at run time the prefix is what the robot showed, never the truth).
    stream_prefix: str = "truth"
    # Streaming inside the turn (inference): show the model the frames of the turn it already
    # emitted (a visible prefix) or keep every agent frame masked, as the 1-s mode does. A sampling
    # option, set per checkpoint by its metrics (a model trained on ground-truth prefixes drifts on
    # its own samples; docs/streaming.md); the policy's ``show_prefix`` overrides it.
    show_prefix: bool = True
    # free-form notes (e.g. preset name)
    preset: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def check(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(f"TIMARConfig: {msg}")

        types = {
            "int": (int,),
            "float": (int, float),
            "str": (str,),
            "bool": (bool,),
            "dict": (dict,),
        }
        for f in dataclasses.fields(self):
            value, want = getattr(self, f.name), types.get(str(f.type))
            wrong = want is not None and (
                not isinstance(value, want) or (isinstance(value, bool) and bool not in want)
            )
            check(not wrong, f"{f.name} must be {f.type}, got {value!r} ({type(value).__name__})")

        check(self.frames_per_turn >= 1, "frames_per_turn must be >= 1")
        check(self.window_turns >= 1, "window_turns must be >= 1")
        check(self.d_model % self.num_heads == 0, "d_model must be divisible by num_heads")
        check(self.positions in POSITIONS, f"positions in {POSITIONS}")
        check(self.audio_norm in AUDIO_NORMS, f"audio_norm in {AUDIO_NORMS}")
        if self.positions == "rope":
            check((self.d_model // self.num_heads) % 2 == 0, "head dim must be even (RoPE)")
        else:
            check(
                self.architecture == "encoder_only",
                "positions='learned_absolute' supports architecture='encoder_only' only",
            )
        check(self.speech_encoder in SPEECH_ENCODERS, f"speech_encoder in {SPEECH_ENCODERS}")
        check(self.head in HEADS, f"head in {HEADS}")
        check(self.attention in ATTENTIONS, f"attention in {ATTENTIONS}")
        check(self.architecture in ARCHITECTURES, f"architecture in {ARCHITECTURES}")
        check(0.0 <= self.stream_train_prob <= 1.0, "stream_train_prob in [0, 1]")
        check(0.0 <= self.user_motion_drop_prob <= 1.0, "user_motion_drop_prob in [0, 1]")
        check(self.stream_max_ahead >= 1, "stream_max_ahead >= 1 (frames)")
        check(0.0 <= self.stream_loss_weight <= 1.0, "stream_loss_weight in [0, 1]")
        check(self.stream_prefix in STREAM_PREFIXES, f"stream_prefix in {STREAM_PREFIXES}")
        check(self.guidance_groups in GUIDANCE_GROUPS, f"guidance_groups in {GUIDANCE_GROUPS}")
        check(self.guidance_steps >= 0, "guidance_steps >= 0 (0 = every sampling step)")
        check(self.guidance_every >= 1, "guidance_every >= 1 (1 = every tick)")
        if self.stream_train_prob > 0:
            check(
                self.architecture == "encoder_only" and self.positions == "rope",
                "stream_train_prob > 0 (streaming inside the turn) needs architecture="
                "'encoder_only' and positions='rope' (the streamed tick runs over the KV cache)",
            )
        check(0.0 < self.mask_ratio_min <= 1.0, "mask_ratio_min in (0, 1]")
        check(self.num_sampling_steps >= 1, "num_sampling_steps >= 1")
        check(
            self.num_sampling_steps <= self.diffusion_steps, "num_sampling_steps <= diffusion_steps"
        )
        check(self.motion_dim == 56, "motion_dim must be 56 (exp|jaw|rotation)")
        check(self.noise_tau_s >= 0.0, "noise_tau_s >= 0")
        check(0.0 <= self.noise_hold_exp < 1.0, "noise_hold_exp in [0, 1)")
        if self.speech_encoder == "wav2vec2":
            check(bool(self.wav2vec2_path), "wav2vec2 needs wav2vec2_path (a local directory)")

    # ---- derived
    @property
    def layout(self) -> TurnLayout:
        return TurnLayout(self.frames_per_turn)

    @property
    def tokens_per_turn(self) -> int:
        return self.layout.tokens_per_turn

    @property
    def samples_per_turn(self) -> int:
        return self.layout.samples_per_turn

    @property
    def num_blocks(self) -> int:
        return self.encoder_depth + self.decoder_depth

    # ---- JSON
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TIMARConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"TIMARConfig: unknown keys {unknown}")
        return cls(**d)

    def save(self, path: str | Path) -> None:
        from timar_ros.files import write_text_atomic

        write_text_atomic(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> TIMARConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def replace(self, **changes: Any) -> TIMARConfig:
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, dict[str, Any]] = {
    # Default: small enough for a 2-core CPU in real time (see `timar bench`).
    "robot": dict(
        d_model=256,
        encoder_depth=2,
        decoder_depth=2,
        num_heads=4,
        token_dim=256,
        motion_hidden=256,
        speech_dim=128,
        speech_channels=128,
        diffusion_width=256,
        diffusion_depth=3,
    ),
    # Tests only.
    "tiny": dict(
        d_model=32,
        encoder_depth=1,
        decoder_depth=1,
        num_heads=2,
        token_dim=32,
        motion_hidden=32,
        speech_dim=16,
        n_mels=16,
        speech_channels=16,
        diffusion_width=32,
        diffusion_depth=2,
        diffusion_batch_mul=2,
    ),
    # The published sizes (reference main.py/TUTORIAL; encoder-only stacks both depths).
    "paper-base": dict(
        d_model=768,
        encoder_depth=12,
        decoder_depth=12,
        num_heads=12,
        token_dim=1024,
        motion_hidden=512,
        diffusion_width=1024,
        diffusion_depth=3,
        speech_encoder="wav2vec2",
        wav2vec2_path="facebook/wav2vec2-large-960h-lv60-self",
    ),
    "paper-large": dict(
        d_model=1024,
        encoder_depth=16,
        decoder_depth=16,
        num_heads=16,
        token_dim=1024,
        motion_hidden=512,
        diffusion_width=1024,
        diffusion_depth=3,
        speech_encoder="wav2vec2",
        wav2vec2_path="facebook/wav2vec2-large-960h-lv60-self",
    ),
}

# The reference's factories (model/timar.py timar_base/large/huge) with the published settings:
# encoder-only (both depths stacked), turn-causal attention, diffusion head w 1024 / d 3, 5
# sampling steps, wav2vec 2.0 large (1024-d) speech features, learned absolute positions over
# 8 turns of 1 s. Audio: running normalisation for live use (the reference's whole-file
# statistics, "file", are for offline evaluation).
REFERENCE_FACTORIES: dict[str, dict[str, int]] = {
    "timar_base": dict(d_model=768, encoder_depth=12, decoder_depth=12, num_heads=12),
    "timar_large": dict(d_model=1024, encoder_depth=16, decoder_depth=16, num_heads=16),
    "timar_huge": dict(d_model=1280, encoder_depth=20, decoder_depth=20, num_heads=16),
}
REFERENCE_SETTINGS: dict[str, Any] = dict(
    positions="learned_absolute",
    attention="turn_causal",
    architecture="encoder_only",
    frames_per_turn=25,
    window_turns=8,
    token_dim=1024,
    motion_hidden=512,  # the reference's token_dim // 2
    diffusion_width=1024,
    diffusion_depth=3,
    num_sampling_steps=5,
    diffusion_batch_mul=4,
    speech_encoder="wav2vec2",
    wav2vec2_path="facebook/wav2vec2-large-960h-lv60-self",
    audio_norm="running",
    clamp_variance=False,
)
for _name, _sizes in REFERENCE_FACTORIES.items():
    PRESETS[_name] = {**REFERENCE_SETTINGS, **_sizes}


def preset(name: str, **overrides: Any) -> TIMARConfig:
    """The config of preset ``name`` with ``overrides`` applied."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TIMARConfig)})
    if unknown:
        raise ValueError(f"TIMARConfig: unknown keys {unknown}")
    kw = dict(PRESETS[name])
    kw.update(overrides)
    kw.setdefault("preset", name)
    return TIMARConfig(**kw)
