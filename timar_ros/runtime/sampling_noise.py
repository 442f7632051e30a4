"""Sampling noise as a pure function of (seed, turn index), shared by every backend.

numpy's PCG64 seeded by ``SeedSequence([seed, turn])`` gives the same float32 arrays on every
platform, so the torch and onnxruntime backends, the streaming step and the parallel offline
path all draw identical noise for a turn. Imports only numpy.

Correlated noise (``tau_frames`` > 0): the diffusion head draws each frame's motion from its own
noise, so independent noise per frame makes the motion jitter from frame to frame however smooth
the conditioning is. Here each frame's noise is an exponentially weighted sum (time constant
``tau_frames``) of the innovations of the last K*F + 1 frames, normalised to unit variance: every
frame is still N(0, 1), so each frame's motion comes from the same distribution as with
independent noise, but neighbouring frames draw alike. The kernel reaches back K whole turns
(K = ceil(4 tau / F), at least 1: the truncated weight is below e^-4), whose innovations are
functions of (seed, turn - k): the noise of a turn stays a pure function of (seed, turn),
continuous across turn boundaries, with no state to carry.

Held noise (``hold`` [dim] in [0, 1)): a share of each dimension's noise that is one draw for the
whole conversation (a function of the seed only): ``sqrt(h) c + sqrt(1 - h) n_t``, still N(0, 1)
per frame. The policy never sees its own past motion (history agent motion stays masked, as in
the reference), so what it cannot infer, such as the face's own resting expression, it would
otherwise redraw every second; holding part of the expression noise keeps that baseline through
the conversation, as a person's.
"""

from __future__ import annotations

import functools
import math

import numpy as np

MOTION_DIM = 56


def _innovations(seed: int, turn: int, frames: int, steps: int, dim: int):
    if turn >= 0:
        ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, int(turn)])
    else:  # turns before the first: streams of their own (a turn key cannot be negative)
        ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, -int(turn), 1])
    rng = np.random.Generator(np.random.PCG64(ss))
    x_T = rng.standard_normal((frames, dim), dtype=np.float32)
    step = rng.standard_normal((steps, frames, dim), dtype=np.float32)
    return x_T, step


def turns_back(frames: int, tau_frames: float) -> int:
    """K: how many previous turns the kernel of time constant ``tau_frames`` reaches into."""
    return 0 if tau_frames <= 0 else max(1, math.ceil(4.0 * tau_frames / frames))


@functools.lru_cache(maxsize=8)
def noise_kernel(frames: int, tau_frames: float) -> np.ndarray:
    """[F, (K+1) F] float32, read-only (cached: every turn of a stream uses the same): row f
    mixes the innovations of the K previous turns and this one (columns in time order, this
    turn last) into frame f's noise: weights exp(-lag / tau) for lags 0..K*F, the same for
    every row, with unit norm."""
    F = int(frames)
    K = turns_back(F, tau_frames)
    k = np.arange(K * F + 1)
    w = np.exp(-k / float(tau_frames)) if tau_frames > 0 else (k == 0).astype(np.float64)
    w /= np.sqrt(np.sum(w * w))
    M = np.zeros((F, (K + 1) * F))
    cols = np.arange((K + 1) * F)
    for f in range(F):
        lag = K * F + f - cols  # lag of every innovation column from frame f
        ok = (lag >= 0) & (lag <= K * F)
        M[f, ok] = w[lag[ok]]
    M = M.astype(np.float32)
    M.setflags(write=False)
    return M


def hold_vector(exp_hold: float, dim: int = MOTION_DIM) -> np.ndarray | None:
    """[dim] held share per dimension: ``exp_hold`` on the 50 expression dimensions, 0 on the
    jaw and the head rotation; None when nothing is held."""
    if not 0.0 <= exp_hold < 1.0:
        raise ValueError(f"noise_hold_exp must be in [0, 1), got {exp_hold}")
    if exp_hold == 0:
        return None
    h = np.zeros(dim, np.float32)
    h[:50] = exp_hold
    return h


