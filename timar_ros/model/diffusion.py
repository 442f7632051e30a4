"""Gaussian diffusion for the per-token head (the reference's MAR/DiT diffusion, condensed).

Cosine schedule (s = 0.008, max beta 0.999) with ``diffusion_steps`` (1000) training steps,
x0 prediction, learned-range variance and the hybrid loss (MSE + VB, not rescaled). Sampling
is respaced ancestral DDPM (``p_sample``) over ``num_sampling_steps`` evenly spaced steps (the
learned variance clamped to its range unless ``clamp_variance`` is off, as the reference), with
all noise passed in as tensors so results are a pure function of the inputs (ONNX-exportable,
reproducible across backends). Temperature scales the per-step noise, not the initial noise.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def cosine_betas(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    def alpha_bar(t: float) -> float:
        return math.cos((t + s) / (1 + s) * math.pi / 2) ** 2

    return np.array(
        [
            min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), max_beta)
            for i in range(num_steps)
        ],
        dtype=np.float64,
    )


def space_timesteps(num_timesteps: int, section_counts: int) -> list[int]:
    """Evenly spaced kept steps (improved-diffusion's ``space_timesteps(T, "N")``)."""
    if section_counts >= num_timesteps:
        return list(range(num_timesteps))
    frac_stride = 1 if section_counts <= 1 else (num_timesteps - 1) / (section_counts - 1)
    cur, taken = 0.0, []
    for _ in range(section_counts):
        taken.append(round(cur))
        cur += frac_stride
    return sorted(set(taken))


class Schedule:
    """Precomputed float64 schedule quantities (as numpy; converted to torch buffers by users)."""

    def __init__(self, betas: np.ndarray, timestep_map: list[int] | None = None):
        self.betas = betas = np.asarray(betas, dtype=np.float64)
        self.num_timesteps = len(betas)
        self.timestep_map = np.asarray(
            timestep_map if timestep_map is not None else range(len(betas)), dtype=np.int64
        )
        alphas = 1.0 - betas
        self.alphas_cumprod = acp = np.cumprod(alphas)
        self.alphas_cumprod_prev = acp_prev = np.append(1.0, acp[:-1])
        self.sqrt_alphas_cumprod = np.sqrt(acp)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - acp)
        self.posterior_variance = pv = betas * (1.0 - acp_prev) / (1.0 - acp)
        self.posterior_log_variance_clipped = (
            np.log(np.append(pv[1], pv[1:])) if len(pv) > 1 else np.log(np.maximum(pv, 1e-20))
        )
        self.posterior_mean_coef1 = betas * np.sqrt(acp_prev) / (1.0 - acp)
        self.posterior_mean_coef2 = (1.0 - acp_prev) * np.sqrt(alphas) / (1.0 - acp)

    @classmethod
    def respaced(cls, base: Schedule, steps: int) -> Schedule:
        keep = space_timesteps(base.num_timesteps, steps)
        last, betas = 1.0, []
        for i, a in enumerate(base.alphas_cumprod):
            if i in keep:
                betas.append(1 - a / last)
                last = a
        return cls(np.array(betas), keep)


def _t(a: np.ndarray, device=None) -> torch.Tensor:
    return torch.as_tensor(a, dtype=torch.float32, device=device)


def normal_kl(mean1, logvar1, mean2, logvar2):
    return 0.5 * (
        -1.0
        + logvar2
        - logvar1
        + torch.exp(logvar1 - logvar2)
        + (mean1 - mean2) ** 2 * torch.exp(-logvar2)
    )


def _approx_standard_normal_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    """As in the reference (DiT/MAR), used for the t = 0 VB term."""
    centered_x = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = _approx_standard_normal_cdf(inv_stdv * (centered_x + 1.0 / 255.0))
    cdf_min = _approx_standard_normal_cdf(inv_stdv * (centered_x - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(
        x < -0.999,
        log_cdf_plus,
        torch.where(x > 0.999, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=1e-12))),
    )


