"""DualTalk layout: audio I/O, training windows (distinct, both directions), test iteration,
noised copies."""

import json

import numpy as np
import pytest
import soundfile as sf

from timar_ros.data.audio import AudioError, load_wav, resample, write_wav
from timar_ros.data.corruption import burst_mask, hold_last_frame, motion_noise_burst
from timar_ros.data.dualtalk import (
    DualTalkWindows,
    NoiseSpec,
    iter_test,
    make_noised_testset,
    motion_stats,
)
from timar_ros.data.dualtalk_files import load_motion, partner_stem, save_motion, speaker_stems
from timar_ros.motion import SAMPLES_PER_FRAME

F = 5  # frames per turn in the fixtures (small and fast)


def _write_pair(root, clip, frames, sr=16000, code=0.0):
    """Two speakers whose motion/audio encode (speaker, frame) so slices are recognisable."""
    for k, T in zip((1, 2), frames):
        stem = f"{clip}_speaker{k}"
        t = np.arange(T, dtype=np.float32)
        exp = np.zeros((T, 50), np.float32)
        exp[:, 0] = t  # frame index
        exp[:, 1] = k  # speaker
        exp[:, 2] = code  # clip code
        pose = np.zeros((T, 6), np.float32)
        pose[:, 0:3] = 0.01 * k  # rotation
        pose[:, 3:6] = 0.001 * t[:, None]  # jaw
        np.savez(root / f"{stem}.npz", exp=exp, pose=pose)
        n = T * SAMPLES_PER_FRAME * sr // 16000
        # audio value ramps with the frame index (constant within a frame): easy to check slices
        a = (np.repeat(np.arange(T), SAMPLES_PER_FRAME) / 1e4 + 0.1 * k).astype(np.float32)
        if sr != 16000:
            a = np.sin(np.arange(n) / 50.0).astype(np.float32) * 0.1
        sf.write(root / f"{stem}.wav", a[:n], sr, subtype="FLOAT")


@pytest.fixture
def dt_dir(tmp_path):
    root = tmp_path / "test"
    root.mkdir()
    _write_pair(root, "clipA", (47, 52), code=1.0)  # 47 usable frames -> 2 windows of 20
    _write_pair(root, "clipB", (61, 60), code=2.0)  # 60 -> 3 windows
    _write_pair(root, "clipC", (12, 30), code=3.0)  # 12 -> shorter than a window: skipped
    (root / "lonely_speaker1.wav").write_bytes(b"")  # no partner, no npz: ignored
    return root


def test_layout_names(dt_dir):
    assert partner_stem("x_speaker1") == "x_speaker2"
    assert partner_stem("a_b_speaker2") == "a_b_speaker1"
    with pytest.raises(ValueError):
        partner_stem("x_speaker3")
    assert speaker_stems(dt_dir) == [f"clip{c}_speaker{k}" for c in "ABC" for k in (1, 2)]


def test_motion_order_roundtrip(tmp_path, dt_dir):
    m = load_motion(dt_dir / "clipA_speaker2.npz")
    assert m.shape == (52, 56) and m.dtype == np.float32
    np.testing.assert_allclose(m[:, 50:53], 0.001 * np.arange(52)[:, None] * np.ones(3), atol=1e-7)
    np.testing.assert_allclose(m[:, 53:56], 0.02)  # rotation of speaker 2
    save_motion(tmp_path / "x_speaker1.npz", m)
    np.testing.assert_array_equal(load_motion(tmp_path / "x_speaker1.npz"), m)


