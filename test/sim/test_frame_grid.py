"""The simulated camera's frame times (timar_ros/sim/frame_grid.py)."""

import numpy as np
import pytest

from timar_ros.sim.frame_grid import FrameGrid


def test_frames_stay_on_the_grid_over_float_summed_time():
    """10 Hz over 0.02-s ticks of 0.002-s physics steps summed in float, for 10 minutes: a
    frame every 5 ticks, never a gap of two periods (scheduling from the last frame's tick
    dropped one whenever the sum ended a hair short)."""
    grid, t, taken = FrameGrid(10.0, 0.001), 0.0, []
    for _ in range(30000):
        for _ in range(10):
            t += 0.002
        if grid.due(t):
            taken.append(t)
    gaps = np.diff(taken)[1:]  # the first frame at the first tick, 0.02 s
    assert len(taken) == 6001 and np.allclose(gaps, 0.1, atol=1e-6), gaps.max()


def test_a_late_tick_takes_one_frame_and_the_grid_goes_on():
    grid = FrameGrid(10.0, 0.001)
    assert grid.due(0.0) and not grid.due(0.05)
    assert grid.due(0.37)  # late: one frame, not three
    assert not grid.due(0.39) and grid.due(0.3995)  # the next on the grid, 0.4 s
    with pytest.raises(ValueError, match="fps must be > 0"):
        FrameGrid(0.0, 0.001)
