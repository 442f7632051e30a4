"""When the simulated head's camera takes a frame (no ROS).

Frames fall on a grid of ``1 / fps`` seconds of simulated time from 0. Simulated time is a sum
of float physics steps, so a tick meant to end on a frame's time may end a hair before it; a
frame scheduled from the tick that rendered the last one would drift and, once in a while, drop
one (a 0.2-s gap in a 10-Hz camera, seen in CI).
"""

from __future__ import annotations


class FrameGrid:
    """``due(t)``: whether a frame is due at simulated time ``t`` (s), at most one per call."""

    def __init__(self, fps: float, tolerance_s: float):
        """``fps`` > 0 frames per simulated second; ``tolerance_s``: how far before its time a
        frame still counts as due (half a physics step)."""
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.period = 1.0 / float(fps)
        self.tolerance_s = float(tolerance_s)
        self.next_s = 0.0

    def due(self, t: float) -> bool:
        if t < self.next_s - self.tolerance_s:
            return False
        # the next frame on the grid after t (a late tick skips the frames it missed)
        k = int((t + self.tolerance_s - self.next_s) // self.period) + 1
        self.next_s += k * self.period
        return True


__all__ = ["FrameGrid"]
