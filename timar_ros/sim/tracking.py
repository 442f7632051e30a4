"""How well the simulated joints follow their commands: per joint the RMS and worst tracking
error, and the lag at which the measured positions correlate best with the commands."""

from __future__ import annotations

import numpy as np


def best_lag(command: np.ndarray, measured: np.ndarray, dt: float, max_lag_s: float) -> float:
    """Lag (s, >= 0) at which ``measured`` [T] correlates best with ``command`` [T] shifted
    later by it; 0.0 for a signal that does not move (nothing to correlate)."""
    c = command - command.mean()
    m = measured - measured.mean()
    if c.std() < 1e-9 or m.std() < 1e-9:
        return 0.0
    best, best_r = 0, -np.inf
    for k in range(int(round(max_lag_s / dt)) + 1):
        a, b = c[: len(c) - k], m[k:]
        if len(a) < 2:
            break
        r = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
        if r > best_r:
            best, best_r = k, r
    return best * dt


def tracking_figures(
    times: np.ndarray,
    command: np.ndarray,
    measured: np.ndarray,
    joint_names: list[str],
    max_lag_s: float = 0.3,
) -> dict:
    """times [T] s (uniform), command and measured [T, n] rad -> per joint
    {rms_rad, worst_rad, lag_s, command_range_rad}, and the worst joint of each figure."""
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    err = measured - command
    joints = {}
    for j, name in enumerate(joint_names):
        joints[name] = {
            "rms_rad": float(np.sqrt(np.mean(err[:, j] ** 2))),
            "worst_rad": float(np.max(np.abs(err[:, j]))),
            "lag_s": best_lag(command[:, j], measured[:, j], dt, max_lag_s) if dt else 0.0,
            "command_range_rad": float(np.ptp(command[:, j])),
        }
    return {
        "samples": int(len(times)),
        "period_s": dt,
        "joints": joints,
        "max_rms": max(joints.items(), key=lambda kv: kv[1]["rms_rad"])[0],
        "max_worst": max(joints.items(), key=lambda kv: kv[1]["worst_rad"])[0],
    }
