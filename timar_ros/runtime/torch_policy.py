"""The torch backend of :class:`~timar_ros.runtime.StreamingPolicy`.

History, two modes (see :class:`~timar_ros.runtime.StreamingPolicy`):

* streaming (``context_turns=None``, the default): every layer attends the last W-1 turns of
  its own input (the turn-causal band), so a turn's receptive field is ``num_blocks * (W-1)``
  past turns. ``kv_cache=True`` keeps per layer the keys/values of the last W-1 turns in
  fixed-size buffers: one turn costs the same at any conversation length. ``kv_cache=False``
  re-encodes the whole receptive field from the input token buffer each turn (equal results;
  for the bidirectional ablation it is the reference's window of the last W turns).
* cropped (``context_turns=n``, the reference's progressive-context protocol): the policy sees
  only the inputs of the last n turns and the current one; each turn encodes that crop afresh
  (n + 1 cached steps from an empty cache, or one parallel pass with ``kv_cache=False``).

A model with learned absolute positions (``positions="learned_absolute"``, the reference's and
imported reference checkpoints) has no exact cache: a turn's position is its slot in the
window, which shifts every turn once the window is full. Such a policy keeps the last W-1 turns'
projected tokens and re-encodes the cropped window every turn, as the reference does
(``kv_cache`` is then False whatever was asked; :attr:`TorchStreamingPolicy.cache_note` says
why). Only the current turn's agent motion is sampled: under single-pass decoding with history
agent motion masked, the reference's re-sampled history rows are discarded unused.
"""

from __future__ import annotations

import numpy as np
import torch

from ..motion import FPS
from .base import StreamingPolicy, check_context_turns, check_guidance_every, noise_options
from .checkpoint import load_checkpoint
from .sampling_noise import check_noise, policy_noise


