"""bag_replay.launch.xml under the real `ros2 launch`, on a bag made from the demo conversation
the way a user makes one (`timar bag from-dualtalk`): every node up, the retargeter active, /clock
at the player's clock_rate_hz, HeadMotion blocks tiling the turns on the bag's clock; after
playback, Ctrl-C ends it cleanly and the output bag holds the produced motion next to the
replayed ground truth."""

from __future__ import annotations

import numpy as np
from rosgraph_msgs.msg import Clock

from helpers import graph
from helpers.demo_conversation import short_demo_conversation
from helpers.launch import Launch, record_figures
from timar_ros.bags import bag_info
from timar_ros.bags.from_dualtalk import convert_dualtalk
from timar_ros.msg import HeadMotion

NS = "/timar"
NODES = {
    f"{NS}/{n}" for n in ("bag_player", "bag_recorder", "conversation_policy", "head_retargeter")
}
SECONDS = 8.0
CLOCK_HZ = 100.0  # bag_player's clock_rate_hz (config/timar.yaml)


def test_bag_replay_launch_records_the_pipeline(ros2_cli, ros_probe, tmp_path):
    conversation = short_demo_conversation(tmp_path / "conversation", SECONDS)
    (bag,) = convert_dualtalk(conversation, tmp_path / "bags", agents=("speaker2",))
    motion = graph.receive_times(ros_probe, {f"{NS}/head_motion": (HeadMotion, True)})
    motion = motion[f"{NS}/head_motion"]
    out = tmp_path / "result"
    launch = Launch(
        "bag_replay.launch.xml", f"bag:={bag}", f"output:={out}", log=tmp_path / "launch.log"
    )
    try:
        up_s = graph.wait_for_nodes(launch, ros_probe, NODES)
        assert graph.lifecycle_state(f"{NS}/head_retargeter") == "active"
        hz, got = graph.measure_rates(launch, ros_probe, {"/clock": (Clock, False)}, 3.0)
        # the typical spacing (a busy machine delays some ticks, none comes early)
        period = np.median(np.diff([t for t, _ in got["/clock"]]))
        assert 0.85 <= 1 / period / CLOCK_HZ <= 1.15, (1 / period, hz)
        assert launch.wait_until(
            lambda: "playback finished" in launch.output(), 60, ros_probe.spin_for
        ), launch.output()
        ros_probe.spin_for(2.0)  # the last turn's motion
        down_s = launch.ctrl_c_and_check()
    finally:
        left = launch.kill()
    assert not left, left
    blocks = [m for _, m in motion]
    graph.check_turn_blocks(blocks)
    # The probe is an outside subscriber: its discovery of the policy's publisher took 2.1 s once
    # on a loaded machine (Jazzy, CI), so it may miss up to 3 s of blocks; the recorder (below)
    # holds whole turns.
    assert len(blocks) >= (SECONDS - 3) * graph.blocks_per_s(), len(blocks)
    recorded = bag_info(out)["topics"]
    # the recorder holds every block (the probe may have joined after the first ones): whole turns
    per_turn = round(graph.blocks_per_s())
    assert recorded[f"{NS}/head_motion"]["count"] >= len(blocks), recorded
    assert recorded[f"{NS}/head_motion"]["count"] % per_turn == 0, recorded
    assert recorded[f"{NS}/ground_truth/head_motion"]["count"] >= SECONDS - 1, recorded
    assert recorded[f"{NS}/user/audio"]["count"] > 0, recorded
    record_figures(
        "bag_replay.launch.xml",
        {
            "up_s": round(up_s, 1),
            "hz": {"/clock": round(hz["/clock"], 1), "/clock median": round(1 / period, 1)},
            "turns": len(blocks),
            "down_s": down_s,
        },
    )
