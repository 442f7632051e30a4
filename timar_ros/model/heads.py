"""Per-token motion heads: the diffusion head (MAR's SimpleMLPAdaLN + GaussianDiffusion) and the
MLP-head ablation. Both are conditioned on the backbone output ``z`` at an agent-motion token."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..motion import EXP, JAW, ROT
from .diffusion import GaussianDiffusion


def grouped_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample MSE as the reference weights it: mean over exp (50) + mean over jaw (3) + mean
    over head rotation (3), so one jaw/rotation dimension weighs ~16.7x one expression dim."""
    d = (pred - target) ** 2
    return d[:, EXP].mean(1) + d[:, JAW].mean(1) + d[:, ROT].mean(1)


def modulate(x, shift, scale):
    return x * (1 + scale) + shift


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden: int, freq_dim: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.freq_dim = freq_dim
        half = freq_dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t.float()[:, None] * self.freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        return self.mlp(emb)


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.in_ln = nn.LayerNorm(ch, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(ch, ch), nn.SiLU(), nn.Linear(ch, ch))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(ch, 3 * ch))

    def forward(self, x, y):
        shift, scale, gate = self.adaLN_modulation(y).chunk(3, dim=-1)
        h = modulate(self.in_ln(x), shift, scale)
        return x + gate * self.mlp(h)


class FinalLayer(nn.Module):
    def __init__(self, ch: int, out: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(ch, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(ch, out)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(ch, 2 * ch))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class SimpleMLPAdaLN(nn.Module):
    """MAR's denoiser: x_t -> w, t -> w, z -> w; residual AdaLN blocks; out = x0 | var values."""

    def __init__(self, in_ch: int, width: int, depth: int, cond_dim: int):
        super().__init__()
        self.in_ch = in_ch
        self.time_embed = TimestepEmbedder(width)
        self.cond_embed = nn.Linear(cond_dim, width)
        self.input_proj = nn.Linear(in_ch, width)
        self.res_blocks = nn.ModuleList([ResBlock(width) for _ in range(depth)])
        self.final_layer = FinalLayer(width, 2 * in_ch)
        self._init()

    def _init(self):
        def basic(m):
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

        self.apply(basic)
        nn.init.normal_(self.time_embed.mlp[0].weight, std=0.02)
        nn.init.normal_(self.time_embed.mlp[2].weight, std=0.02)
        for b in self.res_blocks:
            nn.init.zeros_(b.adaLN_modulation[-1].weight)
            nn.init.zeros_(b.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def forward(self, x, t, c):
        return self.forward_y(x, self.time_embed(t) + self.cond_embed(c))

    def forward_y(self, x, y):
        """With the conditioning vector y = time_embed(t) + cond_embed(c) precomputed."""
        x = self.input_proj(x)
        for b in self.res_blocks:
            x = b(x, y)
        return self.final_layer(x, y)


class DiffusionHead(nn.Module):
    """The reference's DiffLoss: training loss and respaced sampling with explicit noise."""

    kind = "diffusion"

    def __init__(
        self,
        motion_dim: int,
        cond_dim: int,
        width: int,
        depth: int,
        num_steps: int = 1000,
        num_sampling_steps: int = 5,
        batch_mul: int = 4,
        clamp_variance: bool = True,
    ):
        super().__init__()
        self.motion_dim = motion_dim
        self.batch_mul = batch_mul
        self.clamp_variance = clamp_variance
        self.net = SimpleMLPAdaLN(motion_dim, width, depth, cond_dim)
        self.diffusion = GaussianDiffusion(num_steps, num_sampling_steps)

    def loss(self, z: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """z [N, cond], target [N, 56] -> scalar mean over tokens (x batch_mul)."""
        z = z.repeat(self.batch_mul, 1)
        target = target.repeat(self.batch_mul, 1)
        t = torch.randint(
            0, self.diffusion.train_schedule.num_timesteps, (len(z),), device=z.device
        )
        noise = torch.randn_like(target)
        loss, parts = self.diffusion.training_losses(
            lambda x, tt: self.net(x, tt, z), target, t, noise, grouped_mse
        )
        return loss.mean(), {k: float(v.mean()) for k, v in parts.items()}

    def sample(
        self,
        z: torch.Tensor,
        x_T: torch.Tensor,
        step_noise: torch.Tensor,
        temperature: float = 1.0,
        z_uncond: torch.Tensor | None = None,
        guidance_scale: float = 1.0,
        guidance_groups: str = "all",
        guidance_steps: int = 0,
    ) -> torch.Tensor:
        """z [N, cond] -> motion [N, 56]. With ``z_uncond``, classifier-free guidance moves the
        x0 channels of ``guidance_groups`` ("all", or "pose": the head rotation) to uncond + s *
        (cond - uncond), in the first ``guidance_steps`` sampling steps (0: all); variance from
        cond. ``guidance_scale`` may be a 0-d tensor (an export's input)."""
        C = self.motion_dim
        net = self.net
        # sampling uses one timestep for all tokens: embed it once; embed the condition once
        if z_uncond is None:
            c_emb = net.cond_embed(z)

            def fn(x, t, k):
                return net.forward_y(x, net.time_embed(t[:1]) + c_emb)
        else:
            c_emb = net.cond_embed(torch.cat([z, z_uncond], 0))
            n = z.shape[0]
            mask = guidance_mask(C, guidance_groups, z.device)
            steps = guidance_steps or self.diffusion.sample_schedule.num_timesteps

            def fn(x, t, k):
                out = net.forward_y(torch.cat([x, x], 0), net.time_embed(t[:1]) + c_emb)
                cond, unc = out[:n], out[n:]  # not chunk(): an export keeps n symbolic
                if k >= steps:
                    return cond
                x0 = cond[:, :C] + (guidance_scale - 1.0) * mask * (cond[:, :C] - unc[:, :C])
                return torch.cat([x0, cond[:, C:]], 1)

        return self.diffusion.sample(fn, x_T, step_noise, temperature, self.clamp_variance)


def guidance_mask(motion_dim: int, groups: str, device=None) -> torch.Tensor:
    """[motion_dim] float: 1 on the channels guidance moves ("all", or "pose": head rotation)."""
    if groups == "all":
        return torch.ones(motion_dim, device=device)
    if groups == "pose":
        m = torch.zeros(motion_dim, device=device)
        m[ROT] = 1.0
        return m
    raise ValueError(f"guidance_groups must be 'all' or 'pose', got {groups!r}")


class MLPHead(nn.Module):
    """Ablation: deterministic regression, Linear(d, d/2) GELU Linear(d/2, 56), grouped MSE."""

    kind = "mlp"

    def __init__(self, motion_dim: int, cond_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(cond_dim, cond_dim // 2), nn.GELU(), nn.Linear(cond_dim // 2, motion_dim)
        )

    def loss(self, z, target):
        mse = grouped_mse(self.net(z), target)
        return mse.mean(), {"mse": float(mse.detach().mean())}

    def sample(
        self,
        z,
        x_T=None,
        step_noise=None,
        temperature=1.0,
        z_uncond=None,
        guidance_scale=1.0,
        guidance_groups="all",
        guidance_steps=0,
    ):
        out = self.net(z)
        if z_uncond is not None:  # one step: guidance_steps has nothing to choose from
            unc = self.net(z_uncond)
            mask = guidance_mask(out.shape[1], guidance_groups, out.device)
            out = out + (guidance_scale - 1.0) * mask * (out - unc)
        return out
