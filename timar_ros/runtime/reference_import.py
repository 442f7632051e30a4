"""Import a checkpoint of the authors' reference implementation (CoderChen01/
towards-seamless-interaction, e.g. the released ``TIMAR.pth``) into our checkpoint format.

The reference saves a training dump, ``torch.save({"model", "model_ema", "optimizer", "epoch",
"scaler", "args"})``, with ``args`` an ``argparse.Namespace``. It is read with
``torch.load(weights_only=True)`` (tensors and plain containers; ``argparse.Namespace`` is the
only class allowed), memory-mapped, so only the weights that are used are read from disk (the
6.8 GB file needs no 14 GB of RAM). Every tensor is mapped by name with a shape check; missing
and unexpected names are refused by name. The result is an ordinary timar_ros checkpoint of a
``positions="learned_absolute"`` model (see :data:`timar_ros.model.config.REFERENCE_SETTINGS`):
``model.safetensors`` + ``config.json`` + ``model_card.json``. The frozen wav2vec 2.0 encoder is
not part of the reference's checkpoint; it comes from a local directory in ``save_pretrained``
layout (never a download) and is referenced, or copied next to the weights.

Sampling settings are the published evaluation's, not the training run's ``args``: single-pass
decoding with history agent motion masked, 5 respaced steps, no guidance (cfg 1), temperature 1.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
from pathlib import Path
from typing import Any

from .checkpoint import CheckpointError

WEIGHT_CHOICES = ("ema", "model")
LICENSE = "Apache-2.0"
SOURCE_REPO = "CoderChen01/towards-seamless-interaction"

# our parameter name -> the reference's (regex rules, applied in order; the first match wins)
_NAME_RULES: tuple[tuple[str, str], ...] = (
    (r"^speech_proj\.", "speech_projection."),
    (r"^delimiters\.weight$", "sep_tok_emb.weight"),
    (r"^pos_in$", "encoder_pos_embed_learned"),
    (r"^pos_out$", "diffusion_pos_embed_learned"),
    (r"^stacks\.0\.blocks\.(\d+)\.(qkv|proj)\.", r"encoder_blocks.\1.attn.\2."),
    (r"^stacks\.0\.blocks\.(\d+)\.", r"encoder_blocks.\1."),
    (r"^stacks\.0\.norm\.", "encoder_norm."),
)
_HEAD_RULES = {
    "diffusion": (r"^head\.net\.", "diffloss.net."),
    "mlp": (r"^head\.net\.", "mlp_head."),
}
# tensors stored with a leading batch axis by the reference: ours = theirs[0]
_SQUEEZED = {"mask_token", "pos_in", "pos_out"}


def reference_name(name: str, head: str) -> str:
    """The reference's state-dict name of our parameter ``name`` (model with ``head``)."""
    for pattern, repl in (*_NAME_RULES, _HEAD_RULES[head]):
        if re.search(pattern, name):
            return re.sub(pattern, repl, name)
    return name  # motion_encoder.*, fake_latent, z_proj.*, z_proj_ln.*, mask_token


