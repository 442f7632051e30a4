"""ConversationPipeline streaming inside the turn: a block per tick as the partner's audio comes
in, contiguous stamps that never go back, the same frames as the policy's own ticks, the turn's
commit, and the 1-s mode as one block per turn."""

import dataclasses

import numpy as np
import pytest

from helpers.model import conversation, one_thread_module, tiny_model  # noqa: F401
from timar_ros.motion import FPS
from timar_ros.robot.conversation import ConversationPipeline, PipelineConfig
from timar_ros.runtime.ticks import TickSchedule
from timar_ros.runtime.torch_policy import TorchStreamingPolicy

RATE = 16000
CHUNK = 800  # 50 ms, as the microphone node sends


def _config(tick_s, lookahead_s=0.0, margin=0.1):
    return dataclasses.replace(
        PipelineConfig.defaults(),
        tick_s=tick_s,
        lookahead_s=lookahead_s,
        display_delay_s=tick_s + lookahead_s + margin,
        use_user_motion=False,
    )


def _feed(pipe, ua, aa, start=50.0):
    """The robot's speech all known first (as from a TTS), then the partner chunk by chunk;
    -> (turn results, blocks, blocks made per user chunk)."""
    results, blocks, per_chunk = [], [], []
    results += pipe.push_audio("agent", start, aa, RATE, seq=0)
    blocks += pipe.take_blocks()
    for k, a in enumerate(range(0, len(ua), CHUNK)):
        results += pipe.push_audio("user", start + a / RATE, ua[a : a + CHUNK], RATE, seq=k)
        got = pipe.take_blocks()
        per_chunk.append(len(got))
        blocks += got
    results += pipe.flush()
    blocks += pipe.take_blocks()
    return results, blocks, per_chunk


@pytest.mark.parametrize("tick_s,lookahead_s", [(0.12, 0.0), (0.08, 0.04)])
def test_blocks_per_tick_with_contiguous_stamps(tick_s, lookahead_s):
    m = tiny_model(frames_per_turn=25, window_turns=3)
    n = 4
    ua, aa, _ = conversation(m, n, seed=3, motion=False)
    cfg = _config(tick_s, lookahead_s)
    pipe = ConversationPipeline(TorchStreamingPolicy(m, seed=2), cfg)
    results, blocks, per_chunk = _feed(pipe, ua, aa)
    sched = TickSchedule.from_seconds(25, tick_s, lookahead_s)
    ticks = sched.ticks()
    assert [r.turn.index for r in results] == list(range(n))
    assert len(blocks) == n * len(ticks)
    D = cfg.display_delay_s
    for i, b in enumerate(blocks):
        t, tk = divmod(i, len(ticks))
        assert (b.turn_index, b.first_frame) == (t, ticks[tk].shown)
        assert b.motion.shape == (ticks[tk].frames, 56)
        assert b.display_stamp_s == pytest.approx(50.0 + t + D + ticks[tk].shown / FPS)
        assert b.final == (tk == len(ticks) - 1)
        if i:  # contiguous, never back: each block starts where the previous one ended
            prev = blocks[i - 1]
            assert b.display_stamp_s == pytest.approx(prev.display_stamp_s + len(prev.motion) / FPS)
    # blocks come out while the turn is heard, not after it: a tick's block is made by the chunk
    # that completes its audio (at most one 50-ms chunk later)
    assert sum(per_chunk[: RATE // CHUNK]) >= len(ticks) - 1
    # the frames are those of StreamingPolicy.run_ticks (what `timar evaluate --tick-s` runs) on
    # the same audio (the segmenter clips samples to [-1, 1]); the turn's motion is its blocks
    want = TorchStreamingPolicy(m, seed=2).run_ticks(np.clip(ua, -1, 1), np.clip(aa, -1, 1), sched)
    np.testing.assert_allclose(np.concatenate([b.motion for b in blocks]), want, atol=1e-5)
    for t in range(n):
        np.testing.assert_array_equal(
            results[t].motion,
            np.concatenate([b.motion for b in blocks[t * len(ticks) : (t + 1) * len(ticks)]]),
        )
    assert pipe.policy.turn_index == n and pipe.policy.shown == 0


def test_one_second_mode_is_one_block_per_turn():
    m = tiny_model(frames_per_turn=25, window_turns=3)
    ua, aa, _ = conversation(m, 3, seed=4, motion=False)
    cfg = _config(1.0, margin=0.25)
    assert cfg.display_delay_s == pytest.approx(1.25)
    pipe = ConversationPipeline(TorchStreamingPolicy(m, seed=1), cfg)
    results, blocks, _ = _feed(pipe, ua, aa)
    assert [(b.turn_index, b.first_frame, len(b.motion)) for b in blocks] == [
        (0, 0, 25),
        (1, 0, 25),
        (2, 0, 25),
    ]
    for r, b in zip(results, blocks):
        np.testing.assert_array_equal(r.motion, b.motion)
        assert b.display_stamp_s == r.display_stamp_s == pytest.approx(r.turn.start_s + 1.25)


def test_a_silent_partner_stream_forces_the_turn_and_its_last_ticks():
    """The partner's audio stops mid-turn: the ticks wait; the lateness deadline emits the turn
    padded and its remaining ticks run on it, so every frame is still sent once, in order."""
    m = tiny_model(frames_per_turn=25, window_turns=3)
    ua, aa, _ = conversation(m, 2, seed=5, motion=False)
    pipe = ConversationPipeline(TorchStreamingPolicy(m, seed=1), _config(0.12))
    pipe.push_audio("agent", 10.0, aa, RATE, seq=0)
    for k, a in enumerate(range(0, int(1.5 * RATE), CHUNK)):  # 1.5 s of the partner, then nothing
        pipe.push_audio(
            "user", 10.0 + a / RATE, ua[a : a + CHUNK], RATE, seq=k, now_s=10.0 + a / RATE
        )
    first = pipe.take_blocks()
    assert [b.turn_index for b in first][-1] == 1 and len(first) < 18
    results = pipe.poll(10.0 + 2.0 + pipe.segmenter.max_latency_s + 0.1)
    rest = pipe.take_blocks()
    blocks = first + rest
    assert [r.turn.index for r in results] == [1] and results[0].turn.user_padded_s > 0.4
    assert [(b.turn_index, b.first_frame) for b in blocks] == [
        (t, s) for t in range(2) for s in range(0, 25, 3)
    ]


def test_bad_tick_settings_are_clear_errors():
    m = tiny_model(frames_per_turn=25)
    with pytest.raises(ValueError, match="tick_s/lookahead_s: tick_s=0.1: must be a whole number"):
        ConversationPipeline(TorchStreamingPolicy(m), _config(0.1))
    p = {
        **dataclasses.asdict(PipelineConfig.defaults()),
        **dict(tick_s=0.2, lookahead_s=0.0, latency_margin_s=0.1, display_delay_s=0.1),
    }
    p.update(on_wrong_rate="resample", max_latency_s=0.5, max_jump_s=5.0)
    with pytest.raises(ValueError, match="display_delay_s=0.1 is shorter than tick_s"):
        PipelineConfig.from_params(p)
    p["display_delay_s"] = -1.0
    assert PipelineConfig.from_params(p).display_delay_s == pytest.approx(0.3)
