"""agent_audio_heard: agent audio stamped with the time it is heard (voice_player) joins the
turn whose motion is shown then, display_delay_s after the turn's start."""

import dataclasses

import numpy as np

from helpers.model import one_thread_module, tiny_model  # noqa: F401
from timar_ros.robot.conversation import ConversationPipeline, PipelineConfig
from timar_ros.runtime.torch_policy import TorchStreamingPolicy

RATE = 16000


def _voice(seconds, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 150 * t) * (1 + 0.5 * rng.standard_normal(len(t)))).astype(
        np.float32
    )


def _turns(heard: bool):
    cfg = dataclasses.replace(PipelineConfig.defaults(), agent_audio_heard=heard)
    D = cfg.display_delay_s
    pipe = ConversationPipeline(TorchStreamingPolicy(tiny_model(frames_per_turn=25)), cfg)
    user = np.zeros(3 * RATE, np.float32)
    agent = np.concatenate([_voice(1.0), np.zeros(2 * RATE, np.float32)])  # speaks for 1 s
    out = []
    for k in range(30):  # 0.1-s chunks; agent stamps: heard at 100 + D + ...
        a, b = k * 1600, (k + 1) * 1600
        out += pipe.push_audio("user", 100.0 + a / RATE, user[a:b], RATE, seq=k)
        agent_stamp = 100.0 + a / RATE + (D if heard else 0.0)
        out += pipe.push_audio("agent", agent_stamp, agent[a:b], RATE, seq=k)
    return out, D


def test_heard_stamps_join_the_turn_whose_motion_is_shown_when_heard():
    turns, D = _turns(heard=True)
    assert [round(t.turn.start_s, 3) for t in turns[:2]] == [100.0, 101.0]
    # the speech heard at 100 + D .. 101 + D is turn 0's agent audio, shown from 100 + D
    assert turns[0].display_stamp_s == 100.0 + D
    assert turns[0].agent_voice_fraction > 0.8 and turns[1].agent_voice_fraction < 0.2
    same, _ = _turns(heard=False)  # input-clock stamps: the same turns
    assert [t.agent_voice_fraction for t in same[:2]] == [t.agent_voice_fraction for t in turns[:2]]
