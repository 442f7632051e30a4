"""The per-robot retarget YAML (e.g. ``config/retarget_default.yaml``) as a validated
:class:`RetargetConfig`: joints with position, velocity and acceleration limits, the head
rotation -> neck joint map, the jaw map, the expression -> facial actuator matrix, smoothing and
the watchdog. A file that cannot be used raises :class:`RetargetConfigError` naming the file,
the field and the problem. The motion side is :mod:`timar_ros.robot.retarget`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from timar_ros.config_fields import check_keys, field_error, number
from timar_ros.errors import InputError
from timar_ros.robot.gaze import GazeConfig

EXP_DIM = 50
HEAD_SOURCES = ("yaw", "pitch", "roll")
JAW_AXES = {"x": 0, "y": 1, "z": 2}


class RetargetConfigError(InputError, ValueError):
    """A retarget YAML that cannot be used; the message names the file and the field."""


# ----------------------------------------------------------------------------- config
@dataclass(frozen=True)
class JointSpec:
    name: str
    min: float  # rad
    max: float  # rad
    max_velocity: float  # rad/s
    max_acceleration: float  # rad/s^2
    neutral: float  # rad


@dataclass(frozen=True)
class AngleMap:
    """joint = offset + sign * scale * source_angle (rad)."""

    joint: str
    source: str  # "yaw" | "pitch" | "roll" (head) or "x" | "y" | "z" (jaw)
    sign: float = 1.0
    scale: float = 1.0
    offset: float = 0.0


@dataclass
class ExpressionMap:
    """actuators[joints] = matrix @ expression + bias."""

    joints: list[str]
    matrix: np.ndarray  # [len(joints), 50]
    bias: np.ndarray  # [len(joints)]


@dataclass
class RetargetConfig:
    robot: str
    joints: list[JointSpec]
    head_rotation: list[AngleMap]
    jaw: AngleMap | None
    expression: ExpressionMap | None
    servo_rate_hz: float = 100.0
    smoothing_time_constant_s: float = 0.05
    watchdog_timeout_s: float = 0.5
    max_lead_s: float = 10.0
    max_abs_rotation_rad: float = 1.5
    max_abs_jaw_rad: float = 1.0
    max_abs_expression: float = 10.0
    gaze: GazeConfig = field(default_factory=GazeConfig)
    source: str = "<dict>"
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def joint_names(self) -> list[str]:
        return [j.name for j in self.joints]

    def index(self, name: str) -> int:
        return self.joint_names.index(name)

    @classmethod
    def from_yaml(cls, path: str | Path) -> RetargetConfig:
        path = Path(path)
        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f)
        except FileNotFoundError:
            raise RetargetConfigError(f"{path}: retarget config not found") from None
        except yaml.YAMLError as exc:
            raise RetargetConfigError(f"{path}: not valid YAML: {exc}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> RetargetConfig:
        return _parse(data, source)

    def limits(self) -> dict[str, np.ndarray]:
        """Per-joint arrays in output order: min, max, max_velocity, max_acceleration, neutral."""
        return {
            k: np.array([getattr(j, k) for j in self.joints], dtype=np.float64)
            for k in ("min", "max", "max_velocity", "max_acceleration", "neutral")
        }


def _err(source: str, where: str, msg: str) -> RetargetConfigError:
    return field_error(RetargetConfigError, source, where, msg)


def _check_keys(source, where, d, required, optional=()):
    check_keys(RetargetConfigError, source, where, d, required, optional)


def _num(source, where, value, positive=False, nonneg=False) -> float:
    return number(RetargetConfigError, source, where, value, positive, nonneg)


_TOP_REQUIRED = ("robot", "joints")
_TOP_OPTIONAL = (
    "servo_rate_hz",
    "smoothing_time_constant_s",
    "watchdog_timeout_s",
    "max_lead_s",
    "input_limits",
    "head_rotation",
    "jaw",
    "expression",
    "gaze",
    "convention",
)
_JOINT_KEYS = ("name", "min", "max", "max_velocity", "max_acceleration", "neutral")


def _parse(data: Any, source: str) -> RetargetConfig:
    _check_keys(source, "top level", data, _TOP_REQUIRED, _TOP_OPTIONAL)
    if not isinstance(data["robot"], str):
        raise _err(source, "robot", "must be a string")
    joints_raw = data["joints"]
    if not isinstance(joints_raw, list) or not joints_raw:
        raise _err(source, "joints", "must be a non-empty list of joints")
    joints: list[JointSpec] = []
    names: set[str] = set()
    for i, j in enumerate(joints_raw):
        where = f"joints[{i}]"
        _check_keys(source, where, j, ("name",) + _JOINT_KEYS[1:5], ("neutral",))
        name = j["name"]
        if not isinstance(name, str) or not name:
            raise _err(source, f"{where}.name", f"must be a non-empty string, got {name!r}")
        where = f"joints[{i}] ({name})"
        if name in names:
            raise _err(source, where, "duplicate joint name")
        names.add(name)
        lo = _num(source, f"{where}.min", j["min"])
        hi = _num(source, f"{where}.max", j["max"])
        if not lo < hi:
            raise _err(source, where, f"inverted or empty limits: min ({lo}) must be < max ({hi})")
        vel = _num(source, f"{where}.max_velocity", j["max_velocity"], positive=True)
        acc = _num(source, f"{where}.max_acceleration", j["max_acceleration"], positive=True)
        neutral = _num(source, f"{where}.neutral", j.get("neutral", 0.0))
        if not lo <= neutral <= hi:
            raise _err(source, where, f"neutral ({neutral}) is outside [min, max] = [{lo}, {hi}]")
        joints.append(JointSpec(name, lo, hi, vel, acc, neutral))

    def joint_ref(where, name):
        if name not in names:
            raise _err(source, where, f"unknown joint {name!r}; joints are {sorted(names)}")
        return name

    driven: dict[str, str] = {}

    def claim(name, where):
        if name in driven:
            raise _err(source, where, f"joint {name!r} is already driven by {driven[name]}")
        driven[name] = where

    head: list[AngleMap] = []
    hr = data.get("head_rotation") or {}
    if not isinstance(hr, dict):
        raise _err(
            source, "head_rotation", "must be a mapping joint -> {source, sign, scale, offset}"
        )
    for jname, m in hr.items():
        where = f"head_rotation.{jname}"
        joint_ref(where, jname)
        _check_keys(source, where, m, ("source",), ("sign", "scale", "offset"))
        if m["source"] not in HEAD_SOURCES:
            raise _err(
                source, f"{where}.source", f"must be one of {HEAD_SOURCES}, got {m['source']!r}"
            )
        sign = _num(source, f"{where}.sign", m.get("sign", 1.0))
        if sign not in (1.0, -1.0):
            raise _err(source, f"{where}.sign", f"must be 1 or -1, got {sign}")
        claim(jname, where)
        head.append(
            AngleMap(
                jname,
                m["source"],
                sign,
                _num(source, f"{where}.scale", m.get("scale", 1.0)),
                _num(source, f"{where}.offset", m.get("offset", 0.0)),
            )
        )

    jaw = None
    if data.get("jaw") is not None:
        m = data["jaw"]
        _check_keys(source, "jaw", m, ("joint",), ("axis", "sign", "scale", "offset"))
        jname = joint_ref("jaw.joint", m["joint"])
        axis = m.get("axis", "x")
        if axis not in JAW_AXES:
            raise _err(source, "jaw.axis", f"must be one of {sorted(JAW_AXES)}, got {axis!r}")
        sign = _num(source, "jaw.sign", m.get("sign", 1.0))
        if sign not in (1.0, -1.0):
            raise _err(source, "jaw.sign", f"must be 1 or -1, got {sign}")
        claim(jname, "jaw")
        jaw = AngleMap(
            jname,
            axis,
            sign,
            _num(source, "jaw.scale", m.get("scale", 1.0)),
            _num(source, "jaw.offset", m.get("offset", 0.0)),
        )

    expression = None
    if data.get("expression") is not None:
        m = data["expression"]
        _check_keys(source, "expression", m, ("joints", "matrix"), ("bias",))
        ej = m["joints"]
        if not isinstance(ej, list) or not ej:
            raise _err(source, "expression.joints", "must be a non-empty list of joint names")
        for k, jn in enumerate(ej):
            joint_ref(f"expression.joints[{k}]", jn)
            claim(jn, f"expression.joints[{k}]")
        mat = m["matrix"]
        if not isinstance(mat, list) or len(mat) != len(ej):
            got = len(mat) if isinstance(mat, list) else type(mat).__name__
            raise _err(
                source,
                "expression.matrix",
                f"wrong shape: expected {len(ej)} rows (one per expression joint) of {EXP_DIM}, "
                f"got {got} rows",
            )
        rows = []
        for r, row in enumerate(mat):
            if not isinstance(row, list) or len(row) != EXP_DIM:
                got = len(row) if isinstance(row, list) else type(row).__name__
                raise _err(
                    source,
                    f"expression.matrix[{r}] ({ej[r]})",
                    f"wrong shape: expected {EXP_DIM} columns (FLAME expression), got {got}",
                )
            rows.append(
                [_num(source, f"expression.matrix[{r}][{c}]", v) for c, v in enumerate(row)]
            )
        bias = m.get("bias", [0.0] * len(ej))
        if not isinstance(bias, list) or len(bias) != len(ej):
            raise _err(
                source, "expression.bias", f"wrong shape: expected {len(ej)} values, got {bias!r}"
            )
        expression = ExpressionMap(
            list(ej),
            np.array(rows, dtype=np.float64),
            np.array([_num(source, f"expression.bias[{k}]", v) for k, v in enumerate(bias)]),
        )

    if not driven:
        raise _err(source, "top level", "no joint is driven: give head_rotation, jaw or expression")
    il = data.get("input_limits") or {}
    _check_keys(
        source,
        "input_limits",
        il,
        (),
        ("max_abs_rotation_rad", "max_abs_jaw_rad", "max_abs_expression"),
    )
    gz = data.get("gaze") or {}
    names = tuple(GazeConfig.__dataclass_fields__)
    _check_keys(source, "gaze", gz, (), names)
    nonneg = {k for k in names if not k.startswith("rest_") or k == "rest_shift_s"}
    gaze = GazeConfig(
        **{k: _num(source, f"gaze.{k}", v, nonneg=k in nonneg) for k, v in gz.items()}
    )
    for k in ("main_sequence_intercept_deg_s", "min_shift_s"):
        if getattr(gaze, k) <= 0:
            raise _err(source, f"gaze.{k}", f"must be > 0, got {getattr(gaze, k)}")
    cfg = RetargetConfig(
        robot=data["robot"],
        joints=joints,
        head_rotation=head,
        jaw=jaw,
        expression=expression,
        servo_rate_hz=_num(
            source, "servo_rate_hz", data.get("servo_rate_hz", 100.0), positive=True
        ),
        smoothing_time_constant_s=_num(
            source,
            "smoothing_time_constant_s",
            data.get("smoothing_time_constant_s", 0.05),
            nonneg=True,
        ),
        watchdog_timeout_s=_num(
            source, "watchdog_timeout_s", data.get("watchdog_timeout_s", 0.5), positive=True
        ),
        max_lead_s=_num(source, "max_lead_s", data.get("max_lead_s", 10.0), positive=True),
        max_abs_rotation_rad=_num(
            source,
            "input_limits.max_abs_rotation_rad",
            il.get("max_abs_rotation_rad", 1.5),
            positive=True,
        ),
        max_abs_jaw_rad=_num(
            source, "input_limits.max_abs_jaw_rad", il.get("max_abs_jaw_rad", 1.0), positive=True
        ),
        max_abs_expression=_num(
            source,
            "input_limits.max_abs_expression",
            il.get("max_abs_expression", 10.0),
            positive=True,
        ),
        gaze=gaze,
        source=source,
        raw=data,
    )
    return cfg


def load_retarget_config(path: str | Path | None = None) -> RetargetConfig:
    """Load a retarget YAML; default: config/retarget_default.yaml of the package."""
    if path is None:
        from timar_ros.resources import config_path

        path = config_path("retarget_default.yaml")
    return RetargetConfig.from_yaml(path)
