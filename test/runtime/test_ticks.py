"""Streaming inside the turn: TickSchedule, StreamingPolicy.tick / end_turn / run_ticks (torch).

The oracle is an offline simulation of the same ticks through the parallel (training-path)
forward: the history's turns whole, the turn in progress as the tick sees it."""

import numpy as np
import pytest
import torch

from helpers.model import (
    conversation,
    one_thread_module,  # noqa: F401
    stream,
    tiny_model,
)
from timar_ros.runtime.sampling_noise import policy_noise
from timar_ros.runtime.ticks import Tick, TickSchedule
from timar_ros.runtime.torch_policy import TorchStreamingPolicy


def test_schedule_tiles_the_turn_and_sets_the_display_delay():
    s = TickSchedule(25, 3, 2)
    ticks = s.ticks()
    assert [t.shown for t in ticks] == list(range(0, 25, 3))
    assert sum(t.frames for t in ticks) == 25 and ticks[-1] == Tick(24, 1, 25)
    assert all(t.heard == min(25, t.shown + t.frames + 2) for t in ticks)
    assert s.streaming and s.tick_s == pytest.approx(0.12) and s.lookahead_s == pytest.approx(0.08)
    assert s.display_delay_s(0.1) == pytest.approx(0.3)
    one_s = TickSchedule(25, 25)
    assert not one_s.streaming and one_s.ticks() == [Tick(0, 25, 25)]
    assert one_s.display_delay_s(0.25) == pytest.approx(1.25)  # today's 1-s mode
    assert TickSchedule.from_seconds(25, 0.12, 0.04) == TickSchedule(25, 3, 1)
    with pytest.raises(ValueError, match="whole number of 40-ms.*0.08 or 0.12"):
        TickSchedule.from_seconds(25, 0.1)
    with pytest.raises(ValueError, match="1..25 frames"):
        TickSchedule(25, 26)
    with pytest.raises(ValueError, match="margin"):
        s.display_delay_s(-0.1)


def _oracle_tick(m, ua, aa, um, t, heard, prefix, shown, n, noise):
    """Frames shown..shown+n of turn t by the parallel forward (zero noise)."""
    spt, F = m.config.samples_per_turn, m.config.frames_per_turn

    def tens(a):
        return None if a is None else torch.from_numpy(np.ascontiguousarray(a))[None]

    with torch.no_grad():
        xs = []
        if t:
            xh, _ = m.embed_turns(
                tens(ua[: t * spt]),
                tens(aa[: t * spt]),
                None if um is None else tens(um[: t * F]),
                t,
            )
            xs.append(xh)
        u = ua[t * spt : (t + 1) * spt].copy()
        a = aa[t * spt : (t + 1) * spt].copy()
        u[heard[0] * 640 :] = 0
        a[heard[1] * 640 :] = 0
        known = torch.tensor([[heard[0], heard[1], shown]])
        xc, _ = m.embed_tick(
            tens(u),
            tens(a),
            None if um is None else tens(um[t * F : (t + 1) * F]),
            tens(prefix),
            known,
        )
        xs.append(xc[:, None])
        h = m.backbone_parallel(torch.cat(xs, 1))[0, -1]
        x_T, sn = noise
        return m.sample_motion(
            h[shown : shown + n],
            torch.from_numpy(x_T[shown : shown + n]),
            torch.from_numpy(sn[:, shown : shown + n]),
            None,
            1.0,
        ).numpy()


@pytest.mark.parametrize("motion", [False, True])
def test_ticks_equal_an_offline_simulation_of_the_same_ticks(motion):
    m = tiny_model(frames_per_turn=10, window_turns=3)
    n_turns = 5  # past the window: eviction from the cache
    ua, aa, um = conversation(m, n_turns, seed=1, motion=motion)
    sched = TickSchedule(10, 3, 1)
    pol = TorchStreamingPolicy(m, seed=0, noise="zeros")
    got = pol.run_ticks(ua, aa, sched, um)
    F = 10
    want = []
    for t in range(n_turns):
        prefix = np.zeros((F, 56), np.float32)
        noise = policy_noise("zeros", 0, 1, F, pol.num_sampling_steps, t)
        for tk in sched.ticks():
            out = _oracle_tick(
                m, ua, aa, um, t, (tk.heard, tk.heard), prefix, tk.shown, tk.frames, noise
            )
            prefix[tk.shown : tk.shown + tk.frames] = out
            want.append(out)
    want = np.concatenate(want)
    assert got.shape == want.shape == (n_turns * F, 56)
    assert np.abs(got - want).max() < 1e-4
    # the prefix matters: the same ticks without it (every frame masked) differ
    assert np.abs(got - pol.run_offline(ua, aa, um)).max() > 1e-3


