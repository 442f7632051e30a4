"""The robot pipeline through real DDS, one process per node as `ros2 launch` would start them:
audio_file_player -> conversation_policy -> head_retargeter, observed from the test process; in
the 1-s mode (a block per turn) and streaming inside the turn (a block per tick)."""

import numpy as np
import pytest
import soundfile as sf
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray

from helpers.ros import start_python, stop
from timar_ros.msg import AudioChunk, ConversationState, HeadMotion
from timar_ros.nodes.convert import motion_frames, stamp_to_s
from timar_ros.resources import node_defaults
from timar_ros.robot.retarget import MotionPlayer
from timar_ros.robot.retarget_config import load_retarget_config

NS = "/pipe"
SECONDS = 4
MARGIN = node_defaults("conversation_policy")["latency_margin_s"]


def _conversation_wav(path):
    # The first seconds of the bundled conversation: the partner speaks from 0.5 s to 3.1 s while
    # the robot is silent.
    from timar_ros.data.audio import load_wav
    from timar_ros.resources import share_dir

    conv = share_dir() / "data" / "demo_conversation"
    user = load_wav(conv / "demo_speaker1.wav")[: SECONDS * 16000]
    agent = load_wav(conv / "demo_speaker2.wav")[: SECONDS * 16000]
    sf.write(path, np.stack([user, agent], 1), 16000, subtype="FLOAT")


@pytest.mark.parametrize("tick_s", [1.0, 0.12])
def test_audio_in_motion_and_safe_joint_commands_out(tiny_checkpoint, ros_probe, tmp_path, tick_s):
    # Random weights: this checks the plumbing (turns, stamps, limits, watchdog), not the motion.
    _conversation_wav(tmp_path / "conv.wav")
    display_delay = tick_s + MARGIN
    latched = QoSProfile(
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )
    got = {
        "delay": ros_probe.collect(Float64, f"{NS}/display_delay", qos=latched),
        "audio": ros_probe.collect(AudioChunk, f"{NS}/user/audio"),
        "agent": ros_probe.collect(AudioChunk, f"{NS}/agent/audio"),
        "motion": ros_probe.collect(HeadMotion, f"{NS}/head_motion"),
        "state": ros_probe.collect(ConversationState, f"{NS}/conversation_state"),
        "joints": ros_probe.collect(JointState, f"{NS}/joint_states"),
        "forward": ros_probe.collect(
            Float64MultiArray, f"{NS}/forward_position_controller/commands"
        ),
    }
    ros = ["--ros-args", "-r", f"__ns:={NS}"]
    policy = start_python(
        [
            "-m",
            "timar_ros.nodes.conversation_policy",
            *ros,
            "-p",
            f"checkpoint:={tiny_checkpoint}",
            "-p",
            f"tick_s:={tick_s}",
            "-p",
            "audio_qos:=reliable",
        ]
    )
    retargeter = start_python(["-m", "timar_ros.nodes.head_retargeter", *ros])
    procs = [policy, retargeter]
    try:
        assert ros_probe.spin_until(lambda: len(got["joints"]) > 5, 60), (
            "head_retargeter did not start"
        )
        procs.append(
            start_python(
                [
                    "-m",
                    "timar_ros.nodes.audio_file_player",
                    *ros,
                    "-p",
                    f"stereo_wav:={tmp_path / 'conv.wav'}",
                    "-p",
                    "start_delay_s:=0.5",
                    "-p",
                    "wait_for_subscribers:=2",
                ]
            )
        )  # the policy and this test
        blocks_per_turn = -(-25 // round(tick_s * 25))
        if not ros_probe.spin_until(lambda: len(got["motion"]) >= SECONDS * blocks_per_turn, 60):
            logs = "\n".join(stop(p) for p in procs)
            pytest.fail(
                f"got {len(got['motion'])} HeadMotion messages, {len(got['state'])} states:\n{logs}"
            )
        # Let the last turn play out and the watchdog bring the head back to neutral.
        cfg = load_retarget_config()
        settle = display_delay + MotionPlayer(cfg).neutral_deadline_s + 1.0
        ros_probe.spin_for(settle)
    finally:
        outputs = [stop(p) for p in procs]
    log = "\n".join(outputs)

    # The display delay the policy shows its frames with, latched for voice_player.
    assert [d.data for d in got["delay"]] == [pytest.approx(display_delay)], log
    # A block per tick (a whole turn in the 1-s mode) and one state per 1-s turn, in order; the
    # blocks of a turn tile its 25 frames.
    b = round(tick_s * 25)
    want = [(t, f, min(b, 25 - f)) for t in range(SECONDS) for f in range(0, 25, b)]
    motion = got["motion"][: len(want)]
    assert [(m.turn_index, m.first_frame, m.num_frames) for m in motion] == want, log
    assert [s.turn_index for s in got["state"]][:SECONDS] == list(range(SECONDS))
    assert all(abs(m.frame_period - 0.04) < 1e-9 for m in motion)
    assert all(np.isfinite(motion_frames(m)).all() for m in motion)
    # Stamps line up with the audio: frame i of turn k is shown display_delay after its audio;
    # the blocks are contiguous.
    audio_start = stamp_to_s(got["audio"][0].header.stamp)
    for m in motion:
        assert stamp_to_s(m.header.stamp) == pytest.approx(
            audio_start + m.turn_index + display_delay + m.first_frame * 0.04, abs=1e-6
        )
    for k in range(SECONDS):
        assert stamp_to_s(got["state"][k].header.stamp) == pytest.approx(audio_start + k, abs=1e-6)
    assert sum(s.user_padded_s + s.agent_padded_s for s in got["state"]) == 0.0
    # Voice activity: the partner speaks in turns 1 and 2, the robot is silent.
    assert [s.user_speaking for s in got["state"]][1:3] == [True, True]
    assert not any(s.agent_speaking for s in got["state"][:3])

    # Joint commands: the configured joints, always within limits and speed limits.
    lim = cfg.limits()
    pos = np.array([j.position for j in got["joints"]])
    t = np.array([stamp_to_s(j.header.stamp) for j in got["joints"]])
    assert list(got["joints"][0].name) == cfg.joint_names
    assert (pos >= lim["min"] - 1e-9).all() and (pos <= lim["max"] + 1e-9).all()
    speed = np.abs(np.diff(pos, axis=0)) / np.diff(t)[:, None]
    assert (speed <= lim["max_velocity"] * (1 + 1e-6) + 1e-6).all()
    assert np.ptp(pos, axis=0).max() > 0.01, "the head never moved"
    fwd = np.array([f.data for f in got["forward"]])
    assert fwd.shape[1] == len(cfg.joint_names)
    # Watchdog: after the audio (and so the motion) stopped, the head is back at neutral.
    np.testing.assert_allclose(pos[-1], lim["neutral"], atol=1e-3)
    np.testing.assert_allclose(fwd[-1], lim["neutral"], atol=1e-3)
