"""The scripted partner: its path (waypoints, walking in between, bad paths named with the
format) and the node publishing it (a bad path: one line, exit 2)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers.ros import start_python
from timar_ros.sim.partner import PartnerPath, PartnerPathError, steps_aside_halfway


def test_the_partner_stands_then_walks_along_the_waypoints():
    path = PartnerPath("0:-20 14:-20 16.5:25", distance_m=2.0, height_m=0.3)
    assert math.degrees(path.azimuth(5.0)) == pytest.approx(-20.0)
    assert math.degrees(path.azimuth(15.25)) == pytest.approx(2.5)  # half way across
    assert math.degrees(path.azimuth(100.0)) == pytest.approx(25.0)  # stays at the last one
    p = path.position(100.0)
    np.testing.assert_allclose(np.hypot(p[0], p[1]), 2.0)
    assert p[2] == 0.3 and p[1] > 0  # to the robot's left


def test_the_demo_partner_steps_aside_half_way():
    assert steps_aside_halfway(32.0) == "0:-20 14.75:-20 17.25:25"


@pytest.mark.parametrize("bad", ["", "0:-20 10", "0:a", "5:0 5:10", "3:0 1:10"])
def test_a_bad_path_is_named_with_the_format(bad):
    with pytest.raises(PartnerPathError, match="T:AZ"):
        PartnerPath(bad)


def test_the_node_refuses_a_bad_path_in_one_line():
    proc = start_python(
        ["-m", "timar_ros.nodes.scripted_partner", "--ros-args", "-p", "path:=left"]
    )
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "partner path 'left'" in out and "Traceback" not in out, out
