"""The TIMAR module: turn tokens -> band-masked transformer -> per-token motion head.

Training:  ``loss, stats = model.training_loss(batch)`` (see :meth:`TIMAR.training_loss`).
Inference: the model is stateless; :mod:`timar_ros.runtime` keeps the stream state and calls
:meth:`embed_turn`, :meth:`backbone_step` (a pure function of the turn, the KV cache tensors
and the validity mask, for ONNX export), :meth:`backbone_parallel` and :meth:`sample_motion`.

Choices (documented deviations from the reference are marked *):
* History agent motion is always the mask token at inference (the published
  ``--mask_history_agent``): the model never sees its own past output, so the K/V of a turn
  computed while sampling it are exactly its history K/V. Training masks a truncated-normal
  ratio in [0.7, 1] of the agent-motion tokens of all turns (reference), drawn once per batch.
* (*) Positions (``positions="rope"``, our presets): rotary over the token index (relative) + a
  learned intra-turn table at the input and one at the output (the reference's learned
  absolute 880-token tables would make cached keys stale once the window slides).
  ``positions="learned_absolute"`` (the ``timar_*`` presets, imported reference checkpoints):
  the reference's tables over the whole window (``window_turns`` turns), added after ``z_proj``
  and at the output; a turn's position is its slot in the cropped window, so the stream
  re-encodes the window every turn (:meth:`embed_window`) and has no KV cache.
* (*) Attention: a turn-level band (turn t sees t-W+1..t at every layer) instead of re-encoding a
  cropped window; identical to the reference's turn-causal mask while the stream is shorter
  than W turns. As in sliding-window attention, stacked layers reach further back: a turn can
  be influenced by up to ``num_blocks * (W - 1)`` past turns (:meth:`receptive_turns`). Train
  on windows of S > W turns (e.g. 2W) so that the model sees full bands and their stacking;
  with S <= W training sees only the reference's TLCA.
* The last block computes outputs only at the agent-motion tokens (keys/values of all tokens
  are still computed and cached): ``backbone_parallel`` / ``backbone_step`` return features at
  the agent-motion tokens only.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..motion import EXP, FPS, JAW, MOTION_DIM, ROT
from .backbone import Stack, init_weights, rope_tables
from .config import TIMARConfig
from .heads import DiffusionHead, MLPHead
from .speech import build_speech_encoder
from .token_layout import KIND, NUM_DELIMITERS

BATCH_KEYS = ("user_audio", "agent_audio", "user_motion", "agent_motion")


class TIMAR(nn.Module):
    def __init__(self, config: TIMARConfig):
        super().__init__()
        config.validate()
        self.config = c = config
        self.layout = L = c.layout
        T, d = L.tokens_per_turn, c.d_model
        self.speech_encoder = build_speech_encoder(c)
        self.speech_proj = nn.Linear(self.speech_encoder.out_dim, c.token_dim)
        self.motion_encoder = nn.Sequential(
            nn.Linear(MOTION_DIM, c.motion_hidden),
            nn.ReLU(),
            nn.Linear(c.motion_hidden, c.token_dim),
            nn.ReLU(),
        )
        self.delimiters = nn.Embedding(NUM_DELIMITERS, c.token_dim)
        self.fake_latent = nn.Parameter(torch.zeros(1, c.token_dim))  # CFG null token
        self.z_proj = nn.Linear(c.token_dim, d)
        self.mask_token = nn.Parameter(torch.zeros(1, d))
        # learned positions: intra-turn (rope) or over the whole window (learned_absolute)
        P = c.window_turns * T if self.absolute_positions else T
        self.pos_in = nn.Parameter(torch.zeros(P, d))
        self.z_proj_ln = nn.LayerNorm(d, eps=1e-6)

        def stack(depth):
            return Stack(
                depth,
                d,
                c.num_heads,
                c.mlp_ratio,
                c.attn_dropout,
                c.proj_dropout,
                c.rope_theta,
                rope=not self.absolute_positions,
            )

        if c.architecture == "encoder_only":
            self.stacks = nn.ModuleList([stack(c.num_blocks)])
        else:  # MAE-style: encoder on visible tokens, decoder re-inserts mask tokens
            self.stacks = nn.ModuleList([stack(c.encoder_depth), stack(c.decoder_depth)])
            self.decoder_embed = nn.Linear(d, d)
            self.decoder_mask_token = nn.Parameter(torch.zeros(1, d))
            self.pos_dec = nn.Parameter(torch.zeros(T, d))
        self.pos_out = nn.Parameter(torch.zeros(P, d))  # the reference's diffusion_pos_embed
        if c.head == "diffusion":
            self.head = DiffusionHead(
                MOTION_DIM,
                d,
                c.diffusion_width,
                c.diffusion_depth,
                c.diffusion_steps,
                c.num_sampling_steps,
                c.diffusion_batch_mul,
                clamp_variance=c.clamp_variance,
            )
        else:
            self.head = MLPHead(MOTION_DIM, d)

        if c.normalize_motion:  # saved with the weights; set by training (set_motion_stats)
            self.register_buffer("motion_mean", torch.zeros(MOTION_DIM))
            self.register_buffer("motion_std", torch.ones(MOTION_DIM))
        # layout index buffers (not saved: derived from the config)
        self.register_buffer("user_tok", torch.from_numpy(L.user_mask), persistent=False)
        self.register_buffer("am_tok", torch.from_numpy(L.agent_motion_mask), persistent=False)
        self.register_buffer("enc_pos", torch.from_numpy(L.encoder_positions), persistent=False)
        self.register_buffer(
            "am_idx", torch.from_numpy(np.nonzero(L.agent_motion_mask)[0]), persistent=False
        )
        self.register_buffer("tok_kind", torch.from_numpy(L.kinds), persistent=False)
        self.register_buffer("tok_frame", torch.from_numpy(L.frame_of_token), persistent=False)

        for m in (self.speech_proj, self.motion_encoder, self.z_proj, self.stacks):
            init_weights(m)
        if c.architecture == "mae_encdec":
            init_weights(self.decoder_embed)
        for p in self._small_init_params():
            nn.init.normal_(p, std=0.02)

    def _small_init_params(self):
        ps = [self.delimiters.weight, self.fake_latent, self.mask_token, self.pos_in, self.pos_out]
        if self.config.architecture == "mae_encdec":
            ps += [self.decoder_mask_token, self.pos_dec]
        return ps

    # ------------------------------------------------------------------ properties
    @property
    def absolute_positions(self) -> bool:
        """Learned absolute positions over the window (the reference's): no KV cache."""
        return self.config.positions == "learned_absolute"

    @property
    def is_mae(self) -> bool:
        return self.config.architecture == "mae_encdec"

    def stack_positions(self) -> list[np.ndarray]:
        """Within-turn token positions each stack sees at inference."""
        full = np.arange(self.layout.tokens_per_turn)
        return [self.layout.encoder_positions, full] if self.is_mae else [full]

    def receptive_turns(self, context_turns: int) -> int:
        """History turns that can influence a turn when each layer sees ``context_turns``
        (a re-encoded window with absolute positions: exactly ``context_turns``)."""
        if self.absolute_positions:
            return context_turns
        return self.config.num_blocks * context_turns

    # ------------------------------------------------------------------ motion scale
    @torch.no_grad()
    def set_motion_stats(self, mean, std, min_std: float = 1e-3) -> None:
        """The training motion's per-dimension mean and std [56] (normalize_motion only).

        Each dimension is centred on its mean and scaled by its group's RMS std (expression,
        jaw, rotation): the groups weigh alike in the loss, while inside a group the dimensions
        keep their relative sizes (a per-dimension z-score would blow the idle noise of the
        tiny jaw side-to-side dimensions up to the size of the jaw opening, and the loss would
        be mostly unpredictable noise)."""
        if not self.config.normalize_motion:
            raise ValueError("set_motion_stats needs a config with normalize_motion=True")
        std = torch.as_tensor(std, dtype=torch.float32)
        scale = torch.empty(MOTION_DIM)
        for sl in (EXP, JAW, ROT):  # the groups of motion.GROUPS
            scale[sl] = std[sl].pow(2).mean().sqrt().clamp_min(min_std)
        self.motion_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.motion_std.copy_(scale)

    def normalize(self, motion: torch.Tensor) -> torch.Tensor:
        """Motion [..., 56] in radians/coefficients -> the model's scale."""
        if not self.config.normalize_motion:
            return motion
        return (motion - self.motion_mean) / self.motion_std

    def denormalize(self, motion: torch.Tensor) -> torch.Tensor:
        """The model's scale -> motion [..., 56] in radians/coefficients."""
        if not self.config.normalize_motion:
            return motion
        return motion * self.motion_std + self.motion_mean

    # ------------------------------------------------------------------ tokens
    def build_tokens(self, user_audio, agent_audio, user_motion, agent_motion, n_turns: int):
        """-> token embeddings [B, S, T, token_dim] in layout order.

        ``user_motion`` None: user-motion tokens are the null token (as in CFG).
        ``agent_motion`` None: agent-motion tokens are zeros (they are masked anyway)."""
        c, S = self.config, n_turns
        B, F, spt, td = (
            user_audio.shape[0],
            c.frames_per_turn,
            self.layout.samples_per_turn,
            c.token_dim,
        )
        audio = torch.cat([user_audio.reshape(B * S, spt), agent_audio.reshape(B * S, spt)], 0)
        sp = self.speech_proj(self.speech_encoder(audio))
        us, ag = sp[: B * S].view(B, S, F, td), sp[B * S :].view(B, S, F, td)
        return self._assemble(us, ag, user_motion, agent_motion)

    def _assemble(self, us, ag, user_motion, agent_motion):
        """Speech tokens us, ag [B, S, F, td] + motion [B, S*F, 56] (or None) -> [B, S, T, td]."""
        B, S, F, td = us.shape
        if user_motion is None:
            um = self.fake_latent.view(1, 1, 1, td).expand(B, S, F, td)
        else:
            um = self.motion_encoder(self.normalize(user_motion.reshape(B, S, F, MOTION_DIM)))
        if agent_motion is None:
            am = us.new_zeros(B, S, F, td)
        else:
            am = self.motion_encoder(self.normalize(agent_motion.reshape(B, S, F, MOTION_DIM)))
        # Every piece at its position in the one layout definition (model/token_layout.py).
        L, dl = self.layout, self.delimiters.weight
        pieces = {
            L.segment(name).start: x
            for name, x in (
                ("user_speech", us),
                ("user_motion", um),
                ("agent_speech", ag),
                ("agent_motion", am),
            )
        }
        for i, pos in enumerate(L.delimiter_positions):
            pieces[int(pos)] = dl[i].view(1, 1, 1, td).expand(B, S, 1, td)
        return torch.cat([pieces[k] for k in sorted(pieces)], dim=2)

    def drop_user_tokens(self, tok: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        """Replace tokens where ``drop`` [B, S, T] (restricted to user tokens) by the null token."""
        drop = drop & self.user_tok
        return torch.where(drop[..., None], self.fake_latent.view(1, 1, 1, -1), tok)

    # ------------------------------------------------------------------ a turn in progress
    def partial_mask(self, known: torch.Tensor, user_motion: bool) -> torch.Tensor:
        """known [B, 3] int frames (user heard, agent heard, agent shown) -> [B, T] bool: the
        tokens a tick cannot know (the mask token): user speech (and user motion, when given)
        from the user's heard frames on, agent speech from the agent's, agent motion from the
        shown prefix's end. Delimiters are always visible."""
        kind, fr = self.tok_kind[None], self.tok_frame[None]
        uk, ak, shown = known[:, 0:1], known[:, 1:2], known[:, 2:3]
        m = (kind == KIND["user_speech"]) & (fr >= uk)
        m = m | ((kind == KIND["agent_speech"]) & (fr >= ak))
        m = m | ((kind == KIND["agent_motion"]) & (fr >= shown))
        if user_motion:
            m = m | ((kind == KIND["user_motion"]) & (fr >= uk))
        return m

    def tick_tokens(self, user_audio, agent_audio, user_motion, agent_prefix, known):
        """One turn in progress as a tick sees it -> (tokens [B, T, td], masked [B, T] bool).

        user_audio, agent_audio [B, samples_per_turn] (samples after the heard frames are
        ignored: zeroed), user_motion [B, F, 56] or None (null tokens, as in the 1-s mode),
        agent_prefix [B, F, 56] (frames from ``shown`` on are ignored: masked), known [B, 3]
        int64 (:meth:`partial_mask`)."""
        B, td = user_audio.shape[0], self.config.token_dim
        F = self.config.frames_per_turn
        sp = self.speech_proj(
            self.speech_encoder(
                torch.cat([user_audio, agent_audio], 0), torch.cat([known[:, 0], known[:, 1]])
            )
        )
        us, ag = sp[:B].view(B, 1, F, td), sp[B:].view(B, 1, F, td)
        tok = self._assemble(us, ag, user_motion, agent_prefix)[:, 0]
        return tok, self.partial_mask(known, user_motion is not None)

    def embed_tick(
        self, user_audio, agent_audio, user_motion, agent_prefix, known, uncond: bool = False
    ):
        """Backbone input [B, T, d] of a turn in progress (:meth:`tick_tokens`), and if
        ``uncond`` its CFG null version (every user token the null token)."""
        tok, masked = self.tick_tokens(user_audio, agent_audio, user_motion, agent_prefix, known)
        x = self.embed_window(self.project(tok[:, None], masked[:, None]))[:, 0]
        if not uncond:
            return x, None
        tok_u = self.drop_user_tokens(tok[:, None], torch.ones_like(masked[:, None]))
        xu = self.embed_window(self.project(tok_u, (masked & ~self.user_tok)[:, None]))
        return x, xu[:, 0]

    def project(self, tok: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """tokens [B, S, T, td], masked [B, S, T] or [T] bool -> [B, S, T, d] before positions."""
        x = self.z_proj(tok)
        return torch.where(masked[..., None], self.mask_token, x)

    def embed_window(self, x: torch.Tensor) -> torch.Tensor:
        """Projected turns [B, S, T, d] (:meth:`project`) -> backbone input [B, S, T, d]: the
        positions added (intra-turn, or the window's first S turn slots) and the input norm."""
        S, T = x.shape[1], self.layout.tokens_per_turn
        if not self.absolute_positions:
            return self.z_proj_ln(x + self.pos_in)
        self._check_window(S)
        return self.z_proj_ln(x + self.pos_in[: S * T].view(S, T, -1))

    def embed(self, tok: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """tokens [B, S, T, td], masked [B, S, T] or [T] bool -> backbone input [B, S, T, d]."""
        return self.embed_window(self.project(tok, masked))

    def _check_window(self, S: int) -> None:
        W = self.config.window_turns
        if S > W:
            raise ValueError(
                f"positions='learned_absolute' has position tables for {W} turns "
                f"(window_turns); got {S} turns: crop the history to the last {W} turns"
            )

    def _no_cache(self) -> None:
        if self.absolute_positions:
            raise RuntimeError(
                "positions='learned_absolute' cannot use a KV cache (a turn's position changes "
                "as the window slides); re-encode the window (kv_cache=False)"
            )

    # ------------------------------------------------------------------ backbone
    def _window(self, context_turns: int | None) -> int | None:
        if self.config.attention == "bidirectional":
            return None
        w = self.config.window_turns
        return w if context_turns is None else min(w, context_turns + 1)

    def backbone_parallel(
        self, x: torch.Tensor, masked: torch.Tensor | None = None, context_turns: int | None = None
    ) -> torch.Tensor:
        """x [B, S, T, d] -> features at the agent-motion tokens [B, S, F, d] (final norm +
        output positions added; the last block computes only these tokens).

        ``masked``: [B, S, T] bool masked tokens (MAE drops them from the encoder); None = the
        inference pattern (all agent-motion tokens). ``context_turns``: band width - 1."""
        B, S, T, d = x.shape
        window = self._window(context_turns)
        dev = x.device
        pos = torch.arange(S * T, device=dev)
        turns = torch.arange(S, device=dev).repeat_interleave(T)
        out_idx = (torch.arange(S, device=dev)[:, None] * T + self.am_idx[None]).reshape(-1)
        if not self.is_mae:
            h = self.stacks[0].forward_parallel(
                x.reshape(B, S * T, d), pos, turns, window, out_idx=out_idx
            )
        else:
            if masked is None:
                idx = (torch.arange(S, device=dev)[:, None] * T + self.enc_pos[None]).reshape(-1)
                xe = x.reshape(B, S * T, d)[:, idx]
                he = self.stacks[0].forward_parallel(xe, idx, idx // T, window)
                idx_b = idx[None].expand(B, -1)
            else:
                keep = ~masked.reshape(B, S * T)
                counts = keep.sum(1)
                if not bool((counts == counts[0]).all()):
                    raise ValueError(
                        "MAE encoder needs the same number of visible tokens per sample"
                    )
                idx_b = keep.nonzero()[:, 1].view(B, int(counts[0]))
                xe = torch.gather(x.reshape(B, S * T, d), 1, idx_b[..., None].expand(-1, -1, d))
                he = self.stacks[0].forward_parallel(xe, idx_b, idx_b // T, window)
            hd = self.decoder_embed(he)
            full = self.decoder_mask_token.expand(B, S * T, d)
            full = full.scatter(1, idx_b[..., None].expand(-1, -1, d), hd)
            full = full + self.pos_dec.repeat(S, 1)
            h = self.stacks[1].forward_parallel(full, pos, turns, window, out_idx=out_idx)
        if self.absolute_positions:
            self._check_window(S)
            out_pos = self.pos_out[: S * T].view(S, T, d)[:, self.am_idx]
        else:
            out_pos = self.pos_out[self.am_idx]
        return h.view(B, S, -1, d) + out_pos

    def empty_cache(self, batch: int = 1, device=None) -> list[torch.Tensor]:
        """Zero KV cache: [k, v] per stack, each [depth, B, heads, (W-1) * T_stack, head_dim]."""
        self._no_cache()
        W = self.config.window_turns
        out = []
        for st, p in zip(self.stacks, self.stack_positions()):
            out += list(st.empty_cache(batch, (W - 1) * len(p), device))
        return out

    def step_rope(self, device=None) -> list[tuple]:
        """Rotary tables for :meth:`backbone_step`, per stack (window-relative positions)."""
        self._no_cache()
        W, T = self.config.window_turns, self.layout.tokens_per_turn
        out = []
        for st, p in zip(self.stacks, self.stack_positions()):
            pos = np.concatenate([s * T + p for s in range(W)])
            cos, sin = rope_tables(pos, st.hd, st.theta, device)
            out.append((cos[-len(p) :], sin[-len(p) :], cos, sin))
        return out

    def backbone_step(
        self,
        x: torch.Tensor,
        cache: list[torch.Tensor],
        valid: torch.Tensor,
        rope: list[tuple] | None = None,
    ):
        """One streaming turn (pure function).

        Args:
            x: [B, T, d] backbone input of the current turn (:meth:`embed_turn`).
            cache: from :meth:`empty_cache` / the previous step: K/V of the last W-1 turns,
                oldest slot first.
            valid: [W-1] bool, which turn slots hold real history (False while the stream is
                short, or to limit the context).
        Returns: (features at the agent-motion tokens [B, F, d], new cache: slots shifted by
        one turn, current turn appended).
        """
        if self.config.attention == "bidirectional":
            raise RuntimeError("bidirectional attention cannot be cached; use kv_cache=False")
        self._no_cache()
        rope = rope if rope is not None else self.step_rope(x.device)
        B, T, d = x.shape
        new_cache: list[torch.Tensor] = []

        def run(si, xs, out_idx=None):
            ck, cv = cache[2 * si], cache[2 * si + 1]
            if ck.shape[1] != B:  # one history shared by a CFG pair
                ck, cv = ck.expand(-1, B, -1, -1, -1), cv.expand(-1, B, -1, -1, -1)
            n = xs.shape[1]
            v = valid.repeat_interleave(n)
            out, k, vv = self.stacks[si].forward_step(xs, ck, cv, v, rope[si], out_idx)
            new_cache.extend(
                [torch.cat([ck, k], 3)[:, :, :, n:], torch.cat([cv, vv], 3)[:, :, :, n:]]
            )
            return out

        if not self.is_mae:
            h = run(0, x, self.am_idx)
        else:
            he = run(0, x[:, self.enc_pos])
            full = self.decoder_mask_token.expand(B, T, d).clone()
            full[:, self.enc_pos] = self.decoder_embed(he)
            h = run(1, full + self.pos_dec, self.am_idx)
        return h + self.pos_out[self.am_idx], new_cache

    # ------------------------------------------------------------------ inference helpers
    def embed_turns(
        self, user_audio, agent_audio, user_motion=None, n_turns: int = 1, uncond: bool = False
    ):
        """Inference embedding of ``n_turns`` turns (agent motion masked everywhere).

        Returns x [B, S, T, d] and, if ``uncond``, the unconditional version in which every
        user token is the null token (for CFG the caller uses it for the current turn only)."""
        x, xu = self.project_turns(user_audio, agent_audio, user_motion, n_turns, uncond)
        return self.embed_window(x), None if xu is None else self.embed_window(xu)

    def project_turns(
        self, user_audio, agent_audio, user_motion=None, n_turns: int = 1, uncond: bool = False
    ):
        """As :meth:`embed_turns`, before positions (:meth:`embed_window` adds them): what a
        stream of an absolute-position model keeps of each past turn."""
        tok = self.build_tokens(user_audio, agent_audio, user_motion, None, n_turns)
        x = self.project(tok, self.am_tok)
        if not uncond:
            return x, None
        tok_u = self.drop_user_tokens(tok, torch.ones_like(tok[..., 0], dtype=torch.bool))
        return x, self.project(tok_u, self.am_tok)

    def sample_motion(
        self,
        z,
        x_T=None,
        step_noise=None,
        z_uncond=None,
        guidance_scale: float | None = None,
        temperature: float | None = None,
    ):
        """z [N, d] -> motion [N, 56]. Noise is explicit (see runtime.sampling_noise.turn_noise)."""
        c = self.config
        g = c.guidance_scale if guidance_scale is None else guidance_scale
        t = c.temperature if temperature is None else temperature
        if g == 1.0:
            z_uncond = None
        return self.denormalize(
            self.head.sample(
                z, x_T, step_noise, t, z_uncond, g, c.guidance_groups, c.guidance_steps
            )
        )

    def set_sampling_steps(self, steps: int) -> None:
        if isinstance(self.head, DiffusionHead):
            self.head.diffusion.set_sampling_steps(steps)

    # ------------------------------------------------------------------ training
    def sample_mask_ratio(self) -> float:
        """Truncated normal, mean 1, std 0.25, on [mask_ratio_min, 1] (drawn with torch RNG)."""
        lo = self.config.mask_ratio_min
        if lo >= 1.0:  # every agent frame masked, as single-pass inference sees them
            return 1.0
        while True:
            r = 1.0 - 0.25 * abs(float(torch.randn(())))
            if r >= lo:
                return r

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """Masked agent-motion loss over a batch of S-turn windows.

        batch: float32 tensors "user_audio" [B, S*F*640], "agent_audio" [B, S*F*640] (16 kHz),
        "user_motion" [B, S*F, 56], "agent_motion" [B, S*F, 56] (exp|jaw|rotation).
        Returns (scalar loss, stats dict of floats: loss, mse, vb (diffusion head), mask_ratio).
        """
        missing = [k for k in BATCH_KEYS if k not in batch]
        if missing:
            raise KeyError(f"training batch lacks {missing}")
        c = self.config
        F, spt = c.frames_per_turn, self.layout.samples_per_turn
        ua, aa = batch["user_audio"], batch["agent_audio"]
        um, am = batch["user_motion"], batch["agent_motion"]
        B = am.shape[0]
        if am.dim() != 3 or am.shape[1] % F or am.shape[2] != MOTION_DIM:
            raise ValueError(f"agent_motion must be [B, S*{F}, 56], got {tuple(am.shape)}")
        S = am.shape[1] // F
        for k, v in (("user_audio", ua), ("agent_audio", aa)):
            if tuple(v.shape) != (B, S * spt):
                raise ValueError(f"{k} must be [B, S*{spt}] = {(B, S * spt)}, got {tuple(v.shape)}")
        if tuple(um.shape) != tuple(am.shape):
            raise ValueError(f"user_motion must be {tuple(am.shape)}, got {tuple(um.shape)}")
        T, dev = self.layout.tokens_per_turn, am.device

        tok = self.build_tokens(ua, aa, um, am, S)
        if self.training and c.cfg_drop_prob > 0:
            tok = self.drop_user_tokens(tok, torch.rand(B, S, T, device=dev) < c.cfg_drop_prob)
        ratio = self.sample_mask_ratio()
        n_am = S * F
        n_mask = min(n_am, int(math.ceil(n_am * ratio)))
        order = torch.rand(B, n_am, device=dev).argsort(1)
        m_am = torch.zeros(B, n_am, dtype=torch.bool, device=dev)
        m_am.scatter_(1, order[:, :n_mask], True)
        masked = torch.zeros(B, S, T, dtype=torch.bool, device=dev)
        masked[:, :, self.am_tok] = m_am.view(B, S, F)
        cut = None
        if self.training and c.stream_train_prob > 0:
            tok, masked, m_am, cut = self._cut_last_turn(batch, tok, masked, m_am, S)
        if self.training and c.user_motion_drop_prob > 0:
            tok, masked = self._without_user_motion(
                tok, masked, torch.rand(B, device=dev) < c.user_motion_drop_prob
            )

        x = self.embed(tok, masked)
        h = self.backbone_parallel(x, masked if self.is_mae else None)
        target = self.normalize(am.reshape(B, n_am, MOTION_DIM))
        loss, parts = self.head.loss(h.reshape(B, n_am, -1)[m_am], target[m_am])
        stats = {"loss": float(loss.detach()), **parts, "mask_ratio": ratio}
        if cut is not None and bool(cut.any()):
            # the cut turns' frames from the cut on (the frames a tick samples)
            sel = torch.zeros(B, S, F, dtype=torch.bool, device=dev)
            sel[:, -1] = cut
            sel = sel.reshape(B, n_am)
            loss_s, _ = self.head.loss(h.reshape(B, n_am, -1)[sel], target[sel])
            w = c.stream_loss_weight
            loss = (1.0 - w) * loss + w * loss_s
            stats.update(loss=float(loss.detach()), loss_stream=float(loss_s.detach()))
        return loss, stats

    def _without_user_motion(self, tok, masked, rows):
        """Windows ``rows`` [B] bool without the partner's motion: its tokens in tok
        [B, S, T, td] the null token and unmasked in masked [B, S, T], as :meth:`_assemble` and
        :meth:`partial_mask` make them when user_motion is None."""
        sel = rows[:, None, None] & (self.tok_kind == KIND["user_motion"])[None, None]
        return torch.where(sel[..., None], self.fake_latent.view(1, 1, 1, -1), tok), masked & ~sel

    def _cut_last_turn(self, batch, tok, masked, m_am, S: int):
        """Streaming training (``stream_train_prob``): the last turn of a random share of the
        windows becomes a turn in progress at a random cut (:meth:`tick_tokens`, ground-truth
        prefix). The earlier turns stay whole: they are the history the stream commits, and
        turn-causal attention keeps them blind to the cut turn. Returns the tokens, the masks,
        the 1-s loss selection without the cut turns, and cut [B, F] bool (the cut turns'
        frames from the cut on)."""
        c, dev = self.config, tok.device
        B, F, spt = tok.shape[0], c.frames_per_turn, self.layout.samples_per_turn
        rows = torch.rand(B, device=dev) < c.stream_train_prob
        shown = torch.randint(0, F, (B,), device=dev)
        ahead = torch.randint(1, c.stream_max_ahead + 1, (B,), device=dev)
        uk = (shown + ahead).clamp_max(F)
        # the agent's own speech: as far as the user's, or (TTS) any further up to the turn's end
        extra = (torch.rand(B, device=dev) * (F - uk + 1).float()).long()
        ak = torch.where(torch.rand(B, device=dev) < 0.5, uk, (uk + extra).clamp_max(F))
        known = torch.stack([uk, ak, shown], 1)
        last = slice((S - 1) * F, S * F)
        prefix = batch["agent_motion"][:, last]
        if c.stream_prefix == "own":
            prefix = self._own_last_turn(tok, masked)
        tok_s, masked_s = self.tick_tokens(
            batch["user_audio"][:, -spt:],
            batch["agent_audio"][:, -spt:],
            batch["user_motion"][:, last],
            prefix,
            known,
        )
        if c.cfg_drop_prob > 0:
            drop = torch.rand(B, 1, tok_s.shape[1], device=dev) < c.cfg_drop_prob
            tok_s = self.drop_user_tokens(tok_s[:, None], drop)[:, 0]
        r = rows[:, None, None]
        tok = torch.cat([tok[:, :-1], torch.where(r, tok_s, tok[:, -1])[:, None]], 1)
        masked = torch.cat(
            [masked[:, :-1], torch.where(rows[:, None], masked_s, masked[:, -1])[:, None]], 1
        )
        m_am = m_am.view(B, S, F).clone()
        m_am[rows, -1] = False
        cut = rows[:, None] & (torch.arange(F, device=dev)[None] >= shown[:, None])
        return tok, masked, m_am.view(B, S * F), cut

    def _own_last_turn(self, tok: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """The model's own sample of the last turn of windows tok [B, S, T, td] -> [B, F, 56]
        (``stream_prefix="own"``): that turn sampled as the 1-s mode samples it (every agent frame
        of it masked; dropout off; no gradient), with noise correlated over frames and held as
        the policy draws it. At run time a tick's prefix is what the robot showed, sampled with
        less of the turn heard; this is the closest cheap stand-in (one extra forward)."""
        from ..runtime.sampling_noise import hold_vector, turn_noise

        c, dev = self.config, tok.device
        B, F = tok.shape[0], c.frames_per_turn
        m = masked.clone()
        m[:, -1, self.am_tok] = True
        steps = getattr(getattr(self.head, "diffusion", None), "num_sampling_steps", 1)
        hold = hold_vector(c.noise_hold_exp)
        # each window's draws as a policy draws a turn's, from a seed of the torch RNG
        draws = [
            turn_noise(
                int(torch.randint(0, 2**62, ())),
                0,
                F,
                steps,
                tau_frames=c.noise_tau_s * FPS,
                hold=hold,
            )
            for _ in range(B)
        ]
        x_T = torch.from_numpy(np.concatenate([d[0] for d in draws], 0)).to(dev)
        step_noise = torch.from_numpy(np.concatenate([d[1] for d in draws], 1)).to(dev)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                z = self.backbone_parallel(self.embed(tok, m))[:, -1].reshape(B * F, -1)
                out = self.sample_motion(z, x_T, step_noise)
        finally:
            self.train(was_training)
        return out.view(B, F, MOTION_DIM)

    def parameter_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups as the reference: no decay on 1-D params, biases and the head."""
        decay, no_decay = [], []
        for n, p in self.named_parameters():
            if not p.requires_grad:
                continue
            if p.ndim <= 1 or n.endswith(".bias") or n.startswith("head."):
                no_decay.append(p)
            else:
                decay.append(p)
        return [
            {"params": no_decay, "weight_decay": 0.0},
            {"params": decay, "weight_decay": weight_decay},
        ]

    def checkpoint_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights to save: all but a frozen wav2vec2 (loaded from its local directory)."""
        sd = self.state_dict()
        if self.config.speech_encoder == "wav2vec2" and not self.config.wav2vec2_finetune:
            sd = {k: v for k, v in sd.items() if not k.startswith("speech_encoder.w2v.")}
        return sd

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def perturb_zero_init(model: TIMAR, std: float = 0.02, seed: int = 0) -> TIMAR:
    """Add N(0, std) noise to the head's zero-initialised weights (AdaLN modulations and the
    output layer). A freshly initialised diffusion head ignores its condition (its output layer
    is zero), so a random checkpoint for tests and benchmarks is perturbed to make its motion
    depend on the inputs."""
    g = torch.Generator().manual_seed(seed)
    for p in model.head.parameters():
        if p.numel() and bool((p == 0).all()):
            p.add_(torch.randn(p.shape, generator=g) * std)
    return model
