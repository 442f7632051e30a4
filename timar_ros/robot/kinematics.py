"""The robot's URDF as forward kinematics (no ROS): points between its links at given joint
positions, and the neck angles that point a link (e.g. a camera, the eyes) at a point.

This stands in for tf2 (whose Python binding is not installable from the wheels we use): a
target in a head-mounted camera's frame moves with the head, so it is transformed with the
joint positions of the moment it was seen. A user with tf can transform targets into the base
frame first and publish them there (a point in ``base_frame`` needs no kinematics).
"""

from __future__ import annotations

import math
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

_FREE = (-math.pi, math.pi)


class UnknownFrame(ValueError):
    """A frame the URDF does not have."""


class HeadKinematics:
    """Forward kinematics of a URDF.

    Args:
        urdf: the URDF's XML text or a path to it.
        base_frame: the link the gaze angles are measured in (REP-103: x forward, z up).
        gaze_frame: the link whose +x is where the head looks (e.g. a camera link).
        yaw_joint, pitch_joint: the neck joints that turn and tilt the head.
    """

    def __init__(self, urdf: str | Path, base_frame: str, gaze_frame: str, yaw_joint, pitch_joint):
        # imported here: it loads scipy.sparse (~0.5 s), which a node without targets skips
        from pytransform3d.urdf import UrdfTransformManager

        text = Path(urdf).read_text() if not str(urdf).lstrip().startswith("<") else str(urdf)
        self.tm = UrdfTransformManager(check=False)
        self.tm.load_urdf(text)
        root = ElementTree.fromstring(text)
        self.frames = {link.get("name") for link in root.iter("link")}
        joints = [j for j in root.findall("joint") if j.get("type") != "fixed"]  # the movable
        self.joints = {j.get("name") for j in joints}
        # the joints' limits: set_joint clips to them, so the aim must too
        self.limits = {
            j.get("name"): (float(lim.get("lower", "-inf")), float(lim.get("upper", "inf")))
            for j in joints
            if (lim := j.find("limit")) is not None
        }
        for frame in (base_frame, gaze_frame):
            self.check_frame(frame)
        for joint in (yaw_joint, pitch_joint):
            if joint not in self.joints:
                raise ValueError(f"the URDF has no joint {joint!r}; it has {sorted(self.joints)}")
        self.base_frame, self.gaze_frame = base_frame, gaze_frame
        self.yaw_joint, self.pitch_joint = yaw_joint, pitch_joint

    def check_frame(self, frame: str) -> None:
        """Raise UnknownFrame naming the frames there are."""
        if frame not in self.frames:
            raise UnknownFrame(
                f"unknown frame {frame!r}: the URDF's links are {', '.join(sorted(self.frames))}"
            )

    def _set(self, joints: dict[str, float]) -> None:
        for name, value in joints.items():
            if name in self.joints:
                self.tm.set_joint(name, float(value))

    def to_base(self, point, frame: str, joints: dict[str, float]) -> np.ndarray:
        """``point`` [3] (m) in ``frame`` -> [3] in the base frame, at joint positions (rad)."""
        self.check_frame(frame)
        self._set(joints)
        t = self.tm.get_transform(frame, self.base_frame)
        return t[:3, :3] @ np.asarray(point, dtype=np.float64) + t[:3, 3]

    def from_base(self, point_base, frame: str, joints: dict[str, float]) -> np.ndarray:
        """``point_base`` [3] (m) in the base frame -> [3] in ``frame``, at joint positions
        (rad): where a sensor on that link sees it (the inverse of :meth:`to_base`)."""
        self.check_frame(frame)
        self._set(joints)
        t = self.tm.get_transform(frame, self.base_frame)
        return t[:3, :3].T @ (np.asarray(point_base, dtype=np.float64) - t[:3, 3])

    def aim(
        self, point_base, joints: dict[str, float], iterations: int = 10
    ) -> tuple[float, float]:
        """Yaw and pitch joint positions (rad) that point the gaze frame's +x at ``point_base``
        [3] (m, base frame), or as near as the joints' limits let them (a target behind the
        robot: the yaw at its limit on that side); the other joints as in ``joints``."""
        p = np.asarray(point_base, dtype=np.float64)
        q = dict(joints)
        yaw = q.get(self.yaw_joint, 0.0)
        pitch = q.get(self.pitch_joint, 0.0)
        for _ in range(iterations):
            q[self.yaw_joint], q[self.pitch_joint] = yaw, pitch
            local = self.from_base(p, self.gaze_frame, q)
            d_yaw = math.atan2(local[1], local[0])
            d_pitch = -math.atan2(local[2], math.hypot(local[0], local[1]))
            new_yaw = float(np.clip(yaw + d_yaw, *self.limits.get(self.yaw_joint, _FREE)))
            new_pitch = float(np.clip(pitch + d_pitch, *self.limits.get(self.pitch_joint, _FREE)))
            if abs(new_yaw - yaw) < 1e-8 and abs(new_pitch - pitch) < 1e-8:
                break
            yaw, pitch = new_yaw, new_pitch
        return yaw, pitch
