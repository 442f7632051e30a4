"""Attention targets as the head's directions (no ROS): a 3D point in any URDF frame, or a
microphone array's direction of arrival, -> (yaw, pitch) in the base frame (REP-103, rad).

A point seen by a head-mounted camera moves with the head: it is transformed with the joint
positions of the moment it was seen (the joint history, :meth:`TargetAimer.record`). A direction
of arrival says where, not how far nor (often) how high: it is taken as a point
``sound_distance_m`` away (a person across a table) at the height of the head's gaze frame,
raised by its elevation, so an array low on the body still has the head look level at people.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

import numpy as np

from timar_ros.robot.kinematics import HeadKinematics
from timar_ros.robot.retarget_config import AngleMap


class TargetAimer:
    """Aim the head at targets through the URDF.

    Args:
        kinematics: the URDF's kinematics (base and gaze frames, the neck yaw/pitch joints).
        yaw_map, pitch_map: the retarget config's maps of REP-103 yaw/pitch to those joints.
        sound_distance_m: the distance taken for a direction of arrival (m).
        history_s: how long joint positions are kept for stamps in the past (s).
    """

    def __init__(
        self,
        kinematics: HeadKinematics,
        yaw_map: AngleMap,
        pitch_map: AngleMap,
        sound_distance_m: float = 1.2,
        history_s: float = 3.0,
    ):
        self.kin = kinematics
        self.yaw_map, self.pitch_map = yaw_map, pitch_map
        self.sound_distance_m = float(sound_distance_m)
        self.history_s = float(history_s)
        self._times: deque[float] = deque()
        self._joints: deque[dict[str, float]] = deque()

    def record(self, t: float, joints: dict[str, float]) -> None:
        """Joint positions (rad) at time t (s): commanded or measured, in time order."""
        if self._times and t <= self._times[-1]:
            if t < self._times[-1] - 1.0:  # the clock went back (a sim reset): start again
                self._times.clear()
                self._joints.clear()
            else:
                return
        self._times.append(t)
        self._joints.append(dict(joints))
        while self._times and self._times[0] < t - self.history_s:
            self._times.popleft()
            self._joints.popleft()

    def joints_at(self, t: float) -> dict[str, float]:
        """The joint positions recorded last at or before t (the oldest kept, before them)."""
        if not self._times:
            return {}
        i = bisect.bisect_right(self._times, t)
        return self._joints[max(i - 1, 0)]

    def point(self, frame: str, xyz, stamp_s: float) -> np.ndarray:
        """A point [3] (m) in ``frame`` seen at ``stamp_s`` -> the direction [2] (yaw, pitch,
        rad); UnknownFrame for a frame the URDF does not have, NaN for a non-finite point."""
        xyz = np.asarray(xyz, dtype=np.float64)
        if not np.isfinite(xyz).all():
            return np.full(2, np.nan)
        joints = self.joints_at(stamp_s)
        base = self.kin.to_base(xyz, frame, joints)
        yaw, pitch = self.kin.aim(base, joints)
        return np.array(
            [
                (yaw - self.yaw_map.offset) * self.yaw_map.sign,
                (pitch - self.pitch_map.offset) * self.pitch_map.sign,
            ]
        )

    def sound(self, frame: str, azimuth: float, elevation: float, stamp_s: float) -> np.ndarray:
        """A direction of arrival (rad, REP-103 in ``frame``) -> the direction [2] (yaw, pitch)."""
        if not (math.isfinite(azimuth) and math.isfinite(elevation)):
            return np.full(2, np.nan)
        joints = self.joints_at(stamp_s)
        r = self.sound_distance_m
        at = self.kin.to_base(
            r * np.array([math.cos(azimuth), math.sin(azimuth), 0.0]), frame, joints
        )
        eyes = self.kin.to_base(np.zeros(3), self.kin.gaze_frame, joints)
        at[2] = eyes[2] + r * math.tan(max(min(elevation, 1.4), -1.4))
        return self.point(self.kin.base_frame, at, stamp_s)


def build_gaze(config, urdf, base_frame: str, gaze_frame: str, attention_config, sound_distance_m):
    """The head's :class:`~timar_ros.robot.gaze.Gaze` and the :class:`TargetAimer` that feeds
    its attention, for a retarget config (``config``, its neck yaw/pitch maps and limits) and a
    URDF (path or XML text). ValueError / UnknownFrame naming what does not fit."""
    from timar_ros.robot.attention import Attention
    from timar_ros.robot.gaze import Gaze
    from timar_ros.robot.retarget import Retargeter

    limits = Retargeter(config).gaze_limits()  # ValueError when yaw or pitch drives no joint
    maps = {m.source: m for m in config.head_rotation}
    kin = HeadKinematics(urdf, base_frame, gaze_frame, maps["yaw"].joint, maps["pitch"].joint)
    attention = Attention(attention_config)
    gaze = Gaze(
        config.gaze,
        attention,
        limits["min"],
        limits["max"],
        limits["max_velocity"],
        limits["max_acceleration"],
    )
    return gaze, TargetAimer(kin, maps["yaw"], maps["pitch"], sound_distance_m)