def turn_noise(
    seed: int,
    turn: int,
    frames: int,
    steps: int,
    dim: int = MOTION_DIM,
    tau_frames: float = 0.0,
    hold: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Initial noise x_T [frames, dim] and per-step noise [steps, frames, dim], float32.

    ``tau_frames``: time constant of the noise's correlation over frames (0: independent).
    ``hold``: [dim] share of each dimension's noise held for the whole conversation."""
    if turn < 0:
        raise ValueError(f"turn index must be >= 0, got {turn}")
    if not tau_frames >= 0:
        raise ValueError(f"tau_frames must be >= 0, got {tau_frames}")
    x_T, step = _innovations(seed, turn, frames, steps, dim)
    if tau_frames > 0:
        K = turns_back(frames, tau_frames)
        past = [_innovations(seed, turn - k, frames, steps, dim) for k in range(K, 0, -1)]
        M = noise_kernel(frames, tau_frames)
        x_T = M @ np.concatenate([p[0] for p in past] + [x_T], 0)
        step = np.einsum("fg,sgd->sfd", M, np.concatenate([p[1] for p in past] + [step], 1))
    if hold is not None:
        h = np.asarray(hold, np.float64)
        ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, 0, 2])
        rng = np.random.Generator(np.random.PCG64(ss))
        cx, cs = rng.standard_normal(dim), rng.standard_normal((steps, 1, dim))
        x_T = np.sqrt(h) * cx + np.sqrt(1 - h) * x_T
        step = np.sqrt(h) * cs + np.sqrt(1 - h) * step
    return x_T.astype(np.float32), step.astype(np.float32)


def conversation_noise(
    seed: int,
    n_turns: int,
    frames: int,
    steps: int,
    first_turn: int = 0,
    dim: int = MOTION_DIM,
    tau_frames: float = 0.0,
    hold: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Noise of turns first_turn..first_turn+n_turns-1, stacked: [N*frames, dim] and
    [steps, N*frames, dim]."""
    xs, ss = zip(
        *(
            turn_noise(seed, first_turn + t, frames, steps, dim, tau_frames, hold)
            for t in range(n_turns)
        )
    )
    return np.concatenate(xs, 0), np.concatenate(ss, 1)


def check_noise(noise):
    """A policy's ``noise`` option: None (seeded draws), "zeros", or a callable
    ``(turn, frames, steps) -> (x_T [frames, 56], step_noise [steps, frames, 56])``."""
    if noise is None or noise == "zeros" or callable(noise):
        return noise
    raise ValueError(
        f"noise must be None (seeded draws), 'zeros' (every Gaussian draw of the sampler set "
        f"to 0, for comparing implementations) or a callable (turn, frames, steps) -> (x_T "
        f"[frames, 56], step_noise [steps, frames, 56]); got {noise!r}"
    )


def policy_noise(
    noise,
    seed: int,
    n_turns: int,
    frames: int,
    steps: int,
    first_turn: int = 0,
    tau_frames: float = 0.0,
    hold: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The sampler's draws for turns first_turn.. as :func:`conversation_noise` stacks them,
    from a policy's ``noise`` option (:func:`check_noise`): None draws from ``seed`` (with the
    correlation and hold); "zeros" is all zeros; a callable gives each turn's draws."""
    if noise is None:
        return conversation_noise(
            seed, n_turns, frames, steps, first_turn, tau_frames=tau_frames, hold=hold
        )
    if noise == "zeros":
        return (
            np.zeros((n_turns * frames, MOTION_DIM), np.float32),
            np.zeros((steps, n_turns * frames, MOTION_DIM), np.float32),
        )
    xs, ss = [], []
    for t in range(first_turn, first_turn + n_turns):
        x_T, step = noise(t, frames, steps)
        x_T, step = np.asarray(x_T, np.float32), np.asarray(step, np.float32)
        if x_T.shape != (frames, MOTION_DIM) or step.shape != (steps, frames, MOTION_DIM):
            raise ValueError(
                f"noise callable for turn {t} returned shapes {x_T.shape} and {step.shape}; "
                f"want ({frames}, {MOTION_DIM}) and ({steps}, {frames}, {MOTION_DIM})"
            )
        xs.append(x_T)
        ss.append(step)
    return np.concatenate(xs, 0), np.concatenate(ss, 1)
