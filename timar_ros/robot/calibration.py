"""Fit the linear expression -> facial actuator map from example pairs (no ROS).

Collect pairs by posing the robot's face to match example FLAME expressions (or by reading a
face tracker while a person mimics the robot), then::

    timar calibrate pairs.npz --config config/retarget_default.yaml \
        --out my_robot_retarget.yaml [--ridge 1e-3]

``pairs.npz`` holds ``expression`` [N, 50], ``actuators`` [N, J] (rad) and ``joints`` [J] (names,
which must be joints of the config). The fitted ``matrix`` [J, 50] and ``bias`` [J] replace the
config's ``expression`` section; the output is validated by loading it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from timar_ros.files import write_text_atomic
from timar_ros.robot.retarget_config import EXP_DIM, RetargetConfig


@dataclass
class ExpressionFit:
    joints: list[str]
    matrix: np.ndarray  # [J, 50]
    bias: np.ndarray  # [J]
    rms_error: np.ndarray  # [J] training residual RMS (rad)
    rank: int  # numerical rank of the design matrix


def fit_expression_map(
    expression, actuators, joints, ridge: float = 0.0, fit_bias: bool = True
) -> ExpressionFit:
    """Least squares (optionally ridge) fit of ``actuators ~= expression @ matrix.T + bias``.

    Args:
        expression: [N, 50] FLAME expression coefficients.
        actuators: [N, J] actuator positions (rad).
        joints: J joint names (columns of ``actuators``).
        ridge: L2 penalty on ``matrix`` (not on the bias); 0 = plain least squares (numpy lstsq).
        fit_bias: fit an intercept; otherwise bias = 0.
    """
    x = np.asarray(expression, dtype=np.float64)
    y = np.asarray(actuators, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != EXP_DIM:
        raise ValueError(f"expression must be [N, {EXP_DIM}], got {x.shape}")
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or len(y) != len(x):
        raise ValueError(f"actuators must be [N, J] with N = {len(x)}, got {y.shape}")
    if y.shape[1] != len(joints):
        raise ValueError(
            f"actuators has {y.shape[1]} columns but {len(joints)} joint names were given"
        )
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("calibration pairs contain NaN or Inf")
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    if fit_bias:
        xm, ym = x.mean(0), y.mean(0)
        xc, yc = x - xm, y - ym
    else:
        xm, ym = np.zeros(EXP_DIM), np.zeros(y.shape[1])
        xc, yc = x, y
    if ridge > 0:
        a = np.vstack([xc, np.sqrt(ridge) * np.eye(EXP_DIM)])
        b = np.vstack([yc, np.zeros((EXP_DIM, y.shape[1]))])
    else:
        a, b = xc, yc
    w, _, rank, _ = np.linalg.lstsq(a, b, rcond=None)  # [50, J]
    matrix = w.T
    bias = ym - matrix @ xm
    resid = y - (x @ matrix.T + bias)
    return ExpressionFit(list(joints), matrix, bias, np.sqrt(np.mean(resid**2, axis=0)), int(rank))


class _FlowListDumper(yaml.SafeDumper):
    pass


def _repr_list(dumper, data):
    flow = all(isinstance(v, (int, float, str)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_FlowListDumper.add_representer(list, _repr_list)


def load_pairs(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(expression [N, 50], actuators [N, J] rad, joint names [J]) from a pairs ``.npz``."""
    need = "a pairs .npz holds expression [N, 50], actuators [N, J] (rad) and joints [J] (names)"
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"expression", "actuators", "joints"} - set(z.files)
            if missing:
                raise ValueError(f"{path}: missing arrays {sorted(missing)}; {need}")
            return z["expression"], z["actuators"], [str(j) for j in z["joints"]]
    except (OSError, ValueError) as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"{path}: not a usable .npz ({exc}); {need}") from None


def write_expression_map(
    config_in: str | Path, out: str | Path, fit: ExpressionFit, decimals: int = 6
) -> RetargetConfig:
    """Write ``config_in`` with its ``expression`` section replaced by ``fit`` to ``out``.

    Comments of the input are not kept. Returns the loaded (validated) output config.
    """
    RetargetConfig.from_yaml(config_in)  # a bad input config is named as itself, not as `out`
    with open(config_in, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    data["expression"] = {
        "joints": list(fit.joints),
        "bias": [round(float(v), decimals) for v in fit.bias],
        "matrix": [[round(float(v), decimals) for v in row] for row in fit.matrix],
    }
    RetargetConfig.from_dict(data, source=str(out))  # validate before writing
    text = yaml.dump(data, Dumper=_FlowListDumper, sort_keys=False, width=1 << 16)
    header = (
        f"# Retarget config with an expression map fitted by `timar calibrate`\n"
        f"# from {Path(config_in).name}; per-joint training RMS error (rad): "
        + ", ".join(f"{j}={e:.4g}" for j, e in zip(fit.joints, fit.rms_error))
        + "\n"
    )
    write_text_atomic(out, header + text)
    return RetargetConfig.from_yaml(out)
