"""The synthetic conversation generator: determinism, its rules, speed, config, layout, TTS."""

import time
from pathlib import Path

import numpy as np
import pytest

from timar_ros.data.dualtalk import DualTalkWindows, iter_test
from timar_ros.data.synthetic import (
    SyntheticConfig,
    engagement_after,
    flite_available,
    generate_conversation,
    generate_dataset,
)
from timar_ros.data.synthetic.signals import frame_rms
from timar_ros.motion import SAMPLES_PER_FRAME

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def convs():
    cfg = SyntheticConfig()
    return cfg, [
        generate_conversation(cfg, np.random.default_rng([5, i]), duration_s=30.0) for i in range(6)
    ]


def test_deterministic_given_seed():
    cfg = SyntheticConfig()
    a = generate_conversation(cfg, 123, duration_s=12.0)
    b = generate_conversation(cfg, 123, duration_s=12.0)
    c = generate_conversation(cfg, 124, duration_s=12.0)
    for k in range(2):
        np.testing.assert_array_equal(a.audio[k], b.audio[k])
        np.testing.assert_array_equal(a.motion[k], b.motion[k])
    assert a.events == b.events
    assert not np.array_equal(a.audio[0], c.audio[0])


def test_shapes_and_magnitudes(convs):
    _, cs = convs
    for c in cs:
        T = len(c.motion[0])
        assert T == 750 and c.motion[1].shape == (750, 56)
        assert all(len(a) == T * SAMPLES_PER_FRAME and a.dtype == np.float32 for a in c.audio)
        for m in c.motion:
            assert m.dtype == np.float32 and np.all(np.isfinite(m))
            assert m[:, 50].min() >= 0.0 and m[:, 50].max() <= 0.3  # jaw opening, rad
            assert np.abs(m[:, 53:56]).max() <= 0.4  # head rotation, rad
            assert np.abs(m[:, :50]).max() < 3.0  # expression
        assert c.meta["turns"] >= 3
    # nods ~0.05-0.15 rad before the engagement gain; tilts choose a side at random
    ev = [e for c in cs for e in c.events]
    assert {e["kind"] for e in ev} == {"nod", "tilt"}
    for e in ev:
        assert 0.03 <= e["amp"] <= 0.15
    assert {e["side"] for e in ev if e["kind"] == "tilt"} == {-1.0, 1.0}


def test_jaw_follows_own_speech(convs):
    cfg, cs = convs
    for c in cs:
        T = len(c.motion[0])
        for k in range(2):
            own = np.log(frame_rms(c.audio[k], T))
            other = np.log(frame_rms(c.audio[1 - k], T))
            jaw = c.motion[k][:, 50]
            r_own = np.corrcoef(jaw[2:], own[:-2])[0, 1]  # the short lag (0.04 s = 1 frame)
            r_other = np.corrcoef(jaw[2:], other[:-2])[0, 1]
            assert r_own > 0.6 and r_own > r_other + 0.5, (r_own, r_other)
            # a mouth expression coefficient too
            assert np.corrcoef(c.motion[k][2:, 0], own[:-2])[0, 1] > 0.4


def test_listener_reactions_follow_partner_pauses(convs):
    cfg, cs = convs
    rc = cfg.reactions
    after, base = [], []
    n_events = 0
    for c in cs:
        T = len(c.motion[0])
        for e in c.events:
            n_events += 1
            lag_s = (e["frame"] - e["pause_frame"]) / 25
            assert 0.1 <= lag_s <= rc.lag_mean_s + 5 * rc.lag_std_s
            # the partner is silent at the pause onset, and had been speaking just before
            env = c.info["envelopes"][1 - e["speaker"]]  # of the clean speech
            assert env[e["pause_frame"] : e["pause_frame"] + 3].max() < rc.vad_threshold
            assert env[max(0, e["pause_frame"] - 10) : e["pause_frame"]].max() > rc.vad_threshold
        # the head moves more in the 0.6 s after a reaction's onset than in the 0.6 s before
        for e in c.events:
            rot = c.motion[e["speaker"]][:, [53, 55]]
            f = e["frame"]
            if f >= 15 and f + 15 <= T:
                after.append(np.ptp(rot[f : f + 15], axis=0).max())
                base.append(np.ptp(rot[f - 15 : f], axis=0).max())
    assert n_events >= 10
    assert np.mean(after) > 2.5 * np.mean(base)


def test_the_mood_sets_what_the_listener_does_and_how_much_both_smile(convs):
    """The conversation-level state: every reaction of a conversation is the mood's kind, and
    the speakers' smile while speaking tells the mood (what a model must remember)."""
    cfg, cs = convs
    assert {c.meta["mood"] for c in cs} == {"warm", "reserved"}
    for c in cs:
        kind = cfg.reactions.kind_by_mood[c.meta["mood"]]
        assert c.events and all(e["kind"] == kind for e in c.events)
        lo, hi = cfg.mood.speaking_smile[c.meta["mood"]]
        for k in range(2):
            hold = c.info["holding"][k]
            smile = c.info["speaking_smile"][k][hold]
            assert lo - 0.05 <= np.median(smile) <= hi + 0.05


def test_the_listener_smile_mimics_the_partner_of_lag_s_earlier(convs):
    """The listener's added smile correlates best with the partner's speaking smile delayed by
    about mimicry.lag_s (+ the decay's delay), not with the partner's smile now."""
    cfg, cs = convs
    lags = np.arange(0, 5 * 25, 5)
    score = np.zeros(len(lags))
    for c in cs:
        for k in range(2):
            partner, mim = c.info["speaking_smile"][1 - k], c.info["mimicry"][k]
            for i, L in enumerate(lags):
                a, b = mim[L:], partner[: len(partner) - L]
                if a.std() > 1e-6 and b.std() > 1e-6:
                    score[i] += np.corrcoef(a, b)[0, 1]
    best = lags[int(np.argmax(score))] / 25
    assert cfg.mimicry.lag_s <= best <= cfg.mimicry.lag_s + cfg.mimicry.tau_s, best
    assert score.max() > score[0] + 1.0  # delayed, not immediate


