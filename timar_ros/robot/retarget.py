"""FLAME motion -> servo joint positions, played out safely at the servo rate (no ROS).

Three layers, each usable alone:

- :class:`~timar_ros.robot.retarget_config.RetargetConfig` - the per-robot YAML (e.g.
  ``config/retarget_default.yaml``), validated at load with precise errors
  (:mod:`timar_ros.robot.retarget_config`).
- :class:`Retargeter` - a pure per-frame map: FLAME head rotation (axis-angle, FLAME frame) ->
  neck yaw/pitch/roll in REP-103 axes (see :mod:`timar_ros.robot.rotations`), then per joint
  ``offset + sign * scale * angle``; FLAME jaw axis-angle component -> jaw joint
  (``offset + sign * scale * jaw[axis]``); expression [50] -> facial actuators
  (``matrix @ expression + bias``). Results are clipped to the joint position limits. Frames with
  NaN/Inf or values beyond ``input_limits`` are marked invalid.
- :class:`MotionPlayer` - holds timestamped frames (frame i of a block is due at
  ``stamp + i * frame_period``) and, called at the servo rate with the current time, returns joint
  positions: linear interpolation between due frames, a one-pole smoothing of the target (time
  constant ``smoothing_time_constant_s``), then :class:`SafetyLimiter`, which guarantees the
  position, velocity and acceleration limits of every joint.

Guarantees of :meth:`MotionPlayer.step` for any input (NaN, huge values, jumps, late or missing
blocks) and any increasing sequence of call times t_k (dt_k = t_k - t_{k-1} > 0):

- ``min <= p_k <= max`` for every joint;
- ``|p_k - p_{k-1}| / dt_k <= max_velocity``;
- ``|v_k - v_{k-1}| / dt_k <= max_acceleration`` with ``v_k = (p_k - p_{k-1}) / dt_k``
  (v_0 = 0 at the initial pose);
  up to floating-point rounding (~1e-12). A call with t not after the previous one returns the
  previous positions unchanged.

Behaviour over time:

- **Rejected frames** (NaN/Inf/huge): replaced by the last good frame (hold), counted.
- **Deadline miss** (a block arrives after its first frame was due): counted; its late frames are
  not replayed, the target moves to the frame due now and the limiter eases there (no jump).
- **Underrun** (the last frame is past, the next block has not arrived): hold the last frame.
- **Watchdog**: when no frame has been due for ``watchdog_timeout_s``, the target becomes the
  neutral pose (the smoothing is bypassed so arrival takes finite time); the head reaches neutral
  (within 1e-3 rad) at most :attr:`MotionPlayer.neutral_deadline_s` after the last frame was due.
  New frames resume tracking smoothly.
- **Far-future blocks** (stamp more than ``max_lead_s`` after the current time) are rejected.
- **Clock going back** by more than 1 s (e.g. a sim-time reset): the frame buffer is cleared.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import numpy as np

from timar_ros.robot.gaze import Gaze, compose
from timar_ros.robot.retarget_config import EXP_DIM, HEAD_SOURCES, JAW_AXES, RetargetConfig
from timar_ros.robot.rotations import flame_to_ypr


# ----------------------------------------------------------------------------- mapping
class Retargeter:
    """Pure per-frame map from FLAME motion to joint targets (clipped to position limits)."""

    def __init__(self, config: RetargetConfig):
        self.config = config
        self.joint_names = config.joint_names
        lim = config.limits()
        self.lo, self.hi, self.neutral = lim["min"], lim["max"], lim["neutral"]

    def map(
        self, expression: np.ndarray, jaw: np.ndarray, head_rotation: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Map N frames.

        Args:
            expression: [N, 50] FLAME expression.
            jaw: [N, 3] FLAME jaw axis-angle (rad).
            head_rotation: [N, 3] FLAME head axis-angle (rad, FLAME frame).
        Returns:
            targets [N, J] float64 (rad, output joint order, within limits; undriven joints at
            neutral; invalid frames at neutral), valid [N] bool (False: NaN/Inf or beyond
            input_limits).
        """
        c = self.config
        exp = np.asarray(expression, dtype=np.float64).reshape(-1, EXP_DIM)
        jaw = np.asarray(jaw, dtype=np.float64).reshape(-1, 3)
        rot = np.asarray(head_rotation, dtype=np.float64).reshape(-1, 3)
        n = len(exp)
        if len(jaw) != n or len(rot) != n:
            raise ValueError(
                f"frame counts differ: expression {n}, jaw {len(jaw)}, head_rotation {len(rot)}"
            )
        with np.errstate(invalid="ignore", over="ignore"):
            valid = (
                np.isfinite(exp).all(1)
                & np.isfinite(jaw).all(1)
                & np.isfinite(rot).all(1)
                & (np.abs(exp) <= c.max_abs_expression).all(1)
                & (np.abs(jaw) <= c.max_abs_jaw_rad).all(1)
                & (np.linalg.norm(rot, axis=1) <= c.max_abs_rotation_rad)
            )
        exp = np.where(valid[:, None], exp, 0.0)
        jaw = np.where(valid[:, None], jaw, 0.0)
        rot = np.where(valid[:, None], rot, 0.0)
        out = np.tile(self.neutral, (n, 1))
        if c.head_rotation:
            ypr = flame_to_ypr(rot)
            for m in c.head_rotation:
                out[:, self.joint_names.index(m.joint)] = (
                    m.offset + m.sign * m.scale * ypr[:, HEAD_SOURCES.index(m.source)]
                )
        if c.jaw is not None:
            m = c.jaw
            out[:, self.joint_names.index(m.joint)] = (
                m.offset + m.sign * m.scale * jaw[:, JAW_AXES[m.source]]
            )
        if c.expression is not None:
            e = c.expression
            vals = exp @ e.matrix.T + e.bias
            for k, jn in enumerate(e.joints):
                out[:, self.joint_names.index(jn)] = vals[:, k]
        out[~valid] = self.neutral
        return np.clip(out, self.lo, self.hi), valid

    def head_angles(self, head_rotation: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """TIMAR's head rotation [N, 3] (FLAME axis-angle) as REP-103 yaw, pitch, roll [N, 3]
        (rad) scaled as the neck joints take them (0 for invalid frames and unmapped angles)."""
        rot = np.asarray(head_rotation, dtype=np.float64).reshape(-1, 3)
        rot = np.where(valid[:, None], np.nan_to_num(rot), 0.0)
        ypr = flame_to_ypr(rot)
        scale = np.zeros(3)
        for m in self.config.head_rotation:
            scale[HEAD_SOURCES.index(m.source)] = m.scale
        return ypr * scale

    def neck_joints(self, out: np.ndarray, ypr: np.ndarray) -> np.ndarray:
        """``out`` [J] with the neck joints set to REP-103 angles ``ypr`` [3] (rad, already
        scaled: ``offset + sign * angle``), clipped to the limits."""
        out = out.copy()
        for m in self.config.head_rotation:
            k = self.joint_names.index(m.joint)
            out[k] = m.offset + m.sign * ypr[HEAD_SOURCES.index(m.source)]
        return np.clip(out, self.lo, self.hi)

    def gaze_limits(self) -> dict[str, np.ndarray]:
        """Limits [2] of the REP-103 yaw and pitch the neck joints can take: min, max (rad),
        max_velocity, max_acceleration; a ValueError when yaw or pitch drives no joint."""
        lim = self.config.limits()
        out = {k: np.zeros(2) for k in ("min", "max", "max_velocity", "max_acceleration")}
        for i, source in enumerate(("yaw", "pitch")):
            maps = [m for m in self.config.head_rotation if m.source == source]
            if not maps:
                raise ValueError(f"no neck joint is driven by {source}: the head cannot turn")
            m = maps[0]
            k = self.joint_names.index(m.joint)
            ends = sorted(
                (m.sign * (lim["min"][k] - m.offset), m.sign * (lim["max"][k] - m.offset))
            )
            out["min"][i], out["max"][i] = ends
            out["max_velocity"][i] = lim["max_velocity"][k]
            out["max_acceleration"][i] = lim["max_acceleration"][k]
        return out


# ----------------------------------------------------------------------------- safety
class SafetyLimiter:
    """Moves joints toward targets within position, velocity and acceleration limits.

    Per joint, with position p, velocity v (= last commanded step / dt) and step dt > 0, the new
    velocity is the one closest to the time-optimal approach velocity toward the target,
    ``sign(e) * b(|e|)`` with ``b(d) = a * (sqrt(dt^2 + 2 d / a) - dt)`` (the largest speed from
    which the joint can still stop within d), restricted to ``[v - a dt, v + a dt]``,
    ``[-vmax, vmax]`` and ``[-b(p - min), b(max - p)]`` (so it can always brake before a position
    limit). That interval is never empty while the invariant ``p +- v^2 / (2a)`` in [min, max]
    holds, which each step preserves; hence every limit holds for any targets and any dt > 0.
    """

    def __init__(self, lo, hi, vmax, amax, initial=None):
        self.lo = np.asarray(lo, dtype=np.float64)
        self.hi = np.asarray(hi, dtype=np.float64)
        self.vmax = np.asarray(vmax, dtype=np.float64)
        self.amax = np.asarray(amax, dtype=np.float64)
        p0 = self.lo if initial is None else np.asarray(initial, dtype=np.float64)
        self.p = np.clip(np.nan_to_num(p0, nan=0.0), self.lo, self.hi).astype(np.float64)
        self.v = np.zeros_like(self.p)

    def _brake(self, d: np.ndarray, dt: float) -> np.ndarray:
        d = np.maximum(d, 0.0)
        return self.amax * (np.sqrt(dt * dt + 2.0 * d / self.amax) - dt)

    def step(
        self, target: np.ndarray, dt: float, target_velocity: np.ndarray | None = None
    ) -> np.ndarray:
        """Advance by dt (s) toward target (rad); target_velocity (rad/s) is a feed-forward term
        that removes the tracking lag on moving targets (it never affects the limits)."""
        if not dt > 0:
            return self.p.copy()
        tgt = np.clip(
            np.nan_to_num(np.asarray(target, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0),
            self.lo,
            self.hi,
        )
        e = tgt - self.p
        v_des = np.sign(e) * self._brake(np.abs(e), dt)
        if target_velocity is not None:
            v_ff = np.nan_to_num(
                np.asarray(target_velocity, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0
            )
            v_des = v_des + np.clip(v_ff, -self.vmax, self.vmax)
        a_dt = self.amax * dt
        upper = np.minimum(np.minimum(self.vmax, self.v + a_dt), self._brake(self.hi - self.p, dt))
        lower = np.maximum(
            np.maximum(-self.vmax, self.v - a_dt), -self._brake(self.p - self.lo, dt)
        )
        upper = np.maximum(upper, lower)  # guards rounding only; the interval is non-empty
        v_new = np.clip(v_des, lower, upper)
        p_new = np.clip(self.p + v_new * dt, self.lo, self.hi)
        self.v = (p_new - self.p) / dt
        self.p = p_new
        return self.p.copy()


@dataclass
class PlayerCounters:
    blocks: int = 0
    frames: int = 0
    rejected_frames: int = 0  # NaN/Inf/huge frames replaced by the last good frame
    rejected_blocks: int = 0  # malformed or too far in the future
    late_frames: int = 0  # frames already past when their block arrived
    deadline_misses: int = 0  # blocks whose first frame was already past on arrival
    watchdog_trips: int = 0
    clock_resets: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class MotionPlayer:
    """Plays stamped FLAME frames out as safe joint positions at the servo rate.

    Args:
        config: the retarget config.
        initial_positions: start pose [J] (rad), e.g. the measured servo state; default neutral.
        max_buffer_frames: hard cap on buffered frames (the oldest are dropped beyond it).
        gaze: where the head points (:class:`~timar_ros.robot.gaze.Gaze`); TIMAR's head
            rotation is then applied in the head's frame on top of it (None: around neutral).
    """

    def __init__(
        self,
        config: RetargetConfig,
        initial_positions=None,
        max_buffer_frames: int = 4096,
        gaze: Gaze | None = None,
    ):
        self.config = config
        self.retargeter = Retargeter(config)
        self.joint_names = config.joint_names
        lim = config.limits()
        self.neutral = lim["neutral"]
        self.limiter = SafetyLimiter(
            lim["min"],
            lim["max"],
            lim["max_velocity"],
            lim["max_acceleration"],
            self.neutral if initial_positions is None else initial_positions,
        )
        self.tau = config.smoothing_time_constant_s
        self.watchdog_timeout_s = config.watchdog_timeout_s
        self.max_buffer_frames = int(max_buffer_frames)
        self.counters = PlayerCounters()
        self.gaze = gaze
        n = len(self.joint_names)
        self._n = n
        # per frame: the joint targets [J], then TIMAR's scaled yaw, pitch, roll [3] (rad)
        self._times = np.zeros(0)
        self._targets = np.zeros((0, n + 3))
        self._rest = np.concatenate([self.neutral, np.zeros(3)])
        self._last_good = self._rest.copy()
        self._filtered = np.concatenate([self.limiter.p, np.zeros(3)])
        self._command = self.limiter.p.copy()
        self._t: float | None = None
        self._period = 0.04
        self.watchdog_active = True  # nothing received yet: neutral
        # Worst case from any state within limits to neutral (+ 5 servo periods of discretisation).
        v, a, rng = lim["max_velocity"], lim["max_acceleration"], lim["max"] - lim["min"]
        d = rng + v * v / (2 * a)
        travel = np.where(d >= v * v / a, d / v + v / a, 2 * np.sqrt(d / a))
        self.motion_bound_s = float(np.max(v / a + travel)) + 5.0 / config.servo_rate_hz
        self.neutral_deadline_s = self.watchdog_timeout_s + self.motion_bound_s

    @property
    def positions(self) -> np.ndarray:
        return self.limiter.p.copy()

    @property
    def velocities(self) -> np.ndarray:
        return self.limiter.v.copy()

    @property
    def last_frame_time(self) -> float | None:
        return float(self._times[-1]) if self._times.size else None

    def add_block(
        self, stamp_s: float, frame_period_s: float, expression, jaw, head_rotation
    ) -> int:
        """Queue one block (e.g. one HeadMotion); returns the number of frames accepted.

        Frame i is due at ``stamp_s + i * frame_period_s``. A later block overlapping earlier
        frames in time replaces them.
        """
        c = self.counters
        try:
            targets, valid = self.retargeter.map(expression, jaw, head_rotation)
        except ValueError:
            c.rejected_blocks += 1
            return 0
        n = len(targets)
        if (
            n == 0
            or not math.isfinite(stamp_s)
            or not (math.isfinite(frame_period_s) and frame_period_s > 0)
        ):
            c.rejected_blocks += 1
            return 0
        if self._t is not None and stamp_s > self._t + self.config.max_lead_s:
            c.rejected_blocks += 1
            return 0
        c.blocks += 1
        c.frames += n
        c.rejected_frames += int((~valid).sum())
        targets = np.concatenate([targets, self.retargeter.head_angles(head_rotation, valid)], 1)
        prev = self._last_good
        for i in range(n):  # hold the last good frame in place of rejected ones
            if valid[i]:
                prev = targets[i]
            else:
                targets[i] = prev
        self._last_good = prev.copy()
        times = stamp_s + frame_period_s * np.arange(n)
        if self._t is not None:
            late = times < self._t
            if late.any():
                c.late_frames += int(late.sum())
                if late[0]:
                    c.deadline_misses += 1
        self._period = frame_period_s
        half = 0.5 * frame_period_s
        keep = (self._times < times[0] - half) | (self._times > times[-1] + half)
        t_all = np.concatenate([self._times[keep], times])
        x_all = np.concatenate([self._targets[keep], targets])
        order = np.argsort(t_all, kind="stable")
        self._times, self._targets = t_all[order], x_all[order]
        if self._times.size > self.max_buffer_frames:
            self._times = self._times[-self.max_buffer_frames :]
            self._targets = self._targets[-self.max_buffer_frames :]
        return n

    def _target_at(self, t: float) -> np.ndarray | None:
        """Interpolated target at t, or None when the watchdog applies."""
        times = self._times
        i = int(np.searchsorted(times, t, side="right"))
        if i == 0:  # nothing due yet
            return None if self.watchdog_active else self._filtered
        if t - times[i - 1] > self.watchdog_timeout_s:
            return None
        if i < times.size and times[i] - times[i - 1] <= 2.5 * self._period:
            w = (t - times[i - 1]) / (times[i] - times[i - 1])
            return (1.0 - w) * self._targets[i - 1] + w * self._targets[i]
        return self._targets[i - 1]

    def step(self, t_s: float) -> np.ndarray:
        """Joint positions [J] (rad, output order) to command at time t_s (the stamps' clock)."""
        if not math.isfinite(t_s):
            return self.limiter.p.copy()
        if self._t is None:
            self._t = t_s
            self._update_target(t_s, 0.0)
            return self.limiter.p.copy()
        dt = t_s - self._t
        if dt <= 0:
            if dt < -1.0:  # the clock went back (sim reset): frames are on the old clock
                self.counters.clock_resets += 1
                self._times = self._times[:0]
                self._targets = self._targets[:0]
                self._t = t_s
            return self.limiter.p.copy()
        self._t = t_s
        prev = self._command
        self._update_target(t_s, dt)
        # prune frames no longer needed for interpolation (keep one before t)
        i = int(np.searchsorted(self._times, t_s, side="right"))
        if i > 1:
            self._times = self._times[i - 1 :]
            self._targets = self._targets[i - 1 :]
        # feed-forward the target's own motion when it moves continuously (not across jumps;
        # the gaze moves on at the watchdog's neutral too)
        v_ff = (self._command - prev) / dt
        v_ff[np.abs(v_ff) > self.limiter.vmax] = 0.0
        use_ff = not self.watchdog_active or self.gaze is not None
        return self.limiter.step(self._command, dt, v_ff if use_ff else None)

    def preview(self, times) -> np.ndarray:
        """Positions [K, J] that :meth:`step` would command at ``times`` (increasing, s),
        computed on a copy: the player's state is unchanged. Use it to build a JointTrajectory for
        a turn (points at the servo rate, already within all limits)."""
        sim = copy.deepcopy(self)
        return np.array([sim.step(float(t)) for t in times]).reshape(-1, len(self.joint_names))

    def _update_target(self, t: float, dt: float) -> None:
        self._filter(t, dt)
        if self.gaze is None:
            self._command = self._filtered[: self._n].copy()
        else:
            ypr = compose(self.gaze.at(t), self._filtered[self._n :])
            self._command = self.retargeter.neck_joints(self._filtered[: self._n], ypr)

    def _filter(self, t: float, dt: float) -> None:
        tgt = self._target_at(t)
        if tgt is None:
            if not self.watchdog_active:
                self.counters.watchdog_trips += 1
                self.watchdog_active = True
            self._filtered = self._rest.copy()  # bypass smoothing: finite time to neutral
            return
        self.watchdog_active = False
        if self.tau <= 0 or dt <= 0:
            self._filtered = np.array(tgt, dtype=np.float64)
        else:
            alpha = 1.0 - math.exp(-dt / self.tau)
            self._filtered = self._filtered + alpha * (tgt - self._filtered)
