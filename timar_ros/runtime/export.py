"""The per-turn streaming step as ONNX graphs (`timar export CKPT [OUT_DIR]`).

Seven single-file graphs (``external_data=False``), written to ``OUT_DIR`` (default
``CKPT/onnx``), run by :class:`timar_ros.runtime.onnx_policy.OnnxStreamingPolicy`:

* ``embed_motion.onnx``: user_audio [1, S], agent_audio [1, S], user_motion [1, F, 56] ->
  x [1, T, d], the backbone input of one turn (speech encoding + motion/delimiter tokens), and
  x_uncond [1, T, d], its classifier-free guidance version (every user token the null token;
  the projection of tokens already encoded, so nearly free when guidance is off).
* ``embed_null.onnx``: the same without user motion: its tokens are the learned null token, as
  the torch backend does when ``user_motion`` is None.
* ``embed_tick_motion.onnx`` / ``embed_tick_null.onnx``: a turn in progress (streaming inside
  the turn, :meth:`timar_ros.model.timar.TIMAR.embed_tick`): the same inputs plus
  agent_prefix [1, F, 56] (the frames already shown) and known [1, 3] int64 (user frames heard,
  agent frames heard, frames shown) -> x [1, T, d] and x_uncond [1, T, d].
* ``backbone_step.onnx``: x [1, T, d], ``valid`` [W-1] bool (which history slots hold turns
  to attend: False while the stream is short or to limit the context), the rotary tables of the
  current turn's absolute token positions (``rope_cos<s>``/``rope_sin<s>`` [T_stack, head_dim]
  per stack) and the KV cache of the last W-1 turns (``cache_k<s>_<l>``/``cache_v<s>_<l>``
  ``[1, heads, (W-1)*T_stack, head_dim]`` per stack s and layer l: one input per layer, as a
  stacked input would be copied apart in every step) -> features at the agent-motion tokens
  [1, F, d] and the current turn's keys/values ``new_cache_k<s>_<l>``/``new_cache_v<s>_<l>``
  ``[1, heads, T_stack, head_dim]``. The cache is a ring buffer: turn u lives in slot
  u mod (W-1) and the runtime writes the new turn over the slot of the turn leaving the window.
  Keys are cached already rotated at their absolute positions (angles reduced mod 2 pi in
  float64 by :func:`timar_ros.runtime.onnx_policy.rope_tables_np`, so exact at any
  conversation length); attention scores depend only on position differences, so this equals
  the model's ``backbone_step`` (which re-rotates the whole window each turn and shifts the
  cache) while rotating and copying only the current turn: 13.4 instead of 16 ms per turn for
  the robot preset on this CPU.
* ``sample.onnx``: z [N, d], x_T [N, 56], step_noise [steps, N, 56] -> motion [N, 56] for any
  N in 1..F (a tick samples only its block): the respaced DDPM sampler with its noise as
  inputs (temperature is applied by the runtime by scaling ``step_noise``).
* ``sample_cfg.onnx``: the same with classifier-free guidance: z and z_uncond [N, d] (the
  backbone run on x and on x_uncond), x_T, step_noise, guidance [] -> motion [N, 56]; the
  config's ``guidance_groups`` and ``guidance_steps`` are built in. A graph of its own, so a
  model sampled without guidance pays nothing for it.

``manifest.json`` records the config, the input/output names and shapes, the opset, the sha256
of every ``.onnx`` file and the source checkpoint's ``model_id``; the runtime checks all of it.
Exporting needs torch + onnxscript (dynamo exporter); running the result needs neither.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from pathlib import Path

from timar_ros.files import write_json
from timar_ros.runtime.onnx_format import (
    DEFAULT_SUBDIR,
    FORMAT_VERSION,
    MANIFEST,
    OPSET,
    export_status,
    sha256_file,
)


def _wrappers(model):
    """torch modules whose forward is one exported graph (inputs as listed in the manifest)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from timar_ros.model.backbone import apply_rope

    class EmbedMotion(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, user_audio, agent_audio, user_motion):
            x, xu = self.m.embed_turns(user_audio, agent_audio, user_motion, 1, uncond=True)
            return x[:, 0], xu[:, 0]

    class EmbedNull(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, user_audio, agent_audio):
            x, xu = self.m.embed_turns(user_audio, agent_audio, None, 1, uncond=True)
            return x[:, 0], xu[:, 0]

    class EmbedTickMotion(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, user_audio, agent_audio, user_motion, agent_prefix, known):
            return self.m.embed_tick(
                user_audio, agent_audio, user_motion, agent_prefix, known, uncond=True
            )

    class EmbedTickNull(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, user_audio, agent_audio, agent_prefix, known):
            return self.m.embed_tick(
                user_audio, agent_audio, None, agent_prefix, known, uncond=True
            )

    class BackboneStep(nn.Module):
        """The backbone of one turn over a ring-buffer KV cache (see module docstring)."""

        def __init__(self, m):
            super().__init__()
            self.m = m

        def _stack(self, si, xs, valid, cos, sin, ck, cv, out_idx=None):
            st = self.m.stacks[si]
            n = xs.shape[1]
            key_mask = torch.cat(
                [valid.repeat_interleave(n), torch.ones(n, dtype=torch.bool, device=xs.device)]
            )[None]
            # additive, not boolean: a boolean mask exports with a guard for rows that mask
            # every key (IsNaN + Where over every score, 9 % of the step); here the turn's own
            # keys are always visible
            key_mask = torch.zeros(key_mask.shape, dtype=xs.dtype).masked_fill(
                ~key_mask, float("-inf")
            )
            ks, vs = [], []
            for i, blk in enumerate(st.blocks):
                q, k, v = blk._qkv(xs)
                q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
                ka, va = torch.cat([ck[i], k], 2), torch.cat([cv[i], v], 2)
                if out_idx is not None and i == len(st.blocks) - 1:
                    q, xs = q[:, :, out_idx], xs[:, out_idx]
                a = F.scaled_dot_product_attention(q, ka, va, attn_mask=key_mask)
                xs = blk._out(xs, a)
                ks.append(k)
                vs.append(v)
            return st.norm(xs), ks, vs

        def forward(self, x, valid, *rest):
            m = self.m
            n_st = len(m.stacks)
            rope, flat = rest[: 2 * n_st], rest[2 * n_st :]
            cache, i = [], 0  # per stack: k, v as lists of layers (the order of cache_names)
            for st in m.stacks:
                for _ in ("k", "v"):
                    cache.append(flat[i : i + len(st.blocks)])
                    i += len(st.blocks)
            if not m.is_mae:
                h, k, v = self._stack(0, x, valid, rope[0], rope[1], cache[0], cache[1], m.am_idx)
                new = [*k, *v]
            else:
                B, T, d = x.shape
                he, k0, v0 = self._stack(
                    0, x[:, m.enc_pos], valid, rope[0], rope[1], cache[0], cache[1]
                )
                full = m.decoder_mask_token.expand(B, T, d).clone()
                full[:, m.enc_pos] = m.decoder_embed(he)
                h, k1, v1 = self._stack(
                    1, full + m.pos_dec, valid, rope[2], rope[3], cache[2], cache[3], m.am_idx
                )
                new = [*k0, *v0, *k1, *v1]
            return (h + m.pos_out[m.am_idx], *new)

    class Sample(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, z, x_T, step_noise):
            return self.m.sample_motion(z, x_T, step_noise, None, 1.0, 1.0)

    class SampleGuided(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, z, z_uncond, x_T, step_noise, guidance):
            # the head directly: sample_motion drops z_uncond at a scale of 1, a data-dependent
            # branch on a graph input
            m, c = self.m, self.m.config  # which motion and steps: the config's, baked in
            return m.denormalize(
                m.head.sample(
                    z, x_T, step_noise, 1.0, z_uncond, guidance, c.guidance_groups, c.guidance_steps
                )
            )

    return (
        EmbedMotion(model),
        EmbedNull(model),
        EmbedTickMotion(model),
        EmbedTickNull(model),
        BackboneStep(model),
        Sample(model),
        SampleGuided(model),
    )