def test_the_speaker_head_follows_the_own_prosody(convs):
    """While speaking the head turns and nods with the speech: pitch dips after accents and the
    head moves more than while listening (idle only, between reactions)."""
    _, cs = convs
    dips, speak, listen = [], [], []
    for c in cs:
        for k in range(2):
            pitch, hold = c.motion[k][:, 53], c.info["holding"][k]
            for f in c.info["accents"][k]:
                if f + 6 < len(pitch) and f >= 2:
                    dips.append(pitch[f + 4] - pitch[f - 1])
            rot = c.motion[k][:, 53:56] - c.motion[k][:, 53:56].mean(0)
            reacting = np.zeros(len(pitch), bool)
            for e in c.events:
                if e["speaker"] == k:
                    reacting[e["frame"] : e["frame"] + 40] = True
            speak.append(rot[hold, 1])
            listen.append(rot[~hold & ~reacting, 1])
    assert len(dips) > 50 and np.mean(dips) < -0.01  # radians: a downward nod per accent
    assert np.std(np.concatenate(speak)) > 1.5 * np.std(np.concatenate(listen))


def test_the_targets_are_smooth(convs):
    """Frame-to-frame change of the head and jaw like real motion: no target jitters."""
    _, cs = convs
    for c in cs:
        for m in c.motion:
            d2 = np.abs(np.diff(m.astype(np.float64), 2, axis=0)).mean(0)
            assert d2[53:56].max() < 0.008  # rad / frame^2 (~0.45 deg)
            assert d2[50] < 0.025  # the jaw moves with the syllables (4-5 Hz)


def test_engagement_builds_over_turns(convs):
    _, cs = convs
    assert engagement_after(0, 0.2, 0.25) == pytest.approx(0.2)
    assert engagement_after(4, 0.2, 0.25) == pytest.approx(1 - 0.8 * 0.75**4)
    early, late = [], []
    for c in cs:
        for k in range(2):
            es = [e["engagement"] for e in c.events if e["speaker"] == k]
            assert es == sorted(es)  # never decreases within a conversation
            ev = [e for e in c.events if e["speaker"] == k]
            for e in ev:
                (early if e["frame"] < 375 else late).append(e["amp"])
    assert np.mean(late) > np.mean(early)


def test_generation_speed():
    cfg = SyntheticConfig()
    generate_conversation(cfg, 0, duration_s=5.0)  # warm-up (imports)
    t = time.perf_counter()
    generate_conversation(cfg, 1, duration_s=30.0)
    assert time.perf_counter() - t < 1.0


def test_config_yaml(tmp_path):
    cfg = SyntheticConfig.from_yaml(REPO / "config" / "synthetic.yaml")
    assert cfg == SyntheticConfig()  # the committed YAML is the defaults
    ood = SyntheticConfig.from_yaml(REPO / "config" / "synthetic_ood.yaml")
    assert ood.reactions.lag_mean_s != cfg.reactions.lag_mean_s
    assert {v.f0_hz for v in ood.voices}.isdisjoint({v.f0_hz for v in cfg.voices})
    p = tmp_path / "bad.yaml"
    p.write_text("reactions: {no_such_key: 1}\n")
    with pytest.raises(ValueError, match="no_such_key"):
        SyntheticConfig.from_yaml(p)
    c = generate_conversation(ood, 3, duration_s=8.0)
    assert c.meta["config"] == "synthetic_ood"


def test_writes_dualtalk_layout(tmp_path):
    cfg = SyntheticConfig()
    cfg.turns.duration_s = (9.0, 11.0)
    stats = generate_dataset(tmp_path, cfg, 3, seed=9)
    assert stats["conversations"] == 3
    ds = DualTalkWindows(tmp_path, turns=4, frames_per_turn=25)
    assert ds.skipped == 0 and len(ds) == 3 * 2 * 2  # 9..11 s -> 2 windows of 4 s, 2 directions
    items = list(iter_test(tmp_path))
    assert len(items) == 6 and all(it.turns >= 9 for it in items)
    assert sorted(p.name for p in tmp_path.glob("*.meta.json"))[0] == "syn9_00000.meta.json"


@pytest.mark.skipif(not flite_available(), reason="flite not installed")
def test_flite_tts_conversation():
    cfg = SyntheticConfig()
    cfg.tts.mode = "on"
    cfg.tts.prob = 1.0
    c = generate_conversation(cfg, 2, duration_s=10.0)
    assert c.meta["tts"] is True
    assert all(np.abs(a).max() > 0.05 for a in c.audio)
    assert c.motion[0][:, 50].max() > 0.1


def test_committed_demo_conversation():
    d = REPO / "data" / "demo_conversation"
    items = list(iter_test(d))
    assert [it.name for it in items] == ["demo_speaker1", "demo_speaker2"]
    for it in items:
        assert 25 <= it.turns <= 35 and np.abs(it.agent_audio).max() > 0.1
        assert it.agent_motion[:, 50].max() > 0.1  # the jaw opens with the TTS speech
    assert sum(p.stat().st_size for p in d.iterdir()) < 2.5e6
    import json

    meta = json.loads((d / "conversation.json").read_text())
    assert meta["speakers"]["speaker2"]["role"].startswith("robot")
    assert any(ln["kind"] == "backchannel" for ln in meta["script"])
