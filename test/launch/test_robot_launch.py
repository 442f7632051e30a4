"""robot.launch.xml under the real `ros2 launch`, on the project's sound server (a PulseAudio null
sink as the room): the partner's voice played into the room reaches the microphone node, the
robot's voice is asked for with `ros2 topic pub` and played by voice_player; every node up, the
three managed nodes active, audio at its chunk rate, HeadMotion blocks tiling the turns, servo
commands at ~100 Hz on the root controller's topic; switching the retargeter to the trajectory
controller with `ros2 lifecycle set` and `ros2 param set` as a user would; Ctrl-C ends it
cleanly."""

from __future__ import annotations

import numpy as np
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from helpers import graph
from helpers.launch import Launch, lifecycle_set, record_figures, ros2, ros2_answer
from timar_ros.msg import AudioChunk, HeadMotion
from timar_ros.resources import node_defaults, share_dir

NS = "/timar"
NODES = {
    f"{NS}/{n}"
    for n in (
        "microphone",
        "echo_canceller",
        "voice_player",
        "conversation_policy",
        "head_retargeter",
    )
}
MANAGED = ("microphone", "voice_player", "head_retargeter")
WINDOW_S = 6.0
# chunks per second: the microphone's (echo_canceller passes them on) and voice_player's chunk_s
CHUNK_HZ = {
    f"{NS}/user/audio": 1 / node_defaults("microphone")["chunk_s"],
    f"{NS}/agent/audio": 1 / node_defaults("voice_player")["chunk_s"],
}


def test_robot_launch_on_the_sound_server(ros2_cli, sound_server, ros_probe, tmp_path):
    conversation = share_dir() / "data" / "demo_conversation"
    motion = graph.receive_times(ros_probe, {f"{NS}/head_motion": (HeadMotion, True)})
    motion = motion[f"{NS}/head_motion"]
    voice = graph.receive_times(ros_probe, {f"{NS}/agent/audio": (AudioChunk, False)})
    voice = voice[f"{NS}/agent/audio"]
    partner = sound_server.play(conversation / "demo_speaker1.wav", sound_server.sinks[0])
    launch = Launch(
        "robot.launch.xml",
        "microphone_device:=pulse",
        "speaker_device:=pulse",
        log=tmp_path / "launch.log",
    )
    try:
        up_s = graph.wait_for_nodes(launch, ros_probe, NODES)
        for name in MANAGED:
            assert graph.lifecycle_state(f"{NS}/{name}") == "active", name
        # the robot speaks, as a user (or a dialogue manager) asks it to
        ros2(
            "topic",
            "pub",
            "--once",
            # the publisher stays until the voice_player's reader has matched it too and acked
            # the request (the default 0.1 s lost it now and then on a loaded machine)
            "--keep-alive",
            "2",
            f"{NS}/agent/say_wav",
            "std_msgs/msg/String",
            f"{{data: '{conversation / 'demo_speaker2.wav'}'}}",
        )
        hz, got = graph.measure_rates(
            launch,
            ros_probe,
            {
                f"{NS}/user/audio": (AudioChunk, False),
                "/forward_position_controller/commands": (Float64MultiArray, True),
            },
            WINDOW_S,
            {f"{NS}/head_motion": motion, f"{NS}/agent/audio": voice},
        )
        for topic, rate in CHUNK_HZ.items():
            assert 0.85 * rate <= hz[topic] <= 1.15 * rate, hz
        assert 85 <= hz["/forward_position_controller/commands"] <= 115, hz
        lag_s = graph.check_motion_keeps_up(motion, hz[f"{NS}/head_motion"], WINDOW_S)
        graph.check_turn_blocks([m for _, m in motion])
        # what the room heard: the partner on the microphone, the robot's voice in agent/audio
        heard = np.concatenate([np.asarray(m.samples) for _, m in got[f"{NS}/user/audio"]])
        spoken = np.concatenate([np.asarray(m.samples) for _, m in voice])
        assert np.abs(heard).max() > 0.05, "the microphone heard no partner"
        assert np.abs(spoken).max() > 0.05, "the robot did not speak: say_wav not received?"

        # switch the servo commands to the trajectory controller, as a user would
        node = f"{NS}/head_retargeter"
        for transition in ("deactivate", "cleanup"):
            assert "successful" in lifecycle_set(node, transition)
        assert "successful" in ros2_answer("param", "set", node, "command_interface", "trajectory")
        trajectories = graph.receive_times(
            ros_probe, {"/joint_trajectory_controller/joint_trajectory": (JointTrajectory, True)}
        )["/joint_trajectory_controller/joint_trajectory"]
        for transition in ("configure", "activate"):
            assert "successful" in lifecycle_set(node, transition)
        assert launch.wait_until(lambda: len(trajectories) >= 3, 30, ros_probe.spin_for)
        # the motion received and not yet shown at the servo rate: at most the display delay
        # and one turn (a block per tick, or a turn in the 1-s mode)
        ends = [m.points[-1].time_from_start for _, m in trajectories]
        ends = [d.sec + d.nanosec * 1e-9 for d in ends]
        assert max(ends) <= 1.5 and min(ends) > 0, ends
        down_s = launch.ctrl_c_and_check()
    finally:
        partner.kill()
        left = launch.kill()
    assert not left, left
    hz = {t: round(v, 1) for t, v in hz.items()}
    record_figures(
        "robot.launch.xml",
        {"up_s": round(up_s, 1), "hz": hz, "motion_lag_min_s": round(lag_s, 3), "down_s": down_s},
    )
