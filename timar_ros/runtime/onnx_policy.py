"""The onnxruntime backend of :class:`~timar_ros.runtime.StreamingPolicy` (no PyTorch).

Runs the graphs written by ``timar export`` (see :mod:`timar_ros.runtime.export`): per turn, one
embedding graph (with or without user motion), the backbone step with the rolling KV cache of
the last W-1 turns (or, with ``context_turns=n``, the crop of the last n turns encoded from an
empty cache each turn), and the diffusion sampler fed with the same noise as the torch backend
(:func:`timar_ros.runtime.sampling_noise.turn_noise`), so both backends produce the same motion
up to float rounding (~1e-5, see test/runtime/test_onnx_policy.py).

Imports only numpy, onnxruntime and torch-free timar_ros modules.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .base import StreamingPolicy, check_context_turns, check_guidance_every, noise_options
from .checkpoint import CheckpointError
from .checkpoint import model_id as checkpoint_model_id
from .onnx_format import FIX as _FIX
from .onnx_format import GRAPHS, MANIFEST, find_export, read_manifest
from .sampling_noise import check_noise


def rope_tables_np(positions, head_dim: int, theta: float):
    """cos, sin [L, head_dim] float32 for integer token ``positions`` (absolute, any size): the
    angles are reduced modulo 2 pi in float64, so they stay exact in long conversations. Same
    layout as :func:`timar_ros.model.backbone.rope_tables`. numpy only (used by the runtime)."""
    inv = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    ang = np.mod(np.asarray(positions, dtype=np.float64)[:, None] * inv[None], 2 * np.pi)
    ang = np.concatenate([ang, ang], axis=1)
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def default_threads() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def session_options(threads: int | None = None, spin: bool = False) -> ort.SessionOptions:
    """ORT session options for a small, shared CPU. Measured on the 2-core development machine
    (robot preset, ms per turn p50 (p99); quiet / with one busy-loop process beside it):

    ==========================  ============  ============
    intra-op threads, spinning   quiet         1 busy loop
    ==========================  ============  ============
    1, off                       20.1 (21.2)   19.8 (26.8)
    2, off (default)             15.3 (15.9)   17.8 (32.4)
    1, on                        20.2 (20.6)   21.6 (24.9)
    2, on (ORT's default)        36.6 (44.8)   57.9 (73.0)
    ==========================  ============  ============

    (With several other jobs on the machine, load 3-7, 1 thread fell to 50-70 ms p50 while 2
    threads stayed at 19-54 ms.)

    * ``intra_op_num_threads`` = ``threads`` (default: 2, or the core count if smaller).
    * ``allow_spinning`` off: spinning worker threads steal the core that other processes (the
      ROS nodes, audio) need, and each other's; the same effect as OpenMP's active wait in torch.
    * ``inter_op_num_threads`` = 1 with sequential execution: the graphs are chains.
    * graph optimisation level ORT_ENABLE_ALL (constant folding, fused GELU/LayerNorm/MatMul).
    """
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = int(threads) if threads else default_threads()
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "1" if spin else "0")
    return so


class OnnxStreamingPolicy(StreamingPolicy):
    """Streaming TIMAR on onnxruntime; same ``step``/``reset``/``run_offline`` API as the torch
    backend. Always uses the KV cache."""

    backend = "onnx"
    kv_cache = True  # the ONNX runtime always streams with its cache

    def __init__(
        self,
        export_dir,
        *,
        checkpoint=None,
        seed: int = 0,
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
        threads: int | None = None,
        spin: bool = False,
        verify: bool = True,
    ):
        from ..model.config import TIMARConfig

        self.export_dir = Path(export_dir)
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        fix = _FIX.format(ckpt=self.checkpoint or "CHECKPOINT")
        m = read_manifest(self.export_dir, self.checkpoint)
        self.manifest = m
        try:
            c = TIMARConfig.from_dict(m["config"])
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"{self.export_dir / MANIFEST}: bad config ({exc}); {fix}"
            ) from exc
        if self.checkpoint is not None:
            from .checkpoint import load_checkpoint_config

            ck_cfg = load_checkpoint_config(self.checkpoint)
            mid = checkpoint_model_id(self.checkpoint)
            if mid != m.get("model_id") or ck_cfg.to_dict() != c.to_dict():
                raise CheckpointError(
                    f"{self.export_dir}: the ONNX export is of model {m.get('model_id')}, but "
                    f"{self.checkpoint} holds {mid}"
                    + ("" if ck_cfg.to_dict() == c.to_dict() else " (configs differ)")
                    + f": the export is stale; {fix}"
                )
        self.config = c
        self.model_id = m.get("model_id", "")
        self.seed = int(seed)
        W = c.window_turns
        self.context_turns = check_context_turns(context_turns, W)
        self.crop = self.context_turns is not None
        self.guidance_scale = c.guidance_scale if guidance_scale is None else float(guidance_scale)
        self.guidance_every = check_guidance_every(c, guidance_every)
        self.temperature = c.temperature if temperature is None else float(temperature)
        self.noise_tau_s, self.noise_hold_exp, self._hold = noise_options(
            c, noise_tau_s, noise_hold_exp
        )
        self.noise = check_noise(noise)
        self.show_prefix = c.show_prefix if show_prefix is None else bool(show_prefix)
        self._init_audio_norm(c, audio_norm)
        self.num_sampling_steps = int(m["num_sampling_steps"])
        if num_sampling_steps is not None and int(num_sampling_steps) != self.num_sampling_steps:
            raise ValueError(
                f"num_sampling_steps={num_sampling_steps}, but the export at {self.export_dir} "
                f"samples with {self.num_sampling_steps} steps; re-export with "
                f"`timar export {self.checkpoint or 'CHECKPOINT'} --num-sampling-steps "
                f"{num_sampling_steps}` or use that value"
            )
        self.frames_per_turn = c.frames_per_turn
        self.samples_per_turn = c.samples_per_turn
        self.threads = int(threads) if threads else default_threads()
        so = session_options(threads, spin)
        self._sess = {}
        for name in GRAPHS:
            entry = m["graphs"][name]
            f = self.export_dir / entry["file"]
            try:
                blob = f.read_bytes()
            except OSError as exc:
                raise CheckpointError(f"{f}: cannot read ONNX graph ({exc}); {fix}") from exc
            if verify and hashlib.sha256(blob).hexdigest() != entry["sha256"]:
                raise CheckpointError(
                    f"{f}: sha256 does not match {MANIFEST} (file changed or corrupt); {fix}"
                )
            self._sess[name] = ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])
        self._cache_names = list(m["cache"])
        self._cache_out = [f"new_{n}" for n in self._cache_names]
        bb_in = m["graphs"]["backbone_step"]["inputs"]
        self._cache_shapes = [tuple(bb_in[n]["shape"]) for n in self._cache_names]
        r = m["rope"]
        self._rope_names = list(r["names"])
        self._rope_pos = [np.asarray(p, dtype=np.int64) for p in r["positions"]]
        self._rope_args = (int(r["head_dim"]), float(r["theta"]))
        self._rope_memo: tuple[int, list[np.ndarray]] = (-1, [])
        self.reset()

    @classmethod
    def from_checkpoint(
        cls,
        path,
        backend: str = "onnx",
        device: str = "cpu",
        seed: int = 0,
        kv_cache: bool = True,
        export_dir=None,
        **options,
    ) -> OnnxStreamingPolicy:
        """``path``: a checkpoint folder (uses ``path/onnx`` or ``export_dir``) or an export
        folder. Options: context_turns, temperature, noise_tau_s, noise_hold_exp,
        num_sampling_steps (must match the export), guidance_scale, guidance_every, threads, spin,
        verify (sha256 checks)."""
        if backend != "onnx":
            return StreamingPolicy.from_checkpoint(path, backend, device, seed, kv_cache, **options)
        if str(device) != "cpu":
            raise ValueError(
                f"device={device!r}: the onnx backend runs on the CPU; use "
                "device='cpu' or backend='torch'"
            )
        if not kv_cache:
            raise ValueError(
                "the onnx backend always uses the KV cache (the re-encoding "
                "baseline exists only in the torch backend); use kv_cache=True "
                "or backend='torch'"
            )
        if export_dir is not None:
            ed, ck = Path(export_dir), Path(path)
            if not (ed / MANIFEST).is_file():
                raise CheckpointError(f"{ed}: no {MANIFEST}; " + _FIX.format(ckpt=ck))
        else:
            ed, ck = find_export(path)
        return cls(ed, checkpoint=ck, seed=seed, **options)

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        # fresh buffers (never cleared in place: _save_state keeps references to the old ones)
        self.turn_index = 0
        self.history_turns = 0
        self._cache = self._empty_cache()
        self._buffer: list[np.ndarray] = []  # the crop's past turn inputs
        self._reset_audio_norm()
        self._reset_turn()

    def _empty_cache(self) -> list[np.ndarray]:
        return [np.zeros(s, np.float32) for s in self._cache_shapes]

    def _save_state(self):
        return (self.turn_index, self.history_turns, list(self._cache), list(self._buffer))

    def _restore_state(self, state) -> None:
        self.turn_index, self.history_turns = state[0], state[1]
        self._cache, self._buffer = list(state[2]), list(state[3])

    def _valid(self, index: int, hist: int) -> np.ndarray:
        """Ring slots (turn u in slot u mod (W-1)) of the ``hist`` turns before turn ``index``."""
        slots = self.config.window_turns - 1
        v = np.zeros(slots, dtype=bool)
        for u in range(index - hist, index):
            v[u % slots] = True
        return v

    def _rope(self, index: int) -> list[np.ndarray]:
        # a turn's ticks, their unconditional runs and its commit share the tables
        if self._rope_memo[0] != index:
            T = self.config.tokens_per_turn
            out = []
            for p in self._rope_pos:
                out += rope_tables_np(p + index * T, *self._rope_args)
            self._rope_memo = (index, out)
        return self._rope_memo[1]

    def _backbone(
        self, x: np.ndarray, cache: list[np.ndarray], index: int, hist: int, commit: bool = True
    ):
        """Turn ``index`` (its position) through the backbone step over ``cache``, which is
        updated in place (the new turn replaces the one leaving the window) if ``commit``;
        -> h [1, F, d]."""
        bb = {"x": x, "valid": self._valid(index, hist)}
        bb.update(zip(self._rope_names, self._rope(index)))
        bb.update(zip(self._cache_names, cache))
        if not commit:  # a tick: the turn in progress attends the history, changes nothing
            return self._sess["backbone_step"].run(["h"], bb)[0]
        out = self._sess["backbone_step"].run(["h"] + self._cache_out, bb)
        slot = index % (self.config.window_turns - 1)
        for buf, kv in zip(cache, out[1:]):  # [1, heads, tokens, head_dim] per layer
            n = kv.shape[2]
            buf[:, :, slot * n : (slot + 1) * n] = kv
        return out[0]

    # ------------------------------------------------------------------ streaming
    def step(self, user_audio, agent_audio, user_motion=None) -> np.ndarray:
        """One turn: float32 16 kHz user/agent audio [samples_per_turn], optional user motion
        [F, 56] -> agent motion [F, 56] float32 (exp|jaw|rotation)."""
        self._check_no_turn_in_progress()
        ua, aa, um = self.check_turn(user_audio, agent_audio, user_motion)
        ua, aa = self.normalize_audio(ua, aa)
        x, xu = self._embed("embed", {"user_audio": ua[None], "agent_audio": aa[None]}, um)
        if self.crop:  # the last n turns' inputs, encoded from an empty cache (positions
            # relative to the crop: rotary attention depends only on distances)
            n = self.context_turns
            buf = self._buffer[-n:] if n else []
            cache = self._empty_cache()
            for i, xb in enumerate(buf):
                self._backbone(xb, cache, i, i)
            hist = len(buf)
            index = hist
            self._buffer = (buf + [x])[-n:] if n else []
        else:
            hist = min(self.turn_index, self.config.window_turns - 1)
            cache, index = self._cache, self.turn_index
        # the unconditional run first: committing the turn overwrites the slot of the turn
        # leaving the window, which this turn still attends
        hu = None if xu is None else self._backbone(xu, cache, index, hist, commit=False)
        h = self._backbone(x, cache, index, hist)
        x_T, sn = self._draw_turn_noise()
        motion = self._sample(h[0], x_T, sn, None if hu is None else hu[0])
        self.history_turns = hist
        self.turn_index += 1
        return motion

    def _embed(self, graph: str, feeds: dict, user_motion, uncond: bool = True):
        """The ``graph``_null or ``graph``_motion export (user motion absent: its null token)
        -> backbone input [1, T, d], and its unconditional version when guidance samples and
        ``uncond`` asks for it (else None)."""
        if user_motion is not None:
            graph, feeds = f"{graph}_motion", {**feeds, "user_motion": user_motion[None]}
        else:
            graph = f"{graph}_null"
        if not uncond or self.guidance_scale == 1.0:
            return self._sess[graph].run(["x"], feeds)[0], None
        x, xu = self._sess[graph].run(["x", "x_uncond"], feeds)
        return x, xu

    def _sample(self, z, x_T, step_noise, z_uncond=None) -> np.ndarray:
        """z [N, d] (and z_uncond [N, d] with guidance) -> motion [N, 56]."""
        if self.temperature != 1.0:
            step_noise = step_noise * np.float32(self.temperature)
        feeds = {"z": np.ascontiguousarray(z), "x_T": np.ascontiguousarray(x_T)}
        feeds["step_noise"] = np.ascontiguousarray(step_noise)
        if z_uncond is None:
            return self._sess["sample"].run(None, feeds)[0]
        feeds["z_uncond"] = np.ascontiguousarray(z_uncond)
        feeds["guidance"] = np.asarray(self.guidance_scale, np.float32)
        return self._sess["sample_cfg"].run(None, feeds)[0]

    # ------------------------------------------------------------------ inside the turn
    def _check_tick_support(self) -> None:
        if self.crop:
            raise ValueError(
                "streaming inside the turn runs over the full streamed history's KV cache: use "
                "context_turns=None (the crop is for the 1-s mode's evaluation)"
            )

    def _tick(self, user_audio, agent_audio, user_motion, known, frames, x_T, step_noise):
        feeds = {
            "user_audio": user_audio[None],
            "agent_audio": agent_audio[None],
            "agent_prefix": self._prefix[None],
            "known": known,
        }
        x, xu = self._embed("embed_tick", feeds, user_motion, uncond=self._uncond_due())
        hist = min(self.turn_index, self.config.window_turns - 1)
        h = self._backbone(x, self._cache, self.turn_index, hist, commit=False)
        if xu is not None:
            self._uncond_h = self._backbone(xu, self._cache, self.turn_index, hist, commit=False)[0]
        hu = None if self.guidance_scale == 1.0 else self._uncond_h[frames]
        return self._sample(h[0, frames], x_T, step_noise, hu)

    def _commit(self, user_audio, agent_audio, user_motion) -> None:
        feeds = {"user_audio": user_audio[None], "agent_audio": agent_audio[None]}
        x, _ = self._embed("embed", feeds, user_motion, uncond=False)  # the history: no sampling
        hist = min(self.turn_index, self.config.window_turns - 1)
        self._backbone(x, self._cache, self.turn_index, hist)
        self.history_turns = hist
        self.turn_index += 1


__all__ = [
    "OnnxStreamingPolicy",
    "session_options",
    "find_export",
    "read_manifest",
    "rope_tables_np",
]
