"""`timar bag from-dualtalk`: DualTalk-layout conversations -> bags that reproduce the audio
samples and motion arrays exactly, on one clock."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from timar_ros import bags as B
from timar_ros import motion as M
from timar_ros.cli import main

NS = 1_000_000_000
USER_AUDIO, AGENT_AUDIO = "/timar/user/audio", "/timar/agent/audio"
USER_MOTION, GT_MOTION = "/timar/user/motion", "/timar/ground_truth/head_motion"


def make_dualtalk(
    root,
    clips=("abc_sub_video_0", "xyz_sub_video_3_001"),
    frames=(63, 50),
    seed=0,
    rate=16000,
    channels=1,
):
    """A flat DualTalk folder: <clip>_speaker{1,2}.wav (PCM16) and .npz (exp [T,50], pose [T,6],
    shape [T,100]). Audio length = T frames of 640 samples, minus a few samples (not aligned)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for clip, T in zip(clips, frames):
        for k in (1, 2):
            n = int(T * rate / M.FPS) - 37
            audio = (0.3 * rng.standard_normal((n, channels))).clip(-1, 1)
            sf.write(
                root / f"{clip}_speaker{k}.wav",
                audio if channels > 1 else audio[:, 0],
                rate,
                subtype="PCM_16",
            )
            np.savez(
                root / f"{clip}_speaker{k}.npz",
                exp=rng.normal(size=(T, 50)).astype(np.float32),
                pose=rng.normal(scale=0.2, size=(T, 6)).astype(np.float32),
                shape=np.zeros((T, 100), np.float32),
            )
    (root / "unpaired_speaker1.npz").write_bytes(b"")  # incomplete pair: ignored
    return root


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    src = make_dualtalk(tmp_path_factory.mktemp("dualtalk") / "test")
    out = tmp_path_factory.mktemp("bags")
    assert main(["bag", "from-dualtalk", str(src), str(out)]) == 0
    return src, out


def _wav(path):
    return sf.read(path, dtype="float32")[0]


def _motion(path):
    with np.load(path) as z:
        return M.from_dualtalk(z["exp"], z["pose"])


