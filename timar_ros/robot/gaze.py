"""Where the head points: gaze shifts to an attention target, with TIMAR's motion on top (no ROS).

The head's direction is two angles in the robot's base frame, REP-103 yaw (+ left) and pitch
(+ down), in radians. :class:`GazeShifter` moves it to a goal the way a person's head moves:

- **Gaze shifts follow the main sequence of head movements**: the peak velocity grows with the
  amplitude, linearly (Zangemeister, Jones & Stark 1981, "Dynamics of head movement trajectories:
  main sequence relationship", Exp. Neurol. 71:76-91; Zangemeister & Stark 1982, Exp. Neurol.
  77:563-577): ``peak = intercept + slope * amplitude`` (deg/s, deg). A shift is a quintic
  (minimum-jerk when it starts and ends at rest: a bell-shaped velocity, peak = 1.875 A / D), so
  its duration is ``D = 1.875 A / peak``: longer shifts last longer but less than in proportion.
  The defaults (20 deg/s + 2.5 /s: 30 deg in 0.59 s at 95 deg/s) are a natural, unhurried head
  turn, well under the fast voluntary movements of those studies and within the servos' limits.
- **Smooth pursuit**: a goal that moves (its velocity, estimated by :mod:`attention`) is aimed at
  where it will be when the shift ends, arriving with its velocity, and followed at that velocity
  afterwards; small corrections re-plan from the current position, velocity and acceleration, so
  the motion stays smooth (continuous acceleration).
- **No overshoot**: a shift to a still goal is lengthened until the quintic no longer passes it;
  its peak velocity and acceleration are kept within each joint's limits.

:func:`compose` puts TIMAR's rotation on top in the head's frame (``R = R_gaze @ R_timar``), so a
nod is a nod about the head's own axis wherever the head points. :func:`gaze_range` keeps the
gaze ``headroom`` inside each limit so TIMAR's nods fit on top near a limit (a shift, not a clip).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from timar_ros.robot.attention import Attention
from timar_ros.robot.rotations import matrix_to_ypr, ypr_to_matrix

MIN_JERK_PEAK = 1.875  # peak velocity of a rest-to-rest minimum-jerk move, times A / D


@dataclass(frozen=True)
class GazeConfig:
    """The gaze section of a retarget YAML (angles in rad unless the name says deg)."""

    main_sequence_intercept_deg_s: float = 20.0  # peak velocity of a vanishing shift (deg/s)
    main_sequence_slope_per_s: float = 2.5  # peak velocity per degree of amplitude (1/s)
    min_shift_s: float = 0.25  # the shortest shift (a small correction)
    rest_shift_s: float = 2.0  # a return to the rest pose takes at least this long (slow)
    rest_yaw: float = 0.0  # the rest pose (REP-103 yaw, pitch) without a target
    rest_pitch: float = 0.0
    yaw_headroom: float = 0.15  # the gaze stays this far inside the yaw/pitch limits (for nods)
    pitch_headroom: float = 0.1
    max_pursuit_deg_s: float = 60.0  # a faster target is not pursued but shifted to

    def peak_velocity(self, amplitude: float) -> float:
        """The main sequence: peak velocity (rad/s) of a shift of ``amplitude`` rad."""
        return math.radians(self.main_sequence_intercept_deg_s) + (
            self.main_sequence_slope_per_s * amplitude
        )

    def duration(self, amplitude: float) -> float:
        """Duration (s) of a rest-to-rest shift of ``amplitude`` rad."""
        return max(self.min_shift_s, MIN_JERK_PEAK * amplitude / self.peak_velocity(amplitude))


class Quintic:
    """A 5th-order polynomial path [.., 2] from (p0, v0, a0) to (p1, v1, 0) over ``d`` seconds;
    after its end it goes on at v1 (pursuit)."""

    def __init__(self, t0, p0, v0, a0, p1, v1, d):
        self.t0, self.d = float(t0), float(d)
        p0, v0, a0, p1, v1 = (np.asarray(x, dtype=np.float64) for x in (p0, v0, a0, p1, v1))
        self.p1, self.v1 = p1, v1
        dp = p1 - p0
        self.c = np.stack(
            [
                p0,
                v0,
                a0 / 2,
                (20 * dp - (8 * v1 + 12 * v0) * d - 3 * a0 * d**2) / (2 * d**3),
                (-30 * dp + (14 * v1 + 16 * v0) * d + 3 * a0 * d**2) / (2 * d**4),
                (12 * dp - 6 * (v1 + v0) * d - a0 * d**2) / (2 * d**5),
            ]
        )

    def at(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Position, velocity, acceleration [2] at time t (s)."""
        s = t - self.t0
        if s >= self.d:
            return self.p1 + self.v1 * (s - self.d), self.v1.copy(), np.zeros(2)
        s = max(s, 0.0)
        s2, s3 = s * s, s * s * s
        powers = np.array(
            [
                [1.0, s, s2, s3, s2 * s2, s3 * s2],
                [0.0, 1.0, 2 * s, 3 * s2, 4 * s3, 5 * s2 * s2],
                [0.0, 0.0, 2.0, 6 * s, 12 * s2, 20 * s3],
            ]
        )
        p, v, a = powers @ self.c
        return p, v, a

    def samples(self, n: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions, velocities, accelerations [n, 2] over the shift."""
        ps, vs, acs = zip(*(self.at(self.t0 + self.d * k / (n - 1)) for k in range(n)))
        return np.array(ps), np.array(vs), np.array(acs)


class GazeShifter:
    """The head's direction over time (REP-103 yaw, pitch in the base frame, rad).

    Args:
        config: gaze parameters.
        max_velocity, max_acceleration: [2] limits of the yaw and pitch joints (rad/s, rad/s^2).
        start: [2] the direction at the start (rad); default the rest pose.
    """

    def __init__(self, config: GazeConfig, max_velocity, max_acceleration, start=None):
        self.config = config
        self.vmax = np.asarray(max_velocity, dtype=np.float64)
        self.amax = np.asarray(max_acceleration, dtype=np.float64)
        self.rest = np.array([config.rest_yaw, config.rest_pitch])
        p = self.rest if start is None else np.asarray(start, dtype=np.float64)
        self.plan = Quintic(0.0, p, np.zeros(2), np.zeros(2), p, np.zeros(2), 1.0)

    def at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Direction [2] (rad) and its velocity [2] (rad/s) at time t (s)."""
        p, v, _ = self.plan.at(t)
        return p, v

    def aim(self, t: float, goal, goal_velocity=(0.0, 0.0), rest: bool = False) -> None:
        """Head for ``goal`` [2] (rad) moving at ``goal_velocity`` [2] (rad/s), from time t (s):
        a new plan from the current state unless the current plan already gets there (within
        0.2 degrees). ``rest``: a slow return to the rest pose."""
        goal = np.asarray(goal, dtype=np.float64)
        gv = np.asarray(goal_velocity, dtype=np.float64)
        if not (np.isfinite(goal).all() and np.isfinite(gv).all()):
            return
        speed = math.degrees(float(np.linalg.norm(gv)))
        if speed > self.config.max_pursuit_deg_s:
            gv = np.zeros(2)
        end = max(t, self.plan.t0 + self.plan.d)
        # where the current plan will be and where the goal will be, at the plan's end
        planned, wanted = self.plan.at(end)[0], goal + gv * (end - t)
        if np.linalg.norm(planned - wanted) < math.radians(0.2) and np.linalg.norm(
            self.plan.v1 - gv
        ) < math.radians(2.0):
            return
        p, v, a = self.plan.at(t)
        amplitude = float(np.linalg.norm(goal - p))
        d = self.config.duration(amplitude)
        if rest:
            d = max(d, self.config.rest_shift_s)
        self.plan = self._feasible(t, p, v, a, goal, gv, d)

    def _feasible(self, t, p, v, a, goal, gv, d) -> Quintic:
        """The plan nearest to duration d, longer first, that neither overshoots a still goal
        nor exceeds the joints' velocity and acceleration limits (durations in steps of 25 %;
        a fast head turned back needs a shorter one). None fits: the one passing least."""
        best, best_excess = None, math.inf
        for d_try in [d * 1.25**k for k in range(13)] + [d / 1.25**k for k in range(1, 9)]:
            plan = Quintic(t, p, v, a, goal + gv * d_try, gv, d_try)
            ps, vs, acs = plan.samples()
            excess = max(
                float(np.max(np.abs(vs) / self.vmax)) - 1.0,
                float(np.max(np.abs(acs) / self.amax)) - 1.0,
                0.0 if np.any(gv) else _overshoot(ps, p, goal) * 100.0,
            )
            if excess <= 1e-9:
                return plan
            if excess < best_excess:
                best, best_excess = plan, excess
        return best


def _overshoot(ps: np.ndarray, start: np.ndarray, goal: np.ndarray) -> float:
    """How far (rad) the path ps [n, 2] passes the goal along the line from start; for a goal
    at the start, how far it strays from it."""
    span = goal - start
    length = float(np.linalg.norm(span))
    if length < 1e-9:
        return max(float(np.abs(ps - goal).max()) - 1e-6, 0.0)
    along = (ps - start) @ (span / length)
    return max(float(along.max()) - length - 1e-6, 0.0)


def gaze_range(lo, hi, headroom) -> tuple[np.ndarray, np.ndarray]:
    """The range [2] the gaze may take: each limit moved ``headroom`` inward (never past the
    middle), so TIMAR's motion of up to that size fits on top near a limit."""
    lo, hi, room = (np.asarray(x, dtype=np.float64) for x in (lo, hi, headroom))
    room = np.minimum(room, 0.45 * (hi - lo))
    return lo + room, hi - room


def compose(gaze_yp, timar_ypr) -> np.ndarray:
    """The head's REP-103 yaw, pitch, roll [..., 3] (rad) with TIMAR's rotation ``timar_ypr``
    [..., 3] applied in the head's frame after turning to ``gaze_yp`` [..., 2] (yaw, pitch)."""
    g = np.asarray(gaze_yp, dtype=np.float64)
    m = np.asarray(timar_ypr, dtype=np.float64)
    if g.ndim == 1 and m.ndim == 1:  # one servo tick: closed form (the matrices cost ~1 ms)
        return _compose_one(float(g[0]), float(g[1]), *(float(x) for x in m))
    gaze = np.concatenate([g, np.zeros(g.shape[:-1] + (1,))], axis=-1)
    return matrix_to_ypr(ypr_to_matrix(gaze) @ ypr_to_matrix(m))


def _compose_one(gy, gp, y, p, r) -> np.ndarray:
    """compose() for one frame: R = Rz(gy) Ry(gp) Rz(y) Ry(p) Rx(r) -> (yaw, pitch, roll)."""
    cgy, sgy, cgp, sgp = math.cos(gy), math.sin(gy), math.cos(gp), math.sin(gp)
    cy, sy, cp, sp, cr, sr = (
        math.cos(y),
        math.sin(y),
        math.cos(p),
        math.sin(p),
        math.cos(r),
        math.sin(r),
    )
    # TIMAR's matrix T = Rz(y) Ry(p) Rx(r): the columns needed below
    t00, t10, t20 = cy * cp, sy * cp, -sp
    t21, t22 = cp * sr, cp * cr
    t01, t11 = cy * sp * sr - sy * cr, sy * sp * sr + cy * cr
    t02 = cy * sp * cr + sy * sr
    # G = Rz(gy) Ry(gp): rows [cgy cgp, -sgy, cgy sgp], [sgy cgp, cgy, sgy sgp], [-sgp, 0, cgp]
    r00 = cgy * cgp * t00 - sgy * t10 + cgy * sgp * t20
    r10 = sgy * cgp * t00 + cgy * t10 + sgy * sgp * t20
    r20 = -sgp * t00 + cgp * t20
    r21 = -sgp * t01 + cgp * t21
    r22 = -sgp * t02 + cgp * t22
    r01 = cgy * cgp * t01 - sgy * t11 + cgy * sgp * t21
    r11 = sgy * cgp * t01 + cgy * t11 + sgy * sgp * t21
    pitch = math.asin(max(-1.0, min(1.0, -r20)))
    if math.sqrt(max(0.0, 1.0 - r20 * r20)) < 1e-9:  # gimbal lock: roll 0 (as matrix_to_ypr)
        return np.array([math.atan2(-r01, r11), pitch, 0.0])
    return np.array([math.atan2(r10, r00), pitch, math.atan2(r21, r22)])


class Gaze:
    """Where the head points at each servo tick: the attended target (or the rest pose, slowly),
    reached by gaze shifts and pursuit, kept inside the limits less the headroom for nods.

    Args:
        config: gaze parameters.
        attention: the ranked targets.
        lo, hi: [2] yaw and pitch limits (rad, REP-103).
        max_velocity, max_acceleration: [2] their velocity and acceleration limits.
    """

    def __init__(self, config: GazeConfig, attention: Attention, lo, hi, max_velocity, max_acc):
        self.config, self.attention = config, attention
        room = (config.yaw_headroom, config.pitch_headroom)
        self.lo, self.hi = gaze_range(lo, hi, room)
        rest = np.clip([config.rest_yaw, config.rest_pitch], self.lo, self.hi)
        self.shifter = GazeShifter(config, max_velocity, max_acc, start=rest)
        self.rest = rest
        self.source: str | None = None  # the attended source, None at rest

    def at(self, t: float) -> np.ndarray:
        """The head's direction [2] (yaw, pitch, rad) at time t (s)."""
        self.source, direction, velocity = self.attention.choose(t)
        if self.source is None:
            self.shifter.aim(t, self.rest, rest=True)
        else:
            goal = np.clip(direction, self.lo, self.hi)
            self.shifter.aim(t, goal, np.where(goal == direction, velocity, 0.0))
        return np.clip(self.shifter.at(t)[0], self.lo, self.hi)
