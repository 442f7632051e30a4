"""Policy faults in a real conversation_policy process, through DDS: a model whose weights load
but overflow at step time (only when the partner's motion is fed) -> that turn is skipped with a
logged, contextual error, the history is reset and the stream recovers; deadline misses are
reported; missing, truncated and mismatched checkpoints stop the process at start-up with exit
code 2 and a message naming the file and the fix."""

import time
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from helpers.ros import spin_until, start_python, stop
from timar_ros.msg import AudioChunk, ConversationState, HeadMotion
from timar_ros.nodes.convert import audio_chunk, head_motion

NS = "/policy_faults"
TURNS = 6
MOTION_TURN = 2  # the partner's tracked motion is published for this turn only


def overflowing_checkpoint(folder):
    """A tiny checkpoint whose user-motion encoder weights are huge but finite: it loads (every
    tensor is finite, shapes match) but produces Inf/NaN whenever user motion is fed."""
    from safetensors.numpy import load_file, save_file

    from timar_ros.runtime.checkpoint import make_random_checkpoint

    d = make_random_checkpoint("tiny", folder)
    w = load_file(str(d / "model.safetensors"))
    for k in [k for k in w if k.startswith("motion_encoder.") and k.endswith("weight")]:
        w[k] = w[k] * np.float32(1e30)
    save_file(w, str(d / "model.safetensors"), metadata={"format": "pt"})
    return d


def test_model_fault_skips_the_turn_resets_history_and_recovers_deadline_reported(
    tmp_path, ros_probe
):
    ckpt = overflowing_checkpoint(tmp_path / "overflow")
    node = ros_probe.node
    got = {"motion": [], "state": [], "diag": []}
    reliable = ros_probe.qos(1000)
    node.create_subscription(HeadMotion, f"{NS}/head_motion", got["motion"].append, reliable)
    node.create_subscription(
        ConversationState, f"{NS}/conversation_state", got["state"].append, reliable
    )
    node.create_subscription(DiagnosticArray, "/diagnostics", got["diag"].append, 10)
    audio = {
        s: node.create_publisher(AudioChunk, f"{NS}/{s}/audio", reliable) for s in ("user", "agent")
    }
    user_motion = node.create_publisher(HeadMotion, f"{NS}/user/motion", 10)
    policy = start_python(
        [
            "-m",
            "timar_ros.nodes.conversation_policy",
            "--ros-args",
            "-r",
            f"__ns:={NS}",
            "-p",
            f"checkpoint:={ckpt}",
            "-p",
            "audio_qos:=reliable",
            "-p",
            "tick_s:=1.0",  # the 1-s mode: a step per turn (ticks: test/robot/test_pipeline_ticks)
            "-p",
            "deadline_ms:=1.0",  # every step is slower than 1 ms: all missed
            "-p",
            "fault_log_period_s:=600.0",
            "-p",
            "diagnostics_period_s:=0.2",
            "-p",
            "max_latency_s:=3.0",
        ]
    )
    try:
        ready = spin_until(
            node,
            lambda: (
                all(p.get_subscription_count() for p in audio.values())
                and user_motion.get_subscription_count()
            ),
            60,
        )
        assert ready, "conversation_policy did not start:\n" + stop(policy)
        t0 = time.time() + 2.0
        frames = np.full((25, 56), 0.05, np.float32)
        user_motion.publish(head_motion(frames, t0 + MOTION_TURN, 0, "partner_tracker"))
        spin_until(node, lambda: False, 0.3)
        rng = np.random.default_rng(0)
        for k in range(TURNS):
            spin_until(node, lambda k=k: len(got["state"]) >= k - 1, 30)
            for i in range(10):
                for s, pub in audio.items():
                    x = rng.uniform(-0.1, 0.1, 1600).astype(np.float32)
                    pub.publish(audio_chunk(x, 16000, t0 + k + i / 10, s, 10 * k + i))
        done = spin_until(node, lambda: len(got["state"]) >= TURNS, 60)
        spin_until(node, lambda: False, 1.0)
    finally:
        log = stop(policy)
    assert done, log
    st = {s.turn_index: s for s in got["state"]}
    assert sorted(st) == list(range(TURNS))
    # The faulty turn has no motion; the others do (the stream recovered).
    assert [m.turn_index for m in got["motion"]] == [k for k in range(TURNS) if k != MOTION_TURN], (
        log
    )
    assert all(np.isfinite(np.frombuffer(m.head_rotation, np.float32)).all() for m in got["motion"])
    assert [st[k].skipped_turns for k in range(TURNS)] == [0, 0, 1, 1, 1, 1]
    # History: grows, is reset by the failure, grows again.
    assert [st[k].history_turns for k in range(TURNS)] == [0, 1, 0, 0, 1, 2]
    assert all(st[k].deadline_missed for k in range(TURNS))
    ours = [
        s for d in got["diag"] for s in d.status if s.name.endswith("conversation_policy: policy")
    ]
    values = {kv.key: kv.value for kv in ours[-1].values}
    assert ours[-1].level == DiagnosticStatus.ERROR and "skipped turns: 1" in ours[-1].message
    assert int(values["skipped_turns"]) == 1 and int(values["deadline_misses"]) == TURNS
    # Logged with context, once per kind.
    assert log.count("policy step failed on turn 2") == 1, log
    for text in [
        "FloatingPointError: the policy returned",
        "user motion given",
        "model overflow-",
        "turn skipped, history reset",
        "policy step took",
        "over deadline_ms = 1 ms",
    ]:
        assert text in log, (text, log)
    assert log.count("over deadline_ms") == 1 and "Traceback" not in log


def _mismatched(tiny, folder):
    """config.json of one size, weights of another: each file is fine on its own."""
    import shutil

    from timar_ros.runtime.checkpoint import make_random_checkpoint

    a = Path(shutil.copytree(tiny, folder))
    b = make_random_checkpoint("tiny", folder.parent / "other", d_model=64, num_heads=2)
    shutil.copy(b / "config.json", a / "config.json")
    return a


def test_missing_truncated_and_mismatched_checkpoints_stop_the_node_at_startup(
    tiny_checkpoint, tmp_path
):
    import shutil

    truncated = Path(shutil.copytree(tiny_checkpoint, tmp_path / "truncated"))
    w = truncated / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    cases = {
        "missing": (
            tmp_path / "nowhere",
            [f"no checkpoint at '{tmp_path / 'nowhere'}'", "timar init-checkpoint"],
        ),
        "truncated": (truncated, [f"{w}: truncated", "re-create it"]),
        "mismatched": (
            _mismatched(tiny_checkpoint, tmp_path / "mismatched"),
            [
                f"{tmp_path / 'mismatched' / 'model.safetensors'}: weights do not match",
                "shape mismatch",
                "the two files must come from the same save",
            ],
        ),
    }
    procs = {
        name: start_python(
            [
                "-m",
                "timar_ros.nodes.conversation_policy",
                "--ros-args",
                "-r",
                f"__ns:=/bad_{name}",
                "-p",
                f"checkpoint:={path}",
            ]
        )
        for name, (path, _) in cases.items()
    }
    for name, (_, texts) in cases.items():
        p = procs[name]
        try:
            rc = p.wait(60)
        finally:
            out = stop(p)
        assert rc == 2, (name, out)
        assert "conversation_policy: cannot start:" in out, out
        for text in texts:
            assert text in out, (name, text, out)
