"""Learning-rate schedule: linear warmup from 0, then constant (reference default) or cosine."""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine")


def lr_at(
    step: int,
    base_lr: float,
    warmup_steps: int,
    total_steps: int,
    schedule: str = "constant",
    min_lr: float = 0.0,
) -> float:
    """Learning rate of optimizer step ``step`` (0-based).

    Warmup: ``base_lr * (step + 1) / warmup_steps`` for ``step < warmup_steps`` (the reference
    warms up per iteration). After it, ``base_lr`` (constant) or a half cosine from ``base_lr``
    down to ``min_lr`` at ``total_steps``.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    span = max(1, total_steps - warmup_steps)
    frac = min(1.0, (step - warmup_steps) / span)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * frac))