def read_reference_checkpoint(path: str | Path) -> dict:
    """The top-level dict of a reference checkpoint, memory-mapped; no arbitrary unpickling."""
    import pickle

    import torch

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such reference checkpoint (the authors' TIMAR.pth)")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            try:
                ck = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
                # a legacy (non-zip) torch.save file cannot be memory-mapped: read it whole
                ck = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if not found:  # not a pickle at all (garbage, or a truncated legacy file)
            raise CheckpointError(
                f"{p}: cannot read it as a torch checkpoint; the file is truncated or not a "
                "torch.save file: download it again"
            ) from exc
        what = f"the global {found.group(1)}"
        raise CheckpointError(
            f"{p}: refusing to unpickle {what}: a reference checkpoint holds only tensors, plain "
            "containers and argparse.Namespace; this file is not one (or was tampered with), so "
            "it is not loaded"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{p}: cannot read it as a torch checkpoint ({exc}); the file is truncated or not "
            "a torch.save file: download it again"
        ) from exc
    if not isinstance(ck, dict) or not ({"model", "model_ema"} & set(ck)):
        keys = sorted(ck) if isinstance(ck, dict) else type(ck).__name__
        raise CheckpointError(
            f"{p}: not a reference training checkpoint (top level {keys}; expected a dict with "
            "'model' and 'model_ema', as the reference's misc.save_model writes)"
        )
    return ck


def _args_dict(args) -> dict[str, Any]:
    if args is None:
        return {}
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    if not isinstance(args, dict):
        raise CheckpointError(f"'args' is a {type(args).__name__}, not an argparse.Namespace")
    return {
        k: v for k, v in args.items() if isinstance(v, (str, int, float, bool, type(None), list))
    }


def _count(sd: dict, prefix: str) -> int:
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    ids = {int(m.group(1)) for k in sd for m in [pat.match(k)] if m}
    return max(ids) + 1 if ids else 0


def infer_config(sd: dict, args: dict, wav2vec2_path: str, num_heads: int | None = None, **over):
    """Our TIMARConfig for a reference state dict ``sd`` and its training ``args``.

    Sizes come from the tensors' shapes; the head count (not visible in shapes) from the
    reference factory named by ``args["model"]`` when the shapes match it, else ``num_heads``."""
    from ..model.config import REFERENCE_FACTORIES, REFERENCE_SETTINGS, TIMARConfig

    def shape(name):
        if name not in sd:
            raise CheckpointError(f"the state dict has no {name!r}: not a TIMAR checkpoint")
        return tuple(sd[name].shape)

    if any(k.startswith("decoder_blocks.") for k in sd):
        raise CheckpointError(
            "this checkpoint is of the MAE-style encoder-decoder ablation (decoder_blocks.*; "
            "trained without --use_encoder_only), which the import does not support: import an "
            "encoder-only model (the published one)"
        )
    d, token_dim = shape("z_proj.weight")
    blocks = _count(sd, "encoder_blocks.")
    fps, chunk = int(args.get("motion_fps", 25)), int(args.get("chunk_second", 1))
    if fps != 25:
        raise CheckpointError(f"args.motion_fps={fps}: timar_ros runs 25-fps motion only")
    F = fps * chunk
    tpt = 4 * F + 10
    seq_len = shape("encoder_pos_embed_learned")[1]
    if seq_len % tpt:
        raise CheckpointError(
            f"encoder_pos_embed_learned has {seq_len} positions, not a whole number of "
            f"{tpt}-token turns ({F} frames per turn from args motion_fps x chunk_second)"
        )
    if "diffloss.net.input_proj.weight" in sd:
        head = dict(
            head="diffusion",
            diffusion_width=shape("diffloss.net.input_proj.weight")[0],
            diffusion_depth=_count(sd, "diffloss.net.res_blocks."),
        )
    elif "mlp_head.0.weight" in sd:
        head = dict(head="mlp")
    else:
        raise CheckpointError("the state dict has neither diffloss.net.* nor mlp_head.*")
    factory = str(args.get("model", ""))
    sizes = REFERENCE_FACTORIES.get(factory)
    fits = sizes is not None and sizes["d_model"] == d
    fits = fits and sizes["encoder_depth"] + sizes["decoder_depth"] == blocks
    if num_heads is None:
        if not fits:
            raise CheckpointError(
                f"the weights (width {d}, {blocks} blocks) are not those of args.model="
                f"{factory or '(none)'} (reference factories: "
                + ", ".join(
                    f"{k} {v['d_model']}/{v['encoder_depth'] + v['decoder_depth']}"
                    for k, v in REFERENCE_FACTORIES.items()
                )
                + "); pass num_heads (--num-heads) to import a model of another size"
            )
        num_heads = sizes["num_heads"]
    if d % int(num_heads):
        raise CheckpointError(f"width {d} is not divisible by num_heads={num_heads}")
    kw = dict(REFERENCE_SETTINGS)
    kw.update(
        d_model=d,
        encoder_depth=blocks - blocks // 2,
        decoder_depth=blocks // 2,
        num_heads=int(num_heads),
        token_dim=token_dim,
        motion_hidden=shape("motion_encoder.0.weight")[0],
        frames_per_turn=F,
        window_turns=seq_len // tpt,
        attention="turn_causal" if args.get("use_causal_attn", True) else "bidirectional",
        mask_ratio_min=float(args.get("mask_ratio_min", 0.7)),
        cfg_drop_prob=float(args.get("cond_drop_prob", 0.1)),
        attn_dropout=float(args.get("attn_dropout", 0.1)),
        proj_dropout=float(args.get("proj_dropout", 0.1)),
        diffusion_batch_mul=int(args.get("diffusion_batch_mul", 4)),
        wav2vec2_path=str(wav2vec2_path),
        preset=factory if fits else "reference",
        **head,
    )
    kw.update(over)
    try:
        return TIMARConfig(**kw)
    except ValueError as exc:
        raise CheckpointError(f"cannot configure a model for these weights: {exc}") from exc


def map_state_dict(model, sd: dict) -> dict:
    """The reference state dict -> ours for ``model`` (a TIMAR of the inferred config): every
    tensor by name, reshaped where the reference keeps a batch axis, shapes checked; refuses
    missing and unexpected names (by name)."""
    sd = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in sd.items()}
    ours = model.checkpoint_state_dict()
    head = model.config.head
    out, missing, wrong, used = {}, [], [], set()
    for name, want in ours.items():
        ref = reference_name(name, head)
        if ref not in sd:
            missing.append(ref)
            continue
        t = sd[ref]
        used.add(ref)
        if name in _SQUEEZED and t.dim() == want.dim() + 1 and t.shape[0] == 1:
            t = t[0]
        if tuple(t.shape) != tuple(want.shape):
            wrong.append(f"{ref} {tuple(sd[ref].shape)} (ours {name} {tuple(want.shape)})")
            continue
        out[name] = t.detach().to(dtype=want.dtype).contiguous()
    unexpected = sorted(set(sd) - used)
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors: {', '.join(sorted(missing)[:6])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors: {', '.join(unexpected[:6])}")
    if wrong:
        problems.append("shape mismatch: " + "; ".join(wrong[:4]))
    if problems:
        raise CheckpointError(
            "the reference weights do not fit the model their shapes describe: "
            + " | ".join(problems)
        )
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def import_reference(
    checkpoint: str | Path,
    wav2vec2: str | Path,
    out_dir: str | Path,
    weights: str = "ema",
    num_heads: int | None = None,
    num_sampling_steps: int = 5,
    copy_wav2vec2: bool = False,
    log=print,
) -> Path:
    """Convert a reference checkpoint into a timar_ros checkpoint folder ``out_dir``.

    Args:
        checkpoint: the reference's ``torch.save`` file (e.g. ``TIMAR.pth``).
        wav2vec2: local wav2vec 2.0 directory (``save_pretrained`` layout; the published model
            uses ``facebook/wav2vec2-large-960h-lv60-self``).
        weights: "ema" (the published evaluation's) or "model" (the raw training weights).
        num_heads: attention heads, for a model that is not one of the reference factories.
        num_sampling_steps: respaced diffusion steps at inference (published: 5).
        copy_wav2vec2: copy the wav2vec2 directory into ``out_dir/wav2vec2`` (a checkpoint that
            travels, e.g. to the robot) instead of referencing it by absolute path.
    Returns the checkpoint folder.
    """
    import torch

    from ..model.timar import TIMAR
    from .checkpoint import save_checkpoint

    if weights not in WEIGHT_CHOICES:
        raise ValueError(f"weights must be one of {WEIGHT_CHOICES}, got {weights!r}")
    src, w2v = Path(checkpoint), Path(wav2vec2).resolve()
    if not (w2v / "config.json").is_file():
        raise FileNotFoundError(
            f"{w2v}: no wav2vec2 model there (config.json + weights in save_pretrained layout); "
            "save facebook/wav2vec2-large-960h-lv60-self there once where it can be downloaded"
        )
    out = Path(out_dir)
    ck = read_reference_checkpoint(src)
    key = "model_ema" if weights == "ema" else "model"
    sd = ck.get(key)
    if sd is None:
        other, flag = ("model", "model") if key == "model_ema" else ("model_ema", "ema")
        hint = f"; use --weights {flag}" if ck.get(other) is not None else ""
        raise CheckpointError(f"{src}: holds no {key!r} weights{hint}")
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{src}: {key!r} is not a state dict of tensors")
    args = _args_dict(ck.get("args"))
    config = infer_config(
        sd, args, str(w2v), num_heads=num_heads, num_sampling_steps=int(num_sampling_steps)
    )
    log(
        f"reference {config.preset}: width {config.d_model}, {config.num_blocks} blocks x "
        f"{config.num_heads} heads, {config.window_turns}-turn window, {config.head} head; "
        f"{key} weights"
    )
    trained_steps = str(args.get("num_sampling_steps", config.num_sampling_steps))
    if config.head == "diffusion" and trained_steps != str(config.num_sampling_steps):
        log(
            f"sampling with {config.num_sampling_steps} respaced steps (the published "
            f"evaluation); the training run's args say {trained_steps} "
            "(--num-sampling-steps to choose; the policy's num_sampling_steps option too)"
        )
    try:
        model = TIMAR(config)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{w2v}: cannot build the speech encoder: {exc}") from exc
    if model.speech_encoder.out_dim != model.speech_proj.in_features:
        raise CheckpointError(
            f"{w2v}: its hidden size {model.speech_encoder.out_dim} is not the "
            f"{model.speech_proj.in_features} the checkpoint's speech_projection takes: this "
            "wav2vec2 is not the one the model was trained with"
        )
    state = map_state_dict(model, sd)
    for name, t in state.items():
        if not torch.isfinite(t).all():
            ref = reference_name(name, config.head)
            raise CheckpointError(f"{src}: tensor {ref} holds NaN/Inf values")
    model.load_state_dict(state, strict=False)
    if copy_wav2vec2:
        dest = out / "wav2vec2"
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(w2v, dest)
        model.config = config = config.replace(wav2vec2_path="wav2vec2")
    card = {
        "name": out.name,
        "source": {
            "implementation": SOURCE_REPO,
            "file": src.name,
            "bytes": src.stat().st_size,
            "sha256": _sha256(src),
            "weights": key,
            "epoch": ck.get("epoch") if isinstance(ck.get("epoch"), int) else None,
            "training_args": args,
        },
        "license": f"{LICENSE} (the authors' released weights; wav2vec 2.0: see its directory)",
        "wav2vec2": str(config.wav2vec2_path),
        "trainable_parameters": model.num_parameters(),
        "settings": {
            "positions": "learned_absolute (re-encodes its window every turn; no KV cache)",
            "history_agent_motion": "masked (the published --mask_history_agent)",
            "num_iter": 1,
            "num_sampling_steps": config.num_sampling_steps,
            "guidance_scale": config.guidance_scale,
            "temperature": config.temperature,
            "audio_norm": f"{config.audio_norm} (the reference: file, whole-file statistics)",
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, out, model_card=card)
    log(f"wrote {out} ({len(state)} tensors, {model.num_parameters() / 1e6:.1f} M parameters)")
    return out