@contextlib.contextmanager
def _quiet():
    """Swallow the exporter's progress prints (kept if the export fails)."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield
    except Exception:
        print(buf.getvalue())
        raise


def cache_names(depths: list[int]) -> list[str]:
    """Cache input names in model order (per stack of ``depths[s]`` layers: k of every layer,
    then v); outputs add the prefix ``new_``."""
    return [f"cache_{kv}{s}_{i}" for s, d in enumerate(depths) for kv in "kv" for i in range(d)]


def export_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path | None = None,
    num_sampling_steps: int | None = None,
    opset: int = OPSET,
    log=print,
) -> Path:
    """Export ``checkpoint`` into ``out_dir`` (default ``checkpoint/onnx``); returns the folder.

    Graphs are checked against torch on random inputs before the manifest is written (a failed
    check raises and leaves no manifest, so the runtime never loads a bad export)."""
    import numpy as np
    import torch

    from timar_ros.runtime.checkpoint import CheckpointError, checkpoint_dir, load_checkpoint

    ckpt = checkpoint_dir(checkpoint)
    out = Path(out_dir) if out_dir else ckpt / DEFAULT_SUBDIR
    model, mid = load_checkpoint(ckpt, "cpu")
    c = model.config
    if c.attention == "bidirectional":
        raise CheckpointError(
            f"{ckpt}: a bidirectional-attention model has no streaming step to "
            "export (it cannot use the KV cache); use the torch backend"
        )
    if c.positions == "learned_absolute":
        raise CheckpointError(
            f"{ckpt}: learned absolute positions (a reference-compatible model) have no exact "
            "KV cache, which the ONNX runtime is built on; use the torch backend"
        )
    if c.window_turns < 2:
        raise CheckpointError(
            f"{ckpt}: window_turns={c.window_turns}: an export needs a KV cache "
            "of at least one turn (window_turns >= 2)"
        )
    if c.speech_encoder != "builtin":
        log("note: exporting a wav2vec2 speech encoder (large graph, slower export)")
    steps = int(num_sampling_steps or c.num_sampling_steps)
    if steps != c.num_sampling_steps:
        model.set_sampling_steps(steps)
    out.mkdir(parents=True, exist_ok=True)
    old = out / MANIFEST
    if old.exists():
        old.unlink()  # a half-written export must not look valid

    F, S, d, T = c.frames_per_turn, c.samples_per_turn, c.d_model, c.tokens_per_turn
    g = torch.Generator().manual_seed(0)

    def rnd(*shape, scale=1.0):
        return torch.randn(*shape, generator=g) * scale

    ua, aa, um = rnd(1, S, scale=0.1), rnd(1, S, scale=0.1), rnd(1, F, 56, scale=0.3)
    cache = [layer for t in model.empty_cache(1) for layer in rnd(*t.shape)]  # per layer
    valid = torch.ones(c.window_turns - 1, dtype=torch.bool)
    valid[0] = False  # both values present in the check
    em, en, etm, etn, bb, sp, spg = _wrappers(model)
    n_st = len(model.stacks)
    cn = cache_names([len(st.blocks) for st in model.stacks])
    from timar_ros.runtime.onnx_policy import rope_tables_np

    positions = [p.tolist() for p in model.stack_positions()]
    hd = c.d_model // c.num_heads
    rope = []
    for p in positions:  # some absolute turn far into a conversation
        cos, sin = rope_tables_np(np.asarray(p) + 12345 * T, hd, c.rope_theta)
        rope += [torch.from_numpy(cos), torch.from_numpy(sin)]
    rn = [f"rope_{cs}{si}" for si in range(n_st) for cs in ("cos", "sin")]
    x_ex = em(ua, aa, um)[0].detach()
    # a sample block shorter than a turn (the graph takes any number of frames)
    nb = max(1, F // 2)
    z_ex, zu_ex = rnd(nb, d), rnd(nb, d)
    x_T, noise = rnd(nb, 56), rnd(steps, nb, 56)
    prefix = rnd(1, F, 56, scale=0.3)
    known = torch.tensor([[max(1, F // 2), F, max(1, F // 3)]], dtype=torch.int64)
    tick_in = ["user_audio", "agent_audio", "user_motion", "agent_prefix", "known"]
    xs = ["x", "x_uncond"]
    graphs = {
        "embed_motion": (em, (ua, aa, um), ["user_audio", "agent_audio", "user_motion"], xs),
        "embed_null": (en, (ua, aa), ["user_audio", "agent_audio"], xs),
        "embed_tick_motion": (etm, (ua, aa, um, prefix, known), tick_in, xs),
        "embed_tick_null": (
            etn,
            (ua, aa, prefix, known),
            [n for n in tick_in if n != "user_motion"],
            xs,
        ),
        "backbone_step": (
            bb,
            (x_ex, valid, *rope, *cache),
            ["x", "valid", *rn, *cn],
            ["h", *[f"new_{n}" for n in cn]],
        ),
        "sample": (sp, (z_ex, x_T, noise), ["z", "x_T", "step_noise"], ["motion"]),
        "sample_cfg": (
            spg,
            (z_ex, zu_ex, x_T, noise, torch.tensor(2.0)),
            ["z", "z_uncond", "x_T", "step_noise", "guidance"],
            ["motion"],
        ),
    }
    import onnxruntime as ort

    # the exporter warns about torchvision ops and deprecated internals: not actionable here
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    logging.getLogger("torch._export").setLevel(logging.ERROR)
    entries = {}
    frames = torch.export.Dim("frames", min=1, max=F)
    dynamic = {  # the sampler runs a tick's block of any length
        "sample": {"z": {0: frames}, "x_T": {0: frames}, "step_noise": {1: frames}},
        "sample_cfg": {
            "z": {0: frames},
            "z_uncond": {0: frames},
            "x_T": {0: frames},
            "step_noise": {1: frames},
            "guidance": None,
        },
    }
    for name, (mod, args, ins, outs) in graphs.items():
        t0 = time.monotonic()
        f = out / f"{name}.onnx"
        with torch.no_grad(), warnings.catch_warnings(), _quiet():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                mod,
                args,
                str(f),
                dynamo=True,
                external_data=False,
                input_names=ins,
                output_names=outs,
                opset_version=opset,
                verbose=False,
                dynamic_shapes=dynamic.get(name),
            )
            ref = mod(*args)
        ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        sess = ort.InferenceSession(str(f), so, providers=["CPUExecutionProvider"])
        got = sess.run(outs, {n: a.numpy() for n, a in zip(ins, args)})
        err = max(
            float(np.max(np.abs(r.numpy() - o))) if r.numel() else 0.0 for r, o in zip(ref, got)
        )
        if not err < 1e-3:
            raise RuntimeError(
                f"ONNX export of {name}: onnxruntime differs from torch by {err:.3g}"
            )
        entries[name] = {
            "file": f.name,
            "sha256": sha256_file(f),
            "bytes": f.stat().st_size,
            "inputs": {
                n: {"shape": list(a.shape), "dtype": str(a.numpy().dtype)}
                for n, a in zip(ins, args)
            },
            "outputs": {
                n: {"shape": list(r.shape), "dtype": str(r.numpy().dtype)}
                for n, r in zip(outs, ref)
            },
            "max_abs_diff_vs_torch": err,
        }
        log(
            f"  {f.name}: {f.stat().st_size / 1e6:.1f} MB, ORT vs torch {err:.1e}, "
            f"{time.monotonic() - t0:.1f} s"
        )
    manifest = {
        "format_version": FORMAT_VERSION,
        "model_id": mid,
        "checkpoint": ckpt.name,
        "config": c.to_dict(),
        "num_sampling_steps": steps,
        "window_turns": c.window_turns,
        "frames_per_turn": F,
        "samples_per_turn": S,
        "tokens_per_turn": T,
        "cache": cn,
        "cache_layout": "ring",
        "rope": {"names": rn, "head_dim": hd, "theta": c.rope_theta, "positions": positions},
        "opset": opset,
        "guidance": "sample_cfg: the backbone run on x and x_uncond, the scale an input",
        "temperature": "runtime scales step_noise",
        "exporter": {"torch": torch.__version__, "onnxruntime": ort.__version__, "dynamo": True},
        "graphs": entries,
    }
    write_json(out / MANIFEST, manifest)  # last and atomic: an export is complete only with it
    return out


def ensure_export(checkpoint: str | Path, log=print) -> Path | None:
    """Export ``checkpoint`` to ``checkpoint/onnx`` unless a current export is there (what
    ``backend=auto`` looks for). Returns the export folder, or None when it cannot be written
    (read-only install, no exporter): the caller then runs the torch backend."""
    from timar_ros.runtime.checkpoint import checkpoint_dir

    ck = checkpoint_dir(checkpoint)
    status = export_status(ck)
    if status == "current":
        return ck / DEFAULT_SUBDIR
    log(
        f"ONNX export of {ck} is {status}: exporting it once for the faster onnxruntime backend "
        f"(`timar export {ck}`) ..."
    )
    t0 = time.monotonic()
    try:
        out = export_checkpoint(ck, log=lambda *a: None)
    except (OSError, ImportError, RuntimeError) as exc:
        log(f"ONNX export failed ({exc}); using the torch backend")
        return None
    log(f"exported to {out} in {time.monotonic() - t0:.0f} s")
    return out
