"""Exponential moving average of a model's weights (the weights that get exported).

As the reference: the average starts as a copy of the initial weights and is updated after
every optimizer step, ``ema = rate * ema + (1 - rate) * weights``. The reference rate 0.9999
averages over about 10k steps; short CPU runs need a faster rate (e.g. 0.999) or the exported
weights stay close to the random initialisation.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """An EMA copy of ``model`` (same class, same config, eval mode, no gradients).

    ``model``: the raw (not DDP-wrapped) module. ``rate`` in [0, 1): 0 copies the weights.
    """

    def __init__(self, model: nn.Module, rate: float):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"EMA rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """``ema <- rate * ema + (1 - rate) * model`` for floating state; other state copied."""
        src = model.state_dict()
        for k, v in self.model.state_dict().items():
            s = src[k].detach()
            if v.dtype.is_floating_point:
                v.lerp_(s.to(v.dtype), 1.0 - self.rate)
            else:
                v.copy_(s)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(sd)
