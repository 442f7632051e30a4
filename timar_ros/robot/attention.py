"""Whom the head attends to (no ROS): stamped targets from several sources, checked, ranked, with
rate-limited switching and a slow return to rest when they go stale.

A target is a direction for the head, (yaw, pitch) in the base frame (rad, REP-103), already
aimed through the URDF (:mod:`timar_ros.robot.kinematics`), with the time it was seen. Sources
are ranked: a lower rank wins (``SOUND`` - the partner speaking, from a microphone array's
direction of arrival - before ``POINT`` - a tracked person). The attended target is:

- the best-ranked source with a fresh target (seen within ``stale_after_s``);
- held for at least ``min_dwell_s`` before switching to another source, or to a jump of more
  than ``switch_deg`` within the same source (e.g. the direction of arrival moving to the other
  partner), unless the held one goes stale;
- none (rest) when every source is stale.

Each source's velocity is estimated over its recent targets (least squares over ``window_s``),
restarted at a jump, so a moving person is pursued rather than chased.

Bad targets are refused with a reason and counted (:meth:`Attention.offer`): non-finite values,
stamps further ahead than ``max_future_s`` or already stale on arrival.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

SOUND, POINT = "sound_direction", "point"
RANK = (SOUND, POINT)  # the speaking partner first


@dataclass(frozen=True)
class AttentionConfig:
    stale_after_s: float = 1.5  # a target not seen for this long no longer holds attention
    min_dwell_s: float = 1.0  # attention stays at least this long before switching
    switch_deg: float = 10.0  # a jump this large within a source is a switch (rate-limited)
    max_future_s: float = 0.5  # stamps further ahead of now are refused (a wrong clock)
    window_s: float = 0.4  # velocity estimate over the targets of the last window_s


@dataclass
class AttentionCounters:
    targets: int = 0
    switches: int = 0
    invalid_targets: int = 0  # NaN / Inf
    unknown_frame_targets: int = 0  # a frame the URDF does not have (counted by the caller)
    future_targets: int = 0  # stamped too far ahead
    stale_targets: int = 0  # already stale when they arrived

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Track:
    samples: deque = field(default_factory=lambda: deque(maxlen=64))  # (t, yaw, pitch)
    fit: tuple | None = None  # (direction at the last sample [2], velocity [2]), per sample

    def add(self, t: float, direction: np.ndarray, jump_rad: float) -> bool:
        """Add a sample; True when it jumped (the history restarts)."""
        jumped = False
        if self.samples:
            _, *last = self.samples[-1]
            jumped = float(np.linalg.norm(direction - np.array(last))) > jump_rad
            if jumped or t <= self.samples[-1][0]:
                self.samples.clear()
        self.samples.append((t, float(direction[0]), float(direction[1])))
        self.fit = None
        return jumped

    @property
    def last_t(self) -> float:
        return self.samples[-1][0]

    def estimate(self, now: float, window_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Direction at ``now`` [2] (rad) and velocity [2] (rad/s): a line fitted to the samples
        of the last window_s (the last sample alone, at rest, when there are fewer than 3)."""
        if self.fit is None:  # fitted once per sample, not once per servo tick
            last = self.last_t
            s = np.array([x for x in self.samples if x[0] >= last - window_s])
            if len(s) < 3 or s[-1, 0] - s[0, 0] < 0.05:
                self.fit = (s[-1, 1:].copy(), np.zeros(2))
            else:
                t = s[:, 0] - last
                coef, *_ = np.linalg.lstsq(np.stack([np.ones_like(t), t], 1), s[:, 1:], rcond=None)
                self.fit = (coef[0], coef[1])
        at_last, velocity = self.fit
        return at_last + velocity * (now - self.last_t), velocity.copy()


class Attention:
    """Ranked, rate-limited choice of where to look."""

    def __init__(self, config: AttentionConfig | None = None):
        self.config = config or AttentionConfig()
        self.counters = AttentionCounters()
        self.tracks: dict[str, _Track] = {name: _Track() for name in RANK}
        self.current: str | None = None
        self.since = -math.inf  # when the current choice was made (s)
        self._held: tuple[float, float] | None = None  # the attended direction (yaw, pitch)

    def offer(self, source: str, stamp_s: float, direction, now: float) -> tuple[str, str] | None:
        """A target from ``source`` (one of RANK) seen at ``stamp_s`` (s), direction [2] (yaw,
        pitch, rad); None when accepted, else (the counter it was counted in, why)."""
        c, cfg = self.counters, self.config
        d = np.asarray(direction, dtype=np.float64).reshape(-1)
        if d.shape != (2,) or not (np.isfinite(d).all() and math.isfinite(stamp_s)):
            c.invalid_targets += 1
            return "invalid_targets", f"not a finite point and stamp: {d.tolist()} at {stamp_s}"
        if stamp_s > now + cfg.max_future_s:
            c.future_targets += 1
            return "future_targets", (
                f"stamped {stamp_s - now:.2f} s in the future (more than max_future_s "
                f"{cfg.max_future_s} s): is the sender's clock the same as ours (use_sim_time)?"
            )
        if stamp_s < now - cfg.stale_after_s:
            c.stale_targets += 1
            return "stale_targets", (
                f"stamped {now - stamp_s:.2f} s ago, older than stale_after_s {cfg.stale_after_s} s"
            )
        c.targets += 1
        track = self.tracks[source]
        if track.add(stamp_s, d, math.radians(cfg.switch_deg)) and source == self.current:
            # the same source now points elsewhere (another person): a switch, rate-limited
            if now - self.since < cfg.min_dwell_s and self._held is not None:
                track.samples.clear()  # not yet: keep looking where we were (still fresh)
                track.samples.append((stamp_s, *self._held))
                track.fit = None
            else:
                self.counters.switches += 1
                self.since = now
        return None

    def choose(self, now: float) -> tuple[str | None, np.ndarray, np.ndarray]:
        """(source or None for rest, direction [2] at ``now``, velocity [2])."""
        cfg = self.config
        fresh = [
            name
            for name in RANK
            if self.tracks[name].samples and now - self.tracks[name].last_t <= cfg.stale_after_s
        ]
        best = fresh[0] if fresh else None
        keep = self.current in fresh and now - self.since < cfg.min_dwell_s
        if best != self.current and not keep:
            if best is not None:
                self.counters.switches += 1
            self.current, self.since = best, now
        if self.current is None:
            return None, np.zeros(2), np.zeros(2)
        track = self.tracks[self.current]
        direction, velocity = track.estimate(now, cfg.window_s)
        self._held = tuple(track.samples[-1][1:])
        return self.current, direction, velocity
