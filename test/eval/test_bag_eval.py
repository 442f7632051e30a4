"""`timar bag evaluate`: a synthetic DualTalk conversation -> `timar bag from-dualtalk` -> evaluate.

Offline mode gives exactly the metrics `timar metrics` computes on the same predictions and the
motion the policy gives stepped by hand on the same turns; --live (the nodes over DDS on the
bag's /clock) gives the same turns and bit-identical motion, and counts late/padded turns from
the recorded ConversationState. Also: the play/record CLI, missing ground truth and topics."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from helpers.ros import start_python, stop
from timar_ros import bags as B
from timar_ros.cli import main
from timar_ros.data.audio import load_wav
from timar_ros.data.dualtalk_files import load_motion
from timar_ros.eval.bag_eval import evaluate_bag
from timar_ros.eval.metrics import evaluate_dirs

CLIP, AGENT = "syn_00000", "speaker2"
NAME = f"{CLIP}_{AGENT}"
# Live replay on a busy 2-core machine: a turn is padded only when its audio is 3 s (of bag time)
# late, so scheduling hiccups never change the turns; deadline_ms 1 makes every step "late". The
# 1-s mode, so that the policy stepped by hand on the turns is the reference (streaming inside the
# turn: test_streaming_inside_the_turn_live_equals_offline).
PARAMS = ["-p", "max_latency_s:=3.0", "-p", "deadline_ms:=1.0", "-p", "tick_s:=1.0"]


@pytest.fixture(scope="module")
def conv(tmp_path_factory, tiny_checkpoint):
    from timar_ros.data.synthetic import SyntheticConfig, generate_conversation, write_conversation
    from timar_ros.resources import config_path

    root = tmp_path_factory.mktemp("bag_eval")
    cfg = SyntheticConfig.from_yaml(config_path("synthetic.yaml"))
    cfg.tts.mode = "off"  # procedural voices: deterministic, no external TTS
    write_conversation(generate_conversation(cfg, 0, duration_s=4.5), root / "dt", CLIP)
    ckpt = tiny_checkpoint
    assert (
        main(["bag", "from-dualtalk", str(root / "dt"), str(root / "bags"), "--agent", AGENT]) == 0
    )
    return root, root / "dt", root / "bags" / NAME, ckpt


@pytest.fixture(scope="module")
def offline(conv):
    root, _, bag, ckpt = conv
    out = root / "offline"
    assert (
        main(["bag", "evaluate", str(bag), "--checkpoint", str(ckpt), "--out", str(out), *PARAMS])
        == 0
    )
    return out, json.loads((out / "report.json").read_text())


def test_offline_metrics_equal_timar_metrics(conv, offline, tmp_path):
    _, dt, _, _ = conv
    out, rep = offline
    assert rep["name"] == NAME and rep["mode"] == "offline"
    # 4.48 s of audio = 4 whole 1-s turns + 0.48 s: the last turn is padded, none skipped
    assert (rep["turns"], rep["produced_turns"], rep["skipped_turns"], rep["padded_turns"]) == (
        5,
        5,
        0,
        1,
    )
    assert rep["late_turns"] == rep["turns"]  # deadline_ms = 1
    pred = np.load(out / "predictions" / f"{NAME}.npy")
    assert pred.shape == (125, 56) and rep["ground_truth_frames"] == 112
    ref = evaluate_dirs(out / "predictions", dt)
    assert ref["files"] == 1 and ref["per_file"][NAME] == rep["metrics"]
    assert ref["pub"] == rep["pub"]
    assert (
        main(["metrics", str(out / "predictions"), str(dt), "--json", str(tmp_path / "m.json")])
        == 0
    )
    assert json.loads((tmp_path / "m.json").read_text())["pub"] == rep["pub"]
    md = (out / "report.md").read_text()
    assert "fid_exp" in md and "rpcc_pose" in md and "padded 1" in md
    assert (out / "motion.png").stat().st_size > 10_000


def test_offline_motion_is_the_policy_stepped_on_the_turns(conv, offline):
    """Independent of the pipeline: step the policy on the WAV/npz cut into 1-s turns."""
    from timar_ros.runtime import StreamingPolicy

    _, dt, _, ckpt = conv
    out, _ = offline
    user, agent = (load_wav(dt / f"{CLIP}_speaker{k}.wav") for k in (1, 2))
    um = load_motion(dt / f"{CLIP}_speaker1.npz")
    pol = StreamingPolicy.from_checkpoint(ckpt, backend="torch", seed=0, num_sampling_steps=5)
    spt, F = pol.samples_per_turn, pol.frames_per_turn
    expected = []
    for k in range(5):

        def cut(x, k=k):
            return np.pad(x[k * spt : (k + 1) * spt], (0, max(0, (k + 1) * spt - len(x))))

        m = um[k * F : (k + 1) * F]
        expected.append(
            pol.step(cut(user), cut(agent), m if len(m) == F else None)
        )  # last: 12/25 tracked
    np.testing.assert_array_equal(
        np.load(out / "predictions" / f"{NAME}.npy"), np.concatenate(expected)
    )


def test_live_agrees_with_offline_and_counts_late_and_padded_turns(conv, offline):
    root, _, bag, ckpt = conv
    off_out, off = offline
    out = root / "live"
    t0 = time.monotonic()
    assert (
        main(
            [
                "bag",
                "evaluate",
                str(bag),
                "--live",
                "--rate",
                "2",
                "--checkpoint",
                str(ckpt),
                "--out",
                str(out),
                *PARAMS,
            ]
        )
        == 0
    )
    live = json.loads((out / "report.json").read_text())
    print(f"live evaluation of {live['frames'] / 25:.2f} s at 2x: {time.monotonic() - t0:.1f} s")
    assert live["mode"] == "live" and live["turns"] == off["turns"] == 5
    assert [t["start_s"] for t in live["per_turn"]] == [t["start_s"] for t in off["per_turn"]]
    np.testing.assert_array_equal(
        np.load(out / "predictions" / f"{NAME}.npy"),
        np.load(off_out / "predictions" / f"{NAME}.npy"),
    )
    assert live["metrics"] == off["metrics"]
    # The counts come from what the policy node published (the recorded ConversationState).
    states = B.read_records(out / "recorded", "/timar/conversation_state")
    assert len(states) == 5
    assert live["late_turns"] == sum(s["deadline_missed"] for s in states) == 5
    assert (
        live["padded_turns"]
        == sum(s["user_padded_s"] + s["agent_padded_s"] > 0 for s in states)
        == 1
    )
    assert live["skipped_turns"] == 0 and states[-1]["skipped_turns"] == 0
    assert len(B.read_records(out / "recorded", "/timar/head_motion")) == 5


def test_streaming_inside_the_turn_live_equals_offline(conv):
    """tick_s 0.12: the node publishes a block per tick, and replayed over DDS it makes exactly
    the frames the offline evaluation makes (a tick sees both streams up to its frame, whichever
    chunk came first; test/robot/test_pipeline_ticks.py: those are StreamingPolicy.run_ticks's)."""
    root, _, bag, ckpt = conv
    params = [*PARAMS[:-2], "-p", "tick_s:=0.12"]
    outs = {}
    for mode in ("offline", "live"):
        out = root / f"ticks_{mode}"
        extra = ["--live", "--rate", "2"] if mode == "live" else []
        cmd = ["bag", "evaluate", str(bag), *extra, "--checkpoint", str(ckpt), "--out", str(out)]
        assert main([*cmd, *params]) == 0
        outs[mode] = np.load(out / "predictions" / f"{NAME}.npy")
    np.testing.assert_array_equal(outs["live"], outs["offline"])
    blocks = B.read_records(root / "ticks_live" / "recorded", "/timar/head_motion")
    assert [(b.turn_index, b.first_frame) for b in blocks] == [
        (t, f) for t in range(5) for f in range(0, 25, 3)
    ]


def test_no_ground_truth_still_writes_predictions_and_missing_audio_is_an_error(conv, tmp_path):
    _, _, bag, ckpt = conv
    only_audio = tmp_path / "audio_only"
    with B.BagReader(bag) as r, B.BagWriter(only_audio) as w:
        for topic, _, t_ns, msg in r.messages(["/timar/user/audio", "/timar/agent/audio"]):
            w.write(topic, msg, t_ns)
    rep = evaluate_bag(only_audio, tmp_path / "out", checkpoint=str(ckpt), plot=False)
    assert rep["metrics"] is None and "no ground truth" in rep["metrics_note"]
    assert "/timar/ground_truth/head_motion" in rep["metrics_note"]
    assert np.load(tmp_path / "out" / "predictions" / "audio_only.npy").shape == (125, 56)
    no_user = tmp_path / "no_user"
    with B.BagReader(bag) as r, B.BagWriter(no_user) as w:
        for topic, _, t_ns, msg in r.messages(["/timar/agent/audio"]):
            w.write(topic, msg, t_ns)
    with pytest.raises(
        B.BagError, match=r"no <namespace>/user/audio topic in the bag .*/timar/agent/audio"
    ):
        evaluate_bag(no_user, tmp_path / "o2", checkpoint=str(ckpt))
    assert main(["bag", "evaluate", str(bag), "--checkpoint", str(tmp_path / "nope")]) == 2


def test_play_and_record_cli(conv, tmp_path):
    _, _, bag, _ = conv
    out = tmp_path / "rec"
    rec = start_python(
        [
            "-m",
            "timar_ros.cli",
            "bag",
            "record",
            str(out),
            "--topics",
            "user/audio",
            "ground_truth/head_motion",
        ]
    )
    try:
        play = start_python(
            [
                "-m",
                "timar_ros.cli",
                "bag",
                "play",
                str(bag),
                "--rate",
                "4",
                "--clock",
                "--topics",
                "/timar/user/audio",
                "/timar/ground_truth/head_motion",
                "--wait-for-subscribers",
                "1",
                "--delay",
                "0.3",
            ]
        )
        text = play.communicate(timeout=60)[0]
        assert play.returncode == 0, text
        time.sleep(0.5)
    finally:
        text = stop(rec)
    assert f"wrote {out}" in text, text
    audio, rate, _ = B.read_audio(out, "/timar/user/audio")
    np.testing.assert_array_equal(audio, B.read_audio(bag, "/timar/user/audio")[0])
    np.testing.assert_array_equal(
        B.read_motion(out, "/timar/ground_truth/head_motion")[0],
        B.read_motion(bag, "/timar/ground_truth/head_motion")[0],
    )