def test_committed_history_equals_the_one_second_mode():
    """After any ticks, the next 1-s step sees the history the 1-s mode would: same output."""
    m = tiny_model(frames_per_turn=10, window_turns=3)
    ua, aa, um = conversation(m, 5, seed=2)
    spt, F = m.config.samples_per_turn, 10
    one_s = TorchStreamingPolicy(m, seed=3)
    ticked = TorchStreamingPolicy(m, seed=3)
    for t in range(4):
        u, a, mo = ua[t * spt : (t + 1) * spt], aa[t * spt : (t + 1) * spt], um[t * F : (t + 1) * F]
        one_s.step(u, a, mo)
        for tk in TickSchedule(10, 4, 0).ticks():
            ticked.tick(u, a, (tk.heard, tk.heard), tk.frames, mo)
        ticked.end_turn(u, a, mo)
        for c1, c2 in zip(one_s._cache, ticked._cache):
            assert torch.equal(c1, c2)
    u, a, mo = ua[4 * spt :], aa[4 * spt :], um[4 * F :]
    assert np.array_equal(one_s.step(u, a, mo), ticked.step(u, a, mo))


def test_one_tick_per_turn_is_the_one_second_mode():
    m = tiny_model(frames_per_turn=10)
    ua, aa, um = conversation(m, 4, seed=4)
    pol = TorchStreamingPolicy(m, seed=5)
    ticks = pol.run_ticks(ua, aa, TickSchedule(10, 10), um)
    assert np.abs(ticks - stream(TorchStreamingPolicy(m, seed=5), ua, aa, um)).max() < 1e-5


def test_a_tick_sees_only_what_was_heard():
    """Changing the partner's audio after the heard frames changes nothing in the tick."""
    m = tiny_model(frames_per_turn=10)
    ua, aa, _ = conversation(m, 1, seed=6)
    other = ua.copy()
    other[4 * 640 :] = np.random.default_rng(0).standard_normal(6 * 640) * 0.5
    outs = []
    for u in (ua, other):
        pol = TorchStreamingPolicy(m, seed=1)
        outs.append(pol.tick(u, aa, (4, 4), 2))
    assert np.array_equal(outs[0], outs[1])
    pol = TorchStreamingPolicy(m, seed=1)
    assert not np.array_equal(pol.tick(other, aa, (6, 4), 2), outs[0])


def test_tick_and_end_turn_check_their_inputs():
    m = tiny_model(frames_per_turn=10)
    pol = TorchStreamingPolicy(m, seed=0)
    z = np.zeros(6400, np.float32)
    with pytest.raises(ValueError, match=r"heard=\(11, 3\).*0..10"):
        pol.tick(z, z, (11, 3), 2)
    with pytest.raises(ValueError, match="frames=0: 0 of the turn's 10"):
        pol.tick(z, z, (3, 3), 0)
    with pytest.raises(ValueError, match="end_turn: 0 of the turn's 10 frames"):
        pol.end_turn(z, z)
    pol.tick(z, z, (3, 3), 3)
    with pytest.raises(ValueError, match="step\\(\\): a turn is in progress"):
        pol.step(z, z)
    pol.tick(z, z, (10, 10), 7)
    with pytest.raises(ValueError, match="call end_turn"):
        pol.tick(z, z, (10, 10), 1)
    pol.end_turn(z, z)
    assert pol.turn_index == 1 and pol.shown == 0
    crop = TorchStreamingPolicy(m, seed=0, context_turns=1)
    with pytest.raises(ValueError, match="full streamed history"):
        crop.tick(z, z, (3, 3), 3)