class GaussianDiffusion(torch.nn.Module):
    """Training losses (full schedule) and respaced sampling, with schedule tensors as buffers."""

    def __init__(self, num_steps: int = 1000, num_sampling_steps: int = 5):
        super().__init__()
        self.train_schedule = Schedule(cosine_betas(num_steps))
        self.set_sampling_steps(num_sampling_steps)
        s = self.train_schedule
        for name in (
            "sqrt_alphas_cumprod",
            "sqrt_one_minus_alphas_cumprod",
            "betas",
            "posterior_log_variance_clipped",
            "posterior_mean_coef1",
            "posterior_mean_coef2",
            "posterior_variance",
        ):
            self.register_buffer("tr_" + name, _t(getattr(s, name)), persistent=False)

    def set_sampling_steps(self, steps: int) -> None:
        self.num_sampling_steps = int(steps)
        self.sample_schedule = Schedule.respaced(self.train_schedule, int(steps))

    # ---------------------------------------------------------------- training
    def q_sample(self, x0, t, noise):
        return (
            self.tr_sqrt_alphas_cumprod[t][:, None] * x0
            + self.tr_sqrt_one_minus_alphas_cumprod[t][:, None] * noise
        )

    def training_losses(self, model_fn, x0, t, noise, mse_fn):
        """Hybrid loss per sample: ``mse_fn(x0_pred, x0)`` + VB term. Returns (loss [N], parts)."""
        x_t = self.q_sample(x0, t, noise)
        out = model_fn(x_t, t)
        C = x0.shape[1]
        x0_pred, var_values = out[:, :C], out[:, C:]
        mse = mse_fn(x0_pred, x0)
        # VB term with a frozen mean (learns the variance only), as in improved diffusion.
        min_log = self.tr_posterior_log_variance_clipped[t][:, None]
        max_log = torch.log(self.tr_betas[t])[:, None]
        frac = (var_values + 1) / 2
        model_log_var = frac * max_log + (1 - frac) * min_log
        c1 = self.tr_posterior_mean_coef1[t][:, None]
        c2 = self.tr_posterior_mean_coef2[t][:, None]
        true_mean = c1 * x0 + c2 * x_t
        model_mean = c1 * x0_pred.detach() + c2 * x_t
        kl = normal_kl(true_mean, min_log, model_mean, model_log_var).mean(dim=1) / math.log(2.0)
        nll = -discretized_gaussian_log_likelihood(
            x0, means=model_mean, log_scales=0.5 * model_log_var
        ).mean(dim=1) / math.log(2.0)
        vb = torch.where(t == 0, nll, kl)
        return mse + vb, {"mse": mse.detach(), "vb": vb.detach()}

    # ---------------------------------------------------------------- sampling
    def sample(
        self,
        model_fn,
        x_T: torch.Tensor,
        step_noise: torch.Tensor,
        temperature: float = 1.0,
        clamp_variance: bool = True,
    ) -> torch.Tensor:
        """Respaced ancestral sampling.

        Args:
            model_fn: (x_t [N, C], t [N] in *original* timesteps, k: the step's index, 0 = the
                noisiest) -> [N, 2C] (x0 | var values).
            x_T: [N, C] initial noise (not scaled by temperature).
            step_noise: [S, N, C] per-step noise (S = num_sampling_steps; the last is unused).
            clamp_variance: keep the learned variance inside its bounds (False: the reference).
        """
        s = self.sample_schedule
        x = x_T
        C = x.shape[1]
        N = x.shape[0]
        steps = s.num_timesteps
        for k, i in enumerate(reversed(range(steps))):
            t = torch.full((N,), int(s.timestep_map[i]), dtype=torch.long, device=x.device)
            out = model_fn(x, t, k)
            x0_pred, var_values = out[:, :C], out[:, C:]
            min_log = float(s.posterior_log_variance_clipped[i])
            max_log = float(np.log(s.betas[i]))
            # The learned variance interpolates between the two bounds; kept inside them. The
            # training loss barely constrains the weight (over 1000 steps the bounds nearly
            # coincide), so an under-trained head can put it far outside [0, 1], and over
            # respaced steps, whose bounds differ by orders of magnitude, that extrapolates the
            # noise: measured sigma 1.8e7 at step 250 of 5 on a 500-step checkpoint.
            frac = (var_values + 1) / 2
            if clamp_variance:
                frac = frac.clamp(0.0, 1.0)
            log_var = frac * max_log + (1 - frac) * min_log
            mean = float(s.posterior_mean_coef1[i]) * x0_pred + float(s.posterior_mean_coef2[i]) * x
            if i > 0:
                x = mean + torch.exp(0.5 * log_var) * step_noise[k] * temperature
            else:
                x = mean
        return x