class TorchStreamingPolicy(StreamingPolicy):
    backend = "torch"

    def __init__(
        self,
        model,
        *,
        seed: int = 0,
        kv_cache: bool = True,
        device: str = "cpu",
        context_turns: int | None = None,
        guidance_scale: float | None = None,
        guidance_every: int | None = None,
        temperature: float | None = None,
        num_sampling_steps: int | None = None,
        noise_tau_s: float | None = None,
        noise_hold_exp: float | None = None,
        audio_norm: str | None = None,
        noise=None,
        show_prefix: bool | None = None,
        model_id: str = "",
        threads: int | None = None,
    ):
        if threads:  # process-wide torch setting; 1 is steadier on a busy 2-core machine
            torch.set_num_threads(int(threads))
        c = model.config
        self.model = model.eval().to(device)
        self.config = c
        self.device = torch.device(device)
        self.seed = int(seed)
        W = c.window_turns
        self.context_turns = check_context_turns(context_turns, W)
        self.crop = self.context_turns is not None
        self.bidirectional = c.attention == "bidirectional"
        self.absolute = model.absolute_positions
        self.cache_note = None
        if kv_cache and self.absolute:
            kv_cache = False
            self.cache_note = (
                "kv_cache off: learned absolute positions shift as the window slides, so "
                "every turn re-encodes its window (as the reference does)"
            )
        if kv_cache and self.bidirectional:
            raise ValueError(
                "a bidirectional-attention model cannot use the KV cache "
                "(past turns would attend future turns); use kv_cache=False"
            )
        self.kv_cache = bool(kv_cache)
        self.guidance_scale = c.guidance_scale if guidance_scale is None else float(guidance_scale)
        self.guidance_every = check_guidance_every(c, guidance_every)
        self.temperature = c.temperature if temperature is None else float(temperature)
        self.noise_tau_s, self.noise_hold_exp, self._hold = noise_options(
            c, noise_tau_s, noise_hold_exp
        )
        self.noise = check_noise(noise)
        self.show_prefix = c.show_prefix if show_prefix is None else bool(show_prefix)
        self._init_audio_norm(c, audio_norm)
        if num_sampling_steps is not None:
            model.set_sampling_steps(int(num_sampling_steps))
        self.num_sampling_steps = int(num_sampling_steps or c.num_sampling_steps)
        self.frames_per_turn = c.frames_per_turn
        self.samples_per_turn = c.samples_per_turn
        self.model_id = model_id or f"unsaved-{c.preset or 'model'}"
        self._rope = model.step_rope(self.device) if self.kv_cache else None
        # history turns kept as input embeddings for re-encoding (the crop, or the band's
        # receptive field)
        if self.crop:
            self._reencode_turns = self.context_turns
        elif self.bidirectional or self.absolute:
            self._reencode_turns = W - 1
        else:
            self._reencode_turns = model.receptive_turns(W - 1)
        self.reset()

    @classmethod
    def from_checkpoint(
        cls,
        path,
        backend: str = "torch",
        device: str = "cpu",
        seed: int = 0,
        kv_cache: bool = True,
        **options,
    ) -> TorchStreamingPolicy:
        if backend != "torch":
            return StreamingPolicy.from_checkpoint(path, backend, device, seed, kv_cache, **options)
        model, mid = load_checkpoint(path, device)
        return cls(model, seed=seed, kv_cache=kv_cache, device=device, model_id=mid, **options)

    @classmethod
    def from_model(cls, model, **kw) -> TorchStreamingPolicy:
        return cls(model, **kw)

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        self.turn_index = 0
        self.history_turns = 0
        self._cache = self.model.empty_cache(1, self.device) if self.kv_cache else None
        self._buffer: list[torch.Tensor] = []
        self._reset_audio_norm()
        self._reset_turn()

    def _save_state(self):
        return (self.turn_index, self.history_turns, self._cache, list(self._buffer))

    def _restore_state(self, state) -> None:
        self.turn_index, self.history_turns, self._cache, self._buffer = (
            state[0],
            state[1],
            state[2],
            list(state[3]),
        )

    def _valid(self, hist: int) -> torch.Tensor:
        W = self.config.window_turns
        v = torch.zeros(W - 1, dtype=torch.bool, device=self.device)
        if hist:
            v[W - 1 - hist :] = True
        return v

    def _noise(self, n_turns: int, first: int):
        x, s = policy_noise(
            self.noise,
            self.seed,
            n_turns,
            self.frames_per_turn,
            self.num_sampling_steps,
            first,
            tau_frames=self.noise_tau_s * FPS,
            hold=self._hold,
        )
        return torch.from_numpy(x).to(self.device), torch.from_numpy(s).to(self.device)

    # ------------------------------------------------------------------ streaming
    @torch.inference_mode()
    def step(self, user_audio, agent_audio, user_motion=None) -> np.ndarray:
        """One turn: float32 16 kHz user/agent audio [samples_per_turn], optional user motion
        [F, 56] -> agent motion [F, 56] float32 (exp|jaw|rotation)."""
        self._check_no_turn_in_progress()
        ua, aa, um = self.check_turn(user_audio, agent_audio, user_motion)
        ua, aa = self.normalize_audio(ua, aa)
        m, dev = self.model, self.device
        cfg = self.guidance_scale != 1.0
        embed = m.project_turns if self.absolute else m.embed_turns
        x, xu = embed(
            torch.from_numpy(ua)[None].to(dev),
            torch.from_numpy(aa)[None].to(dev),
            None if um is None else torch.from_numpy(um)[None].to(dev),
            1,
            uncond=cfg,
        )
        W = self.config.window_turns
        h_u = None
        if self.kv_cache and not self.crop:
            hist = min(self.turn_index, W - 1)
            xin = torch.cat([x[:, 0], xu[:, 0]]) if cfg else x[:, 0]
            h, cache = m.backbone_step(xin, self._cache, self._valid(hist), self._rope)
            self._cache = [c[:, :1] for c in cache] if cfg else cache
            h_c = h[:1]
            if cfg:
                h_u = h[1:]
        elif self.kv_cache:  # the crop, encoded from an empty cache
            R = self._reencode_turns
            buf = self._buffer[-R:] if R else []
            cache = m.empty_cache(1, dev)
            for i, xb in enumerate(buf):
                _, cache = m.backbone_step(xb[:, 0], cache, self._valid(i), self._rope)
            hist = len(buf)
            xin = torch.cat([x[:, 0], xu[:, 0]]) if cfg else x[:, 0]
            h, _ = m.backbone_step(xin, cache, self._valid(hist), self._rope)
            h_c = h[:1]
            if cfg:
                h_u = h[1:]
            self._buffer = (buf + [x])[-R:] if R else []
        else:  # the buffered turns re-encoded (absolute positions: the window's turn slots)
            R = self._reencode_turns
            buf = self._buffer[-R:] if R else []

            def encode(turns):
                xs = torch.cat(turns, 1)
                return m.backbone_parallel(m.embed_window(xs) if self.absolute else xs)[:, -1]

            h_c = encode(buf + [x])
            if cfg:  # history as is, the current turn's user tokens null (the reference)
                h_u = encode(buf + [xu])
            self._buffer = (buf + [x])[-R:] if R else []
            hist = len(buf) if (self.crop or self.bidirectional) else min(len(buf), W - 1)
        z = h_c[0]
        z_u = None if h_u is None else h_u[0]
        x_T, sn = self._noise(1, self.turn_index)
        motion = m.sample_motion(z, x_T, sn, z_u, self.guidance_scale, self.temperature)
        self.history_turns = hist
        self.turn_index += 1
        return motion.float().cpu().numpy()

    # ------------------------------------------------------------------ inside the turn
    def _check_tick_support(self) -> None:
        if self.absolute:
            raise ValueError(
                "streaming inside the turn needs the KV cache: a model with learned absolute "
                "positions re-encodes its whole window (up to window_turns turns of tokens) per "
                "run, so every tick would cost that; use the 1-s mode (tick_s = 1) with it"
            )
        if not self.kv_cache or self.crop:
            raise ValueError(
                "streaming inside the turn runs over the full streamed history's KV cache: use "
                "kv_cache=True and context_turns=None (the crop and re-encoding modes are for "
                "the 1-s mode's evaluation)"
            )

    def _as_tensor(self, a):
        return (
            None if a is None else torch.from_numpy(np.ascontiguousarray(a))[None].to(self.device)
        )

    @torch.inference_mode()
    def _tick(self, user_audio, agent_audio, user_motion, known, frames, x_T, step_noise):
        m = self.model
        cfg = self.guidance_scale != 1.0
        due = cfg and self._uncond_due()
        x, xu = m.embed_tick(
            self._as_tensor(user_audio),
            self._as_tensor(agent_audio),
            self._as_tensor(user_motion),
            self._as_tensor(self._prefix),
            torch.from_numpy(known).to(self.device),
            uncond=due,
        )
        hist = min(self.turn_index, self.config.window_turns - 1)
        xin = torch.cat([x, xu]) if due else x
        h, _ = m.backbone_step(xin, self._cache, self._valid(hist), self._rope)
        if due:
            self._uncond_h = h[1]
        z = h[0, frames]
        z_u = self._uncond_h[frames] if cfg else None
        motion = m.sample_motion(
            z,
            torch.from_numpy(x_T).to(self.device),
            torch.from_numpy(step_noise).to(self.device),
            z_u,
            self.guidance_scale,
            self.temperature,
        )
        return motion.float().cpu().numpy()

    @torch.inference_mode()
    def _commit(self, user_audio, agent_audio, user_motion) -> None:
        m = self.model
        x, _ = m.embed_turns(
            self._as_tensor(user_audio), self._as_tensor(agent_audio), self._as_tensor(user_motion)
        )
        hist = min(self.turn_index, self.config.window_turns - 1)
        _, self._cache = m.backbone_step(x[:, 0], self._cache, self._valid(hist), self._rope)
        self.history_turns = hist
        self.turn_index += 1

    @torch.inference_mode()
    def run_offline(self, user_audio, agent_audio, user_motion=None) -> np.ndarray:
        """A whole conversation (N turns) -> [N*F, 56], equal to a fresh stream with the same
        seed. Uses the parallel training-path forward (turn-causal band, no CFG, no crop);
        otherwise steps a fresh stream. Does not change this policy's stream state."""
        if self.bidirectional or self.guidance_scale != 1.0 or self.crop or self.absolute:
            return super().run_offline(user_audio, agent_audio, user_motion)
        ua, aa, um, n = self.check_conversation(user_audio, agent_audio, user_motion)
        if n == 0:
            return np.zeros((0, 56), np.float32)
        spt = self.samples_per_turn
        ua = self._audio_norms[0].conversation(ua, spt)
        aa = self._audio_norms[1].conversation(aa, spt)
        m, dev = self.model, self.device
        x, _ = m.embed_turns(
            torch.from_numpy(ua)[None].to(dev),
            torch.from_numpy(aa)[None].to(dev),
            None if um is None else torch.from_numpy(um)[None].to(dev),
            n,
        )
        h = m.backbone_parallel(x)
        z = h[0].reshape(n * self.frames_per_turn, -1)
        x_T, sn = self._noise(n, 0)
        motion = m.sample_motion(z, x_T, sn, None, 1.0, self.temperature)
        return motion.float().cpu().numpy()
