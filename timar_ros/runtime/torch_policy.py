"""The torch backend of :class:`~timar_ros.runtime.StreamingPolicy`.

``kv_cache=True``: per layer, the keys/values of the last W-1 turns in fixed-size buffers; one
turn costs the same at any conversation length. ``kv_cache=False``: every turn re-encodes its
whole receptive field from the input token buffer (for the turn-causal band this is
``num_blocks * context_turns`` past turns, so the result equals the cached stream exactly; for
the bidirectional ablation it is the reference's window of the last W turns).
"""

from __future__ import annotations

import numpy as np
import torch

from .base import StreamingPolicy
from .checkpoint import load_checkpoint
from .sampling_noise import conversation_noise


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
        temperature: float | None = None,
        num_sampling_steps: int | None = None,
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
        self.context_turns = W - 1 if context_turns is None else int(context_turns)
        if not 0 <= self.context_turns <= W - 1:
            raise ValueError(f"context_turns must be in 0..{W - 1} (window_turns - 1)")
        self.bidirectional = c.attention == "bidirectional"
        if kv_cache and self.bidirectional:
            raise ValueError(
                "a bidirectional-attention model cannot use the KV cache "
                "(past turns would attend future turns); use kv_cache=False"
            )
        self.kv_cache = bool(kv_cache)
        self.guidance_scale = c.guidance_scale if guidance_scale is None else float(guidance_scale)
        self.temperature = c.temperature if temperature is None else float(temperature)
        if num_sampling_steps is not None:
            model.set_sampling_steps(int(num_sampling_steps))
        self.num_sampling_steps = int(num_sampling_steps or c.num_sampling_steps)
        self.frames_per_turn = c.frames_per_turn
        self.samples_per_turn = c.samples_per_turn
        self.model_id = model_id or f"unsaved-{c.preset or 'model'}"
        self._rope = model.step_rope(self.device) if self.kv_cache else None
        # history turns kept as input embeddings for re-encoding
        self._reencode_turns = (
            self.context_turns if self.bidirectional else model.receptive_turns(self.context_turns)
        )
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
        x, s = conversation_noise(
            self.seed, n_turns, self.frames_per_turn, self.num_sampling_steps, first
        )
        return torch.from_numpy(x).to(self.device), torch.from_numpy(s).to(self.device)

    # ------------------------------------------------------------------ streaming
    @torch.inference_mode()
    def step(self, user_audio, agent_audio, user_motion=None) -> np.ndarray:
        """One turn: float32 16 kHz user/agent audio [samples_per_turn], optional user motion
        [F, 56] -> agent motion [F, 56] float32 (exp|jaw|rotation)."""
        ua, aa, um = self.check_turn(user_audio, agent_audio, user_motion)
        m, dev = self.model, self.device
        cfg = self.guidance_scale != 1.0
        x, xu = m.embed_turns(
            torch.from_numpy(ua)[None].to(dev),
            torch.from_numpy(aa)[None].to(dev),
            None if um is None else torch.from_numpy(um)[None].to(dev),
            1,
            uncond=cfg,
        )
        hist = min(self.turn_index, self.context_turns)
        h_u = None
        if self.kv_cache:
            xin = torch.cat([x[:, 0], xu[:, 0]]) if cfg else x[:, 0]
            h, cache = m.backbone_step(xin, self._cache, self._valid(hist), self._rope)
            self._cache = [c[:, :1] for c in cache] if cfg else cache
            h_c = h[:1]
            if cfg:
                h_u = h[1:]
        else:
            R = self._reencode_turns
            buf = self._buffer[-R:] if R else []
            h_c = m.backbone_parallel(torch.cat(buf + [x], 1), None, self.context_turns)[:, -1]
            if cfg:
                h_u = m.backbone_parallel(torch.cat(buf + [xu], 1), None, self.context_turns)[:, -1]
            self._buffer = (buf + [x])[-R:] if R else []
            hist = min(len(buf), self.context_turns) if not self.bidirectional else len(buf)
        z = h_c[0]
        z_u = None if h_u is None else h_u[0]
        x_T, sn = self._noise(1, self.turn_index)
        motion = m.sample_motion(z, x_T, sn, z_u, self.guidance_scale, self.temperature)
        self.history_turns = hist
        self.turn_index += 1
        return motion.float().cpu().numpy()

    @torch.inference_mode()
    def run_offline(self, user_audio, agent_audio, user_motion=None) -> np.ndarray:
        """A whole conversation (N turns) -> [N*F, 56], equal to a fresh stream with the same
        seed. Uses the parallel training-path forward (turn-causal band, no CFG); otherwise
        falls back to stepping a fresh stream. Does not change this policy's stream state."""
        if self.bidirectional or self.guidance_scale != 1.0:
            return super().run_offline(user_audio, agent_audio, user_motion)
        ua, aa, um, n = self.check_conversation(user_audio, agent_audio, user_motion)
        if n == 0:
            return np.zeros((0, 56), np.float32)
        m, dev = self.model, self.device
        x, _ = m.embed_turns(
            torch.from_numpy(ua)[None].to(dev),
            torch.from_numpy(aa)[None].to(dev),
            None if um is None else torch.from_numpy(um)[None].to(dev),
            n,
        )
        h = m.backbone_parallel(x, None, self.context_turns)
        z = h[0].reshape(n * self.frames_per_turn, -1)
        x_T, sn = self._noise(n, 0)
        motion = m.sample_motion(z, x_T, sn, None, 1.0, self.temperature)
        return motion.float().cpu().numpy()
