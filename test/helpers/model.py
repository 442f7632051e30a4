"""Small TIMAR models and conversations for the model/runtime tests (tiny preset)."""

from __future__ import annotations

import numpy as np
import torch

from timar_ros.model.config import preset
from timar_ros.model.timar import TIMAR, perturb_zero_init


def tiny_model(seed: int = 0, **overrides) -> TIMAR:
    """A tiny TIMAR whose head output depends on its inputs (zero-init weights perturbed)."""
    torch.manual_seed(seed)
    overrides.setdefault("window_turns", 3)  # short window: eviction after 3 turns
    m = TIMAR(preset("tiny", **overrides))
    perturb_zero_init(m, 0.2, seed)
    return m.eval()


def conversation(model, n_turns: int, seed: int = 0, motion: bool = True):
    """Random user/agent audio (speech-like amplitude) and user motion for ``n_turns`` turns."""
    rng = np.random.default_rng(seed)
    spt, F = model.config.samples_per_turn, model.config.frames_per_turn
    env = np.repeat(rng.uniform(0.0, 0.3, n_turns * F), spt // F).astype(np.float32)
    ua = rng.standard_normal(n_turns * spt).astype(np.float32) * env
    aa = rng.standard_normal(n_turns * spt).astype(np.float32) * env[::-1].copy()
    um = rng.standard_normal((n_turns * F, 56)).astype(np.float32) * 0.3 if motion else None
    return ua, aa, um


def stream(policy, ua, aa, um=None):
    """Step a policy over a whole conversation; -> [N*F, 56]."""
    spt, F = policy.samples_per_turn, policy.frames_per_turn
    n = len(ua) // spt
    out = [
        policy.step(
            ua[t * spt : (t + 1) * spt],
            aa[t * spt : (t + 1) * spt],
            None if um is None else um[t * F : (t + 1) * F],
        )
        for t in range(n)
    ]
    return np.concatenate(out, 0)


def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# Import into a test module to run its tests on one torch thread: tiny models gain nothing from
# more, and on a busy 2-core machine two threads spin against each other (10x slower).
one_thread_module = __import__("pytest").fixture(scope="module", autouse=True)(_one_thread)