def test_one_bag_per_conversation_and_agent(converted):
    src, out = converted
    assert B.dualtalk_clips(src) == ["abc_sub_video_0", "xyz_sub_video_3_001"]
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "abc_sub_video_0_speaker1",
        "abc_sub_video_0_speaker2",
        "xyz_sub_video_3_001_speaker1",
        "xyz_sub_video_3_001_speaker2",
    ]
    info = B.bag_info(out / "abc_sub_video_0_speaker2")
    assert info["storage"] == "mcap" and info["start_ns"] == NS
    n_chunks = -(-(63 * 640 - 37) // 1600)
    assert (
        info["end_ns"] == NS + (n_chunks - 1) * NS // 10
    )  # the last audio chunk is the last message
    assert set(info["topics"]) == {USER_AUDIO, AGENT_AUDIO, USER_MOTION, GT_MOTION}
    assert (
        info["custom_data"]["timar.agent"] == "speaker2"
        and info["custom_data"]["timar.user"] == "speaker1"
    )
    assert info["custom_data"]["timar.clip"] == "abc_sub_video_0"
    # 63 frames -> 3 motion blocks (25, 25, 13); 2483 samples ... 0.1 s chunks
    assert info["topics"][GT_MOTION]["count"] == 3
    n = 63 * 640 - 37
    assert info["topics"][AGENT_AUDIO]["count"] == -(-n // 1600)


@pytest.mark.parametrize("clip", ["abc_sub_video_0", "xyz_sub_video_3_001"])
@pytest.mark.parametrize("agent", [1, 2])
def test_bag_reproduces_audio_and_motion_exactly(converted, clip, agent):
    src, out = converted
    user = 3 - agent
    bag = out / f"{clip}_speaker{agent}"
    for topic, spk in ((USER_AUDIO, user), (AGENT_AUDIO, agent)):
        audio, rate, start = B.read_audio(bag, topic)
        want = _wav(src / f"{clip}_speaker{spk}.wav")
        assert rate == 16000 and start == NS
        assert audio.dtype == np.float32 and np.array_equal(audio, want)
    for topic, spk in ((USER_MOTION, user), (GT_MOTION, agent)):
        motion, period, start = B.read_motion(bag, topic)
        assert period == pytest.approx(0.04) and start == NS
        assert np.array_equal(motion, _motion(src / f"{clip}_speaker{spk}.npz"))


def test_stamps_are_on_one_clock(converted):
    _, out = converted
    with B.BagReader(out / "abc_sub_video_0_speaker1") as r:
        audio = r.records(AGENT_AUDIO)
        motion = r.records(GT_MOTION)
        user = r.records(USER_AUDIO)
    assert [a.stamp_ns for a in audio] == [NS + i * NS // 10 for i in range(len(audio))]
    assert [a.stamp_ns for a in user] == [a.stamp_ns for a in audio]
    assert [a.seq for a in audio] == list(range(len(audio)))
    assert {a.frame_id for a in audio} == {"agent"} and {a.frame_id for a in user} == {"user"}
    assert [m.stamp_ns for m in motion] == [NS, 2 * NS, 3 * NS]
    assert [m.turn_index for m in motion] == [0, 1, 2] and [len(m.motion) for m in motion] == [
        25,
        25,
        13,
    ]


def test_options_agent_storage_start_turn(tmp_path):
    src = make_dualtalk(tmp_path / "dt", clips=("c1",), frames=(40,))
    out = tmp_path / "out"
    assert (
        main(
            [
                "bag",
                "from-dualtalk",
                str(src),
                str(out),
                "--agent",
                "speaker2",
                "--storage",
                "sqlite3",
                "--start",
                "5.5",
                "--turn",
                "0.4",
                "--chunk",
                "0.02",
                "--namespace",
                "robot",
            ]
        )
        == 0
    )
    (bag,) = out.iterdir()
    assert bag.name == "c1_speaker2" and list(bag.glob("*.db3"))
    motion, period, start = B.read_motion(bag, "/robot/ground_truth/head_motion")
    assert start == 5_500_000_000 and np.array_equal(motion, _motion(src / "c1_speaker2.npz"))
    assert (
        B.bag_info(bag)["topics"]["/robot/ground_truth/head_motion"]["count"] == 4
    )  # 40 frames / 10
    audio, _, start = B.read_audio(bag, "/robot/user/audio")
    assert start == 5_500_000_000 and np.array_equal(audio, _wav(src / "c1_speaker1.wav"))
    # existing bags are not overwritten without --overwrite
    assert main(["bag", "from-dualtalk", str(src), str(out), "--agent", "speaker2"]) == 2
    assert (
        main(["bag", "from-dualtalk", str(src), str(out), "--agent", "speaker2", "--overwrite"])
        == 0
    )


def test_other_sample_rates_and_stereo_are_resampled(tmp_path):
    src = make_dualtalk(tmp_path / "dt", clips=("c",), frames=(50,), rate=22050, channels=2)
    (bag,) = B.convert_dualtalk(src, tmp_path / "out", agents=("speaker1",))
    audio, rate, _ = B.read_audio(bag, AGENT_AUDIO)
    n_in = int(50 * 22050 / 25) - 37
    assert rate == 16000 and abs(len(audio) - n_in * 16000 / 22050) <= 1


def test_errors_are_clear(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "timar_ros.cli",
            "bag",
            "from-dualtalk",
            str(empty),
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        r.returncode == 2
        and "no DualTalk conversations found" in r.stderr
        and "Traceback" not in r.stderr
    )
    with pytest.raises(B.BagError, match="DualTalk folder not found"):
        B.convert_dualtalk(tmp_path / "nope", tmp_path / "o")
    src = make_dualtalk(tmp_path / "dt", clips=("c",), frames=(30,))
    np.savez(src / "c_speaker2.npz", expression=np.zeros((30, 50)))
    from timar_ros.data.dualtalk_files import DualTalkFileError

    with pytest.raises(
        DualTalkFileError,
        match=r"c_speaker2.npz: missing arrays \['exp', 'pose'\].*a DualTalk "
        r".npz holds exp \[T, 50\]",
    ):
        B.convert_dualtalk(src, tmp_path / "o")
    with pytest.raises(B.BagError, match="clip\\(s\\) \\['zzz'\\] not found"):
        B.convert_dualtalk(src, tmp_path / "o", clips=["zzz"])