def test_windows_distinct_both_directions(dt_dir):
    ds = DualTalkWindows(dt_dir, turns=4, frames_per_turn=F)  # 20-frame windows
    assert ds.skipped == 2  # clipC in both directions
    # clipA: min(47,52)=47 -> 2 windows per direction; clipB: 60 -> 3 per direction
    assert len(ds) == 2 * 2 + 2 * 3
    agents = [w[0] for w in ds.windows]
    assert agents.count("clipA_speaker1") == 2 and agents.count("clipA_speaker2") == 2
    seen = set()
    for i in range(len(ds)):
        item = ds[i]
        assert set(item) == {"user_audio", "agent_audio", "user_motion", "agent_motion"}
        assert item["user_audio"].shape == (20 * SAMPLES_PER_FRAME,)
        assert item["agent_audio"].shape == (20 * SAMPLES_PER_FRAME,)
        assert item["user_motion"].shape == (20, 56)
        assert item["agent_motion"].shape == (20, 56)
        for v in item.values():
            assert v.dtype.is_floating_point and str(v.dtype) == "torch.float32"
        agent, user, f0 = ds.windows[i]
        am, um = item["agent_motion"].numpy(), item["user_motion"].numpy()
        # each window holds its own slice (the reference's duplicated-window bug is absent)
        np.testing.assert_array_equal(am[:, 0], np.arange(f0, f0 + 20))
        np.testing.assert_array_equal(um[:, 0], np.arange(f0, f0 + 20))
        assert (
            am[0, 1] == int(agent[-1]) and um[0, 1] == int(user[-1]) and user == partner_stem(agent)
        )
        ua = item["user_audio"].numpy()
        np.testing.assert_allclose(
            ua[::SAMPLES_PER_FRAME] - 0.1 * int(user[-1]), np.arange(f0, f0 + 20) / 1e4, atol=1e-6
        )
        key = (agent, f0)
        assert key not in seen
        seen.add(key)
    # windows of one direction never overlap
    for agent in set(agents):
        starts = sorted(f for a, _, f in ds.windows if a == agent)
        assert all(b - a >= 20 for a, b in zip(starts, starts[1:]))


def test_overlapping_windows_and_motion_stats(dt_dir):
    """stride_turns < turns: windows start every stride (longer windows still cover short
    files); the motion statistics count each frame once, however many windows hold it."""
    ds = DualTalkWindows(dt_dir, turns=4, frames_per_turn=F, stride_turns=2)
    starts = sorted(f for a, _, f in ds.windows if a == "clipB_speaker1")
    assert starts == [0, 10, 20, 30, 40]  # 60 usable frames, 20-frame windows every 10
    assert ds.summary()["stride_turns"] == 2
    mean, std = motion_stats([ds])
    frames = np.concatenate(
        [
            load_motion(dt_dir / f"{a}.npz")[: ds.frames[a]]
            for a in ("clipA_speaker1", "clipA_speaker2", "clipB_speaker1", "clipB_speaker2")
        ]
    )
    np.testing.assert_allclose(mean, frames.mean(0), atol=1e-5)
    np.testing.assert_allclose(std, frames.std(0), atol=1e-5)
    for bad in (0, 5):
        with pytest.raises(ValueError, match="stride_turns"):
            DualTalkWindows(dt_dir, turns=4, frames_per_turn=F, stride_turns=bad)


def test_windows_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        DualTalkWindows(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError):
        DualTalkWindows(tmp_path / "empty")


def test_iter_test_pairing(dt_dir):
    items = list(iter_test(dt_dir, frames_per_turn=F))
    assert [it.name for it in items] == speaker_stems(dt_dir)  # each file once as the agent
    by = {it.name: it for it in items}
    a1 = by["clipA_speaker1"]
    # user = partner (speaker2); truncated to floor(min(47, 52, 52) / 5) = 9 whole turns
    assert a1.turns == 9 and a1.user_motion.shape == (45, 56)
    assert a1.user_audio.shape == (45 * SAMPLES_PER_FRAME,) == a1.agent_audio.shape
    assert np.all(a1.user_motion[:, 1] == 2) and np.all(a1.agent_motion[:, 1] == 1)
    np.testing.assert_array_equal(a1.partner_motion, a1.user_motion)
    c2 = by["clipC_speaker2"]  # user = speaker1 with 12 frames -> 2 turns
    assert c2.turns == 2 and c2.agent_motion.shape == (10, 56)


