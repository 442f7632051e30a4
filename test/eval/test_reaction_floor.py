"""The reaction floor: silence the partner from t0 on, same seed; the first changed frame's
display time - t0. Bounded by the schedule: (margin, tick + margin] when streaming inside the
turn, (0.25, 1.25] s in the 1-s mode (0.25-s margin), whatever the model."""

import numpy as np
import pytest

from helpers.model import conversation, one_thread_module, tiny_model  # noqa: F401
from timar_ros.eval.reaction_floor import reaction_floor
from timar_ros.runtime.ticks import TickSchedule
from timar_ros.runtime.torch_policy import TorchStreamingPolicy

MOMENTS = [1.013, 1.37, 1.55, 2.9, 3.081, 3.64, 4.2, 4.99]


@pytest.fixture(scope="module")
def setup():
    m = tiny_model(frames_per_turn=25, window_turns=3)
    ua, aa, _ = conversation(m, 7, seed=1, motion=False)
    ua = np.clip(ua * 2 + 0.05, -1, 1)  # the partner never silent
    return TorchStreamingPolicy(m, seed=0), ua, aa


def test_streaming_floor_is_about_half_a_tick_plus_the_margin(setup):
    pol, ua, aa = setup
    r = reaction_floor(pol, ua, aa, TickSchedule(25, 3), 0.1, MOMENTS)
    floors = np.array(r["floors_s"])
    assert r["display_delay_s"] == pytest.approx(0.22) and r["tick_s"] == pytest.approx(0.12)
    assert np.all(floors > 0.1) and np.all(floors <= 0.22 + 1e-9), floors
    assert r["mean_s"] <= 0.2


def test_one_second_mode_floor_is_the_rest_of_the_turn_plus_the_margin(setup):
    pol, ua, aa = setup
    r = reaction_floor(pol, ua, aa, TickSchedule(25, 25), 0.25, MOMENTS)
    want = [np.floor(t) + 1.25 - t for t in MOMENTS]  # turn start + delay - t0
    np.testing.assert_allclose(r["floors_s"], want, atol=1e-9)
