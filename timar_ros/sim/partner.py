"""A scripted conversation partner's position (no ROS): where the person stands over time, for
simulations and the demo, as a face tracker would report their head.

A path is written ``"T:AZ T:AZ ..."``: at T seconds after the start the person is at azimuth AZ
degrees (REP-103: + to the robot's left), linearly in between (walking), ``distance_m`` away at
``height_m`` in the base frame. E.g. ``"0:-20 14:-20 16.5:25"``: 20 degrees to the right, then,
after 14 s, 45 degrees to the left in 2.5 s (18 deg/s), and there afterwards.
"""

from __future__ import annotations

import math

import numpy as np


class PartnerPathError(ValueError):
    """A path string that cannot be used; the message shows the format."""


FORMAT = "'T:AZ T:AZ ...' (seconds:degrees, times increasing), e.g. '0:-20 14:-20 16.5:25'"


class PartnerPath:
    """Args: path (see the module), distance_m (m), height_m (m, base frame)."""

    def __init__(self, path: str, distance_m: float = 1.2, height_m: float = 0.24):
        try:
            pairs = [tuple(float(x) for x in w.split(":")) for w in path.split()]
        except ValueError:
            raise PartnerPathError(f"partner path {path!r}: not numbers; want {FORMAT}") from None
        if not pairs or any(len(p) != 2 for p in pairs):
            raise PartnerPathError(f"partner path {path!r}: want {FORMAT}")
        t = np.array([p[0] for p in pairs])
        az = np.array([p[1] for p in pairs])
        if not (np.isfinite(t).all() and np.isfinite(az).all()) or np.any(np.diff(t) <= 0):
            raise PartnerPathError(f"partner path {path!r}: times must increase; want {FORMAT}")
        if not distance_m > 0:
            raise PartnerPathError(f"distance_m must be > 0, got {distance_m}")
        self.times, self.azimuths_deg = t, az
        self.distance_m, self.height_m = float(distance_m), float(height_m)

    def azimuth(self, t: float) -> float:
        """The partner's azimuth (rad) t seconds after the start."""
        return math.radians(float(np.interp(t, self.times, self.azimuths_deg)))

    def position(self, t: float) -> np.ndarray:
        """The partner's head [3] (m, base frame) t seconds after the start."""
        a = self.azimuth(t)
        r = self.distance_m
        return np.array([r * math.cos(a), r * math.sin(a), self.height_m])


def steps_aside_halfway(
    duration_s: float, start_deg: float = -20.0, end_deg: float = 25.0, walk_s: float = 2.5
) -> str:
    """A path for a conversation of ``duration_s`` seconds: the partner stands at start_deg and
    half way through walks to end_deg in walk_s seconds (the demo's partner)."""
    mid = max(duration_s / 2, walk_s / 2 + 0.1)
    a, b = round(mid - walk_s / 2, 2), round(mid + walk_s / 2, 2)
    return f"0:{start_deg:g} {a:g}:{start_deg:g} {b:g}:{end_deg:g}"