def test_noised_copy(dt_dir, tmp_path):
    out = tmp_path / "noised"
    spec = NoiseSpec(
        user_motion_drop_prob=0.5,
        user_motion_drop_mean_s=0.2,
        user_speech_silence_prob=0.3,
        agent_speech_noise_prob=0.5,
        agent_speech_snr_db=20.0,
    )
    make_noised_testset(dt_dir, out, spec, seed=3)
    meta = json.loads((out / "noise.json").read_text())
    assert meta["files"] == 6 and meta["seed"] == 3
    items = {it.name: it for it in iter_test(dt_dir, F, noised_dir=out)}
    clean = {it.name: it for it in iter_test(dt_dir, F)}
    it, cl = items["clipB_speaker1"], clean["clipB_speaker1"]
    np.testing.assert_array_equal(it.agent_motion, cl.agent_motion)  # GT stays clean
    np.testing.assert_array_equal(it.partner_motion, cl.partner_motion)  # anchor stays clean
    um = it.user_motion
    assert not np.array_equal(um, cl.user_motion)
    # every frame is either itself or a repeat of the previous output frame (hold-last-frame)
    idx = um[:, 0]
    t = np.arange(len(idx))
    held = idx != t
    assert held.any() and (~held).any()
    np.testing.assert_array_equal(idx[1:][held[1:]], idx[:-1][held[1:]])
    assert idx[0] == 0
    assert (it.user_audio == 0).any() and not (cl.user_audio == 0).any()
    assert not np.array_equal(it.agent_audio, cl.agent_audio)
    # seeded: the same call gives the same files
    out2 = tmp_path / "noised2"
    make_noised_testset(dt_dir, out2, spec, seed=3)
    assert (out / "user" / "clipB_speaker2.npz").read_bytes() == (
        out2 / "user" / "clipB_speaker2.npz"
    ).read_bytes()


def test_burst_mask_occupancy_and_lengths():
    rng = np.random.default_rng(0)
    for prob in (0.1, 0.3, 0.5, 0.7):
        occ = np.mean([burst_mask(2000, prob, 25, rng).mean() for _ in range(40)])
        assert abs(occ - prob) < 0.03, (prob, occ)
    m = burst_mask(200_000, 0.3, 10, rng)
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, m.astype(int), 0])))[::2]
    assert 9.0 < runs.mean() < 14.0  # geometric bursts (merged when a gap is 0)
    assert not burst_mask(100, 0.0, 5, rng).any() and burst_mask(100, 1.0, 5, rng).all()


def test_hold_last_frame_and_motion_noise():
    x = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 56), np.float32)
    mask = np.array([1, 1, 0, 0, 1, 1, 1, 0, 1, 1], bool)
    np.testing.assert_array_equal(hold_last_frame(x, mask)[:, 0], [0, 0, 2, 3, 3, 3, 3, 7, 7, 7])
    rng = np.random.default_rng(1)
    base = np.zeros((5000, 56), np.float32)
    for kind, check in (
        ("gaussian", lambda e: abs(e.std() - 0.2) < 0.01),
        ("laplace", lambda e: abs(np.abs(e).mean() - 0.2) < 0.01),
        ("uniform", lambda e: np.abs(e).max() <= 0.2 + 1e-6),
    ):
        out, m = motion_noise_burst(base, 0.5, 0.2, kind, 0.2, rng)
        assert np.all(out[~m] == 0) and check(out[m])
    with pytest.raises(ValueError):
        motion_noise_burst(base, 0.5, 0.2, "cauchy", 0.2, rng)


def test_audio_io(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_wav(tmp_path / "nope.wav")
    st = np.stack([np.full(480, 0.2), np.full(480, 0.4)], 1).astype(np.float32)
    sf.write(tmp_path / "st.wav", st, 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_wav(tmp_path / "st.wav"), 0.3, atol=1e-6)
    np.testing.assert_allclose(load_wav(tmp_path / "st.wav", channel=1), 0.4, atol=1e-6)
    with pytest.raises(AudioError):
        load_wav(tmp_path / "st.wav", channel="error")
    with pytest.raises(AudioError):
        load_wav(tmp_path / "st.wav", channel=2)
    bad = np.zeros(100, np.float32)
    bad[5] = np.nan
    sf.write(tmp_path / "nan.wav", bad, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="non-finite"):
        load_wav(tmp_path / "nan.wav")
    (tmp_path / "junk.wav").write_bytes(b"not a wav")
    with pytest.raises(AudioError):
        load_wav(tmp_path / "junk.wav")
    # 44.1 kHz sine -> 16 kHz, frequency preserved
    t = np.arange(44100) / 44100
    sf.write(tmp_path / "s44.wav", 0.5 * np.sin(2 * np.pi * 440 * t), 44100)
    y = load_wav(tmp_path / "s44.wav")
    assert y.dtype == np.float32 and len(y) == 16000
    assert abs(np.argmax(np.abs(np.fft.rfft(y))) - 440) <= 1
    assert len(resample(np.zeros(480), 48000, 16000)) == 160
    write_wav(tmp_path / "o" / "w.wav", np.array([2.0, -2.0, 0.5], np.float32))
    np.testing.assert_allclose(load_wav(tmp_path / "o" / "w.wav"), [1.0, -1.0, 0.5], atol=1e-4)
