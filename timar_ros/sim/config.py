"""The sim config YAML (``config/sim_head.yaml``) as a validated :class:`SimConfig`, and the
joint limits of a URDF (:func:`urdf_joint_limits`). A file that cannot be used raises
:class:`SimConfigError` naming the file, the field and the problem."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from timar_ros.config_fields import check_keys, field_error, number
from timar_ros.errors import InputError


class SimConfigError(InputError, ValueError):
    """A sim config or URDF that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class ServoClass:
    """Servo parameters shared by ``joints`` (see config/sim_head.yaml for the model)."""

    name: str
    joints: tuple[str, ...]
    bandwidth_hz: float
    damping_ratio: float
    armature: float  # kg m^2
    frictionloss: float  # N m
    kp: float | None = None  # N m / rad; None: from the bandwidth
    kv: float | None = None  # N m s / rad; None: from the bandwidth and damping ratio


@dataclass(frozen=True)
class CameraConfig:
    width: int = 320
    height: int = 240
    lookat: tuple[float, float, float] = (0.02, 0.0, 0.24)
    distance: float = 0.5
    azimuth_deg: float = 180.0
    elevation_deg: float = -5.0


@dataclass(frozen=True)
class SimConfig:
    timestep_s: float
    servo_classes: tuple[ServoClass, ...]
    camera: CameraConfig
    source: str = "<dict>"

    def servo_of(self, joint: str) -> ServoClass | None:
        return next((c for c in self.servo_classes if joint in c.joints), None)

    @classmethod
    def from_yaml(cls, path: str | Path) -> SimConfig:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SimConfigError(f"{path}: sim config not found") from None
        except yaml.YAMLError as exc:
            raise SimConfigError(f"{path}: not valid YAML: {exc}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> SimConfig:
        _keys(source, "top level", data, {"timestep_s", "servo_classes"}, {"camera"})
        dt = _positive(source, "timestep_s", data["timestep_s"])
        classes_raw = data["servo_classes"]
        if not isinstance(classes_raw, dict) or not classes_raw:
            raise _err(source, "servo_classes", "must be a non-empty mapping of class -> fields")
        classes, seen = [], {}
        for name, c in classes_raw.items():
            where = f"servo_classes.{name}"
            _keys(
                source,
                where,
                c,
                {"joints", "bandwidth_hz", "damping_ratio", "armature", "frictionloss"},
                {"kp", "kv"},
            )
            joints = c["joints"]
            if not isinstance(joints, list) or not all(isinstance(j, str) for j in joints):
                raise _err(source, f"{where}.joints", "must be a list of joint names")
            for j in joints:
                if j in seen:
                    raise _err(source, f"{where}.joints", f"{j} is also in class {seen[j]}")
                seen[j] = name
            classes.append(
                ServoClass(
                    name=str(name),
                    joints=tuple(joints),
                    bandwidth_hz=_positive(source, f"{where}.bandwidth_hz", c["bandwidth_hz"]),
                    damping_ratio=_positive(source, f"{where}.damping_ratio", c["damping_ratio"]),
                    armature=_non_negative(source, f"{where}.armature", c["armature"]),
                    frictionloss=_non_negative(source, f"{where}.frictionloss", c["frictionloss"]),
                    kp=None if c.get("kp") is None else _positive(source, f"{where}.kp", c["kp"]),
                    kv=None
                    if c.get("kv") is None
                    else _non_negative(source, f"{where}.kv", c["kv"]),
                )
            )
        cam = data.get("camera") or {}
        _keys(source, "camera", cam, set(), set(CameraConfig.__dataclass_fields__))
        camera = CameraConfig(**{k: tuple(v) if k == "lookat" else v for k, v in cam.items()})
        if camera.width < 16 or camera.height < 16:
            raise _err(source, "camera", "width and height must be >= 16 pixels")
        return cls(dt, tuple(classes), camera, source)


@dataclass(frozen=True)
class UrdfJoint:
    name: str
    lower: float  # rad
    upper: float  # rad
    velocity: float  # rad/s: the servo's top speed
    effort: float  # N m: its stall torque


def urdf_joint_limits(path: str | Path) -> list[UrdfJoint]:
    """The revolute joints of a URDF in file order, with their <limit> (every one must have
    lower, upper, velocity and effort: a servo without them cannot be simulated safely)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise SimConfigError(f"{path}: URDF not found") from None
    except ET.ParseError as exc:
        raise SimConfigError(f"{path}: not valid XML: {exc}") from None
    out = []
    for j in root.iter("joint"):
        if j.get("type") not in ("revolute", "continuous", "prismatic"):
            continue
        lim = j.find("limit")
        where = f"joint {j.get('name')}"
        if lim is None:
            raise SimConfigError(
                f"{path}: {where} has no <limit>: give lower/upper/velocity/effort"
            )
        try:
            vals = {k: float(lim.get(k)) for k in ("lower", "upper", "velocity", "effort")}
        except (TypeError, ValueError):
            raise SimConfigError(
                f"{path}: {where}: <limit> needs numeric lower, upper, velocity and effort"
            ) from None
        if not vals["lower"] < vals["upper"] or vals["velocity"] <= 0 or vals["effort"] <= 0:
            raise SimConfigError(
                f"{path}: {where}: <limit> needs lower < upper, velocity > 0 and effort > 0"
            )
        out.append(UrdfJoint(j.get("name"), **vals))
    if not out:
        raise SimConfigError(f"{path}: no revolute or prismatic joints to simulate")
    return out


def load_sim_config(path: str | Path | None = None) -> SimConfig:
    """Load a sim config YAML; default: config/sim_head.yaml of the package."""
    if path is None:
        from timar_ros.resources import config_path

        path = config_path("sim_head.yaml")
    return SimConfig.from_yaml(path)


def _err(source: str, where: str, msg: str) -> SimConfigError:
    return field_error(SimConfigError, source, where, msg)


def _keys(source, where, d, required, optional=()):
    check_keys(SimConfigError, source, where, d, required, optional)


def _positive(source, where, v) -> float:
    return number(SimConfigError, source, where, v, positive=True)


def _non_negative(source, where, v) -> float:
    return number(SimConfigError, source, where, v, nonneg=True)
