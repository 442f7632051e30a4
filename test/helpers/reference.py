"""Checkpoints in the reference implementation's exact format, at tiny sizes, and an independent
oracle of its per-turn sampling, written from its specification (model/timar.py, diffloss.py,
diffusion/ of CoderChen01/towards-seamless-interaction as read for notes/timar-method.md):

* :func:`write_reference_checkpoint`: ``torch.save({"model", "model_ema", "optimizer", "epoch",
  "scaler", "args"})`` with the reference's parameter names and layouts (timm blocks with fused
  qkv, ``encoder_pos_embed_learned`` [1, 880, d], ``mask_token`` [1, 1, d], ``diffloss.net.*``)
  and an ``argparse.Namespace`` in ``args``.
* :func:`write_wav2vec2_dir`: a tiny random wav2vec 2.0 (stable layer norm, as large-lv60) saved
  with ``save_pretrained``.
* :func:`reference_turns`: the reference's ``TIMAR.sample`` loop (history tokens stitched and
  left-cropped to the window, every agent-motion token masked, one backbone pass with an additive
  turn-causal mask, explicit softmax attention, respaced ancestral sampling) with all Gaussian
  draws zero, straight from the reference state dict; it shares no code with timar_ros.model.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SPECIAL_POSITIONS = (0, 1, 27, 28, 54, 55, 81, 82, 108, 109)  # of the 10 embeddings, F = 25


def reference_shapes(
    d=32, blocks=2, token_dim=32, speech_dim=32, width=32, depth=2, turns=8, frames=25
) -> dict[str, tuple]:
    """The reference's parameter names and shapes (encoder-only TIMAR, diffusion head)."""
    T = 4 * frames + 10
    shapes = {
        "motion_encoder.0.weight": (token_dim // 2, 56),
        "motion_encoder.0.bias": (token_dim // 2,),
        "motion_encoder.2.weight": (token_dim, token_dim // 2),
        "motion_encoder.2.bias": (token_dim,),
        "speech_projection.weight": (token_dim, speech_dim),
        "speech_projection.bias": (token_dim,),
        "sep_tok_emb.weight": (10, token_dim),
        "fake_latent": (1, token_dim),
        "z_proj.weight": (d, token_dim),
        "z_proj.bias": (d,),
        "z_proj_ln.weight": (d,),
        "z_proj_ln.bias": (d,),
        "mask_token": (1, 1, d),
        "encoder_pos_embed_learned": (1, turns * T, d),
        "encoder_norm.weight": (d,),
        "encoder_norm.bias": (d,),
        "diffusion_pos_embed_learned": (1, turns * T, d),
        "diffloss.net.time_embed.mlp.0.weight": (width, 256),
        "diffloss.net.time_embed.mlp.0.bias": (width,),
        "diffloss.net.time_embed.mlp.2.weight": (width, width),
        "diffloss.net.time_embed.mlp.2.bias": (width,),
        "diffloss.net.cond_embed.weight": (width, d),
        "diffloss.net.cond_embed.bias": (width,),
        "diffloss.net.input_proj.weight": (width, 56),
        "diffloss.net.input_proj.bias": (width,),
        "diffloss.net.final_layer.linear.weight": (112, width),
        "diffloss.net.final_layer.linear.bias": (112,),
        "diffloss.net.final_layer.adaLN_modulation.1.weight": (2 * width, width),
        "diffloss.net.final_layer.adaLN_modulation.1.bias": (2 * width,),
    }
    for i in range(blocks):
        b = f"encoder_blocks.{i}."
        shapes.update(
            {
                b + "norm1.weight": (d,),
                b + "norm1.bias": (d,),
                b + "attn.qkv.weight": (3 * d, d),
                b + "attn.qkv.bias": (3 * d,),
                b + "attn.proj.weight": (d, d),
                b + "attn.proj.bias": (d,),
                b + "norm2.weight": (d,),
                b + "norm2.bias": (d,),
                b + "mlp.fc1.weight": (4 * d, d),
                b + "mlp.fc1.bias": (4 * d,),
                b + "mlp.fc2.weight": (d, 4 * d),
                b + "mlp.fc2.bias": (d,),
            }
        )
    for i in range(depth):
        b = f"diffloss.net.res_blocks.{i}."
        shapes.update(
            {
                b + "in_ln.weight": (width,),
                b + "in_ln.bias": (width,),
                b + "mlp.0.weight": (width, width),
                b + "mlp.0.bias": (width,),
                b + "mlp.2.weight": (width, width),
                b + "mlp.2.bias": (width,),
                b + "adaLN_modulation.1.weight": (3 * width, width),
                b + "adaLN_modulation.1.bias": (3 * width,),
            }
        )
    return shapes


def reference_state_dict(seed=0, **sizes) -> dict[str, torch.Tensor]:
    """Random tensors under the reference's names, at :func:`reference_shapes` ``sizes``."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shp in reference_shapes(**sizes).items():
        t = torch.randn(shp, generator=g)
        if k.endswith(("norm1.weight", "norm2.weight", "ln.weight", "norm.weight")):
            t = 1.0 + 0.1 * t  # LayerNorm gains near 1, as trained ones
        elif len(shp) >= 2 and "pos_embed" not in k and k not in ("fake_latent", "mask_token"):
            t = t / math.sqrt(shp[-1])  # fan-in scaling keeps activations O(1)
        else:
            t = 0.1 * t
        sd[k] = t
    return sd


def reference_args(**over) -> argparse.Namespace:
    """The training run's args as main.py's parser would hold them (the fields the model uses)."""
    a = dict(
        model="timar_large",
        motion_fps=25,
        speech_frequency=16000,
        chunk_second=1,
        max_context_time=8,
        speech_snippet_embed_dim=1024,
        motion_embed_dim=56,
        token_embed_dim=1024,
        use_causal_attn=True,
        use_encoder_only=True,
        mask_history_agent=False,
        num_iter=1,
        cfg=1.0,
        diffloss_d=3,
        diffloss_w=1024,
        num_sampling_steps="100",
        diffusion_batch_mul=4,
        temperature=1.0,
        mask_ratio_min=0.7,
        cond_drop_prob=0.1,
        attn_dropout=0.1,
        proj_dropout=0.1,
        ema_rate=0.9999,
        output_dir="experiments/timar_large-diffloss_d=3_w=1024",
    )
    a.update(over)
    return argparse.Namespace(**a)


def write_reference_checkpoint(
    path: Path, sd: dict, ema: dict | None = None, args=None, extra: dict | None = None
) -> Path:
    """The reference's misc.save_model layout: model, model_ema, optimizer, epoch, scaler, args."""
    names = list(sd)
    ck = {
        "model": sd,
        "model_ema": ema if ema is not None else {k: v.clone() for k, v in sd.items()},
        "optimizer": {
            "state": {
                i: {"step": torch.tensor(10.0), "exp_avg": torch.zeros_like(sd[n])}
                for i, n in enumerate(names[:3])
            },
            "param_groups": [
                {
                    "lr": 1e-4,
                    "betas": (0.9, 0.95),
                    "weight_decay": 0.02,
                    "params": list(range(len(names))),
                }
            ],
        },
        "epoch": 399,
        "scaler": {
            "scale": 65536.0,
            "growth_factor": 2.0,
            "backoff_factor": 0.5,
            "growth_interval": 2000,
            "_growth_tracker": 0,
        },
        "args": args if args is not None else reference_args(),
    }
    ck.update(extra or {})
    torch.save(ck, path)
    return path


def write_wav2vec2_dir(path: Path, hidden: int = 32, seed: int = 0) -> Path:
    """A tiny random wav2vec 2.0 with the large-lv60 layout (stable layer norm) on disk."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    cfg = Wav2Vec2Config(
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=48,
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        vocab_size=8,
    )
    torch.manual_seed(seed)
    Wav2Vec2Model(cfg).save_pretrained(path)
    return path


# ---------------------------------------------------------------------------------- the oracle
def _ln(x, sd, name, eps=1e-6):
    return F.layer_norm(x, x.shape[-1:], sd[name + ".weight"], sd[name + ".bias"], eps)


def _lin(x, sd, name):
    return x @ sd[name + ".weight"].T + sd[name + ".bias"]


def _speech(w2v, audio):
    feats = w2v.feature_extractor(audio[None])  # [1, C, frames]
    feats = F.interpolate(feats, size=25, mode="linear", align_corners=True).transpose(1, 2)
    hidden = w2v.feature_projection(feats)[0]
    return w2v.encoder(hidden).last_hidden_state[0]  # [25, hidden]


def _schedule(steps: int):
    """Cosine betas (1000 steps), respaced to ``steps`` as improved-diffusion's
    space_timesteps(1000, str(steps)); float64 numpy."""
    ab = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    betas = np.array([min(1 - ab((i + 1) / 1000) / ab(i / 1000), 0.999) for i in range(1000)])
    acp = np.cumprod(1 - betas)
    stride = 999 / (steps - 1) if steps > 1 else 1
    keep = sorted({round(i * stride) for i in range(steps)})
    new_b, last = [], 1.0
    for i in keep:
        new_b.append(1 - acp[i] / last)
        last = acp[i]
    b = np.array(new_b)
    a = np.cumprod(1 - b)
    a_prev = np.append(1.0, a[:-1])
    post_var = b * (1 - a_prev) / (1 - a)
    post_logvar = np.log(np.append(post_var[1], post_var[1:]))
    c1 = b * np.sqrt(a_prev) / (1 - a)
    c2 = (1 - a_prev) * np.sqrt(1 - b) / (1 - a)
    return keep, b, post_logvar, c1, c2


def _denoiser(sd, x, t, c):
    p = "diffloss.net."
    half = 128
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    temb = torch.cat([torch.cos(args), torch.sin(args)], -1)
    temb = _lin(F.silu(_lin(temb, sd, p + "time_embed.mlp.0")), sd, p + "time_embed.mlp.2")
    y = temb + _lin(c, sd, p + "cond_embed")
    h = _lin(x, sd, p + "input_proj")
    i = 0
    while f"{p}res_blocks.{i}.in_ln.weight" in sd:
        b = f"{p}res_blocks.{i}."
        shift, scale, gate = _lin(F.silu(y), sd, b + "adaLN_modulation.1").chunk(3, -1)
        u = _ln(h, sd, b + "in_ln") * (1 + scale) + shift
        h = h + gate * _lin(F.silu(_lin(u, sd, b + "mlp.0")), sd, b + "mlp.2")
        i += 1
    shift, scale = _lin(F.silu(y), sd, p + "final_layer.adaLN_modulation.1").chunk(2, -1)
    h = F.layer_norm(h, h.shape[-1:], eps=1e-6) * (1 + scale) + shift
    return _lin(h, sd, p + "final_layer.linear")


def _sample_zero_noise(sd, z, steps):
    keep, b, post_logvar, c1, c2 = _schedule(steps)
    x = torch.zeros(z.shape[0], 56)
    for i in reversed(range(len(keep))):
        t = torch.full((z.shape[0],), keep[i], dtype=torch.long)
        x0 = _denoiser(sd, x, t, z)[:, :56]
        x = float(c1[i]) * x0 + float(c2[i]) * x  # the posterior mean; noise 0 at every step
    return x


@torch.no_grad()
def reference_turns(sd, w2v, user_audio, agent_audio, user_motion, heads, steps=5, window=8):
    """The reference's motion for each turn of a conversation, all noise zero.

    Args: ``sd`` the reference state dict; ``w2v`` a Wav2Vec2Model; audio [N * 16000] (as fed to
    the speech encoder, i.e. already normalised); user motion [N * 25, 56].
    Returns [N * 25, 56]."""
    sd = {k: v.float() for k, v in sd.items()}
    w2v = w2v.eval()
    T, Fr = 110, 25
    n = len(user_audio) // 16000
    spec = sd["sep_tok_emb.weight"]
    history: list[torch.Tensor] = []  # token embeddings [T, td] per past turn
    out = []
    for t in range(n):
        ua = torch.as_tensor(user_audio[t * 16000 : (t + 1) * 16000])
        aa = torch.as_tensor(agent_audio[t * 16000 : (t + 1) * 16000])
        um = torch.as_tensor(user_motion[t * Fr : (t + 1) * Fr])
        us = _lin(_speech(w2v, ua), sd, "speech_projection")
        ag = _lin(_speech(w2v, aa), sd, "speech_projection")
        mo = F.relu(_lin(F.relu(_lin(um, sd, "motion_encoder.0")), sd, "motion_encoder.2"))
        tok = torch.zeros(T, spec.shape[1])
        for i, pos in enumerate(SPECIAL_POSITIONS):
            tok[pos] = spec[i]
        tok[2:27], tok[29:54], tok[56:81] = us, mo, ag  # agent motion 83:108 stays 0 (masked)
        history = (history + [tok])[-window:]
        L = len(history) * T
        x = _lin(torch.cat(history), sd, "z_proj")
        masked = torch.zeros(L, dtype=torch.bool)
        for k in range(len(history)):
            masked[k * T + 83 : k * T + 108] = True
        x = torch.where(masked[:, None], sd["mask_token"].view(1, -1), x)
        x = _ln(x + sd["encoder_pos_embed_learned"][0, :L], sd, "z_proj_ln")
        turn = torch.arange(L) // T
        bias = torch.zeros(L, L).masked_fill(turn[None, :] > turn[:, None], float("-inf"))
        d = x.shape[1]
        hd = d // heads
        i = 0
        while f"encoder_blocks.{i}.norm1.weight" in sd:
            b = f"encoder_blocks.{i}."
            qkv = _lin(_ln(x, sd, b + "norm1"), sd, b + "attn.qkv").view(L, 3, heads, hd)
            q, k, v = qkv.permute(1, 2, 0, 3)  # [heads, L, hd] each
            att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd) + bias, dim=-1)
            x = x + _lin((att @ v).transpose(0, 1).reshape(L, d), sd, b + "attn.proj")
            h = F.gelu(_lin(_ln(x, sd, b + "norm2"), sd, b + "mlp.fc1"))
            x = x + _lin(h, sd, b + "mlp.fc2")
            i += 1
        x = _ln(x, sd, "encoder_norm") + sd["diffusion_pos_embed_learned"][0, :L]
        z = x[L - T + 83 : L - T + 108]
        out.append(_sample_zero_noise(sd, z, steps))
    return torch.cat(out).numpy()
