"""What a simulated head accepts as a command, as ros2_control's controllers would: a
position per joint in joint order (ForwardCommandController), or a trajectory of timed points
by joint name (JointTrajectoryController), followed by linear interpolation from where the
joints were when it arrived. Bad commands raise :class:`CommandError` saying what is wrong."""

from __future__ import annotations

import numpy as np

from timar_ros.errors import InputError


class CommandError(InputError, ValueError):
    """A command the head rejects (the joints keep the previous one); ``kind`` is the counter it
    goes to: "wrong_length", "non_finite" or "bad_trajectory"."""

    def __init__(self, message: str, kind: str = "bad_trajectory"):
        super().__init__(message)
        self.kind = kind


def check_command(values, joint_names: list[str]) -> np.ndarray:
    """values (one per joint, rad) -> float64 [n]; raises CommandError on a wrong length or a
    NaN/Inf value, naming the joint."""
    q = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(q) != len(joint_names):
        raise CommandError(
            f"{len(q)} values for {len(joint_names)} joints; send one position per joint in the "
            f"order {joint_names}",
            "wrong_length",
        )
    bad = np.flatnonzero(~np.isfinite(q))
    if len(bad):
        raise CommandError(
            f"non-finite position for {', '.join(joint_names[i] for i in bad)} "
            f"({', '.join(str(q[i]) for i in bad)})",
            "non_finite",
        )
    return q


class TrajectoryFollower:
    """Linear interpolation through the points of the last accepted trajectory.

    A new trajectory replaces the old one from its start time (the header stamp, or the time it
    arrived when the stamp is zero), starting from the positions the joints had then; before its
    first point the joints move linearly from there, after the last they hold it."""

    def __init__(self, joint_names: list[str]):
        self.joint_names = list(joint_names)
        self._times: np.ndarray | None = None  # [K + 1] absolute s
        self._points: np.ndarray | None = None  # [K + 1, n]

    def set(self, names, times_from_start, positions, start_s: float, current) -> None:
        """names [n] (any order, every joint once), times_from_start [K] s (increasing, >= 0),
        positions [K][n] rad; start_s: absolute s; current [n]: the joints' positions now."""
        names = list(names)
        missing = [n for n in self.joint_names if n not in names]
        unknown = [n for n in names if n not in self.joint_names]
        if missing or unknown or len(set(names)) != len(names):
            raise CommandError(
                f"trajectory joints {names}: every joint of {self.joint_names} exactly once "
                f"(missing {missing}, unknown {unknown}; partial goals are not allowed)"
            )
        t = np.asarray(times_from_start, dtype=np.float64)
        if len(t) == 0:
            raise CommandError("trajectory has no points")
        if not np.isfinite(t).all() or t[0] < 0 or (np.diff(t) <= 0).any():
            raise CommandError("trajectory times_from_start must be finite, >= 0 and increasing")
        order = [names.index(n) for n in self.joint_names]
        pts = []
        for k, p in enumerate(positions):
            p = np.asarray(p, dtype=np.float64).reshape(-1)
            if len(p) != len(names):
                raise CommandError(
                    f"trajectory point {k}: {len(p)} positions for {len(names)} joints"
                )
            if not np.isfinite(p).all():
                raise CommandError(f"trajectory point {k}: non-finite position")
            pts.append(p[order])
        if len(pts) != len(t):
            raise CommandError(f"{len(pts)} points for {len(t)} times")
        self._times = np.concatenate([[start_s], start_s + t])
        self._points = np.vstack([np.asarray(current, dtype=np.float64)[None], pts])
        if t[0] == 0:  # a first point at the start replaces the current positions
            self._times, self._points = self._times[1:], self._points[1:]

    @property
    def active(self) -> bool:
        return self._times is not None

    def at(self, t: float) -> np.ndarray | None:
        """Positions [n] at absolute time t (None before any trajectory)."""
        if self._times is None:
            return None
        out = np.empty(len(self.joint_names))
        for j in range(len(out)):
            out[j] = np.interp(t, self._times, self._points[:, j])
        return out
