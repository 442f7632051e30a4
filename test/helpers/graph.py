"""What a running ROS graph shows a user: its nodes, a managed node's state, topic rates."""

from __future__ import annotations

import time

import numpy as np

from helpers.launch import ros2_answer
from timar_ros.nodes.convert import stamp_to_s


def node_names(probe) -> set[str]:
    """Fully qualified names of the nodes the probe sees (e.g. '/timar/head_retargeter')."""
    return {
        (ns.rstrip("/") + "/" + name) for name, ns in probe.node.get_node_names_and_namespaces()
    }


def lifecycle_state(node: str, timeout: float = 30.0) -> str:
    """`ros2 lifecycle get NODE`: e.g. 'active'. Asked again while the ros2 daemon, started by
    the first call, has not discovered the node yet ('Node not found')."""
    deadline = time.monotonic() + timeout
    while True:
        out = ros2_answer("lifecycle", "get", node)
        if "not found" not in out or time.monotonic() > deadline:
            return out.split()[0] if out.strip() else out
        time.sleep(0.5)


def receive_times(probe, topics: dict[str, tuple[type, bool]]) -> dict[str, list]:
    """Subscribe to each topic (name -> (type, reliable)); returns name -> a list that gets
    (receive time, message) while the probe spins."""
    got: dict[str, list] = {}
    for name, (msg_type, reliable) in topics.items():
        got[name] = []
        probe.node.create_subscription(
            msg_type,
            name,
            lambda m, out=got[name]: out.append((time.monotonic(), m)),
            probe.qos(1000, reliable),
        )
    return got


def rates(got: dict[str, list], start: float, end: float) -> dict[str, float]:
    """Messages per second received on each topic between monotonic times start and end."""
    return {
        name: float(np.sum([(start <= t < end) for t, _ in msgs])) / (end - start)
        for name, msgs in got.items()
    }


def wait_for_nodes(launch, probe, nodes: set[str], timeout: float = 90.0) -> float:
    """Until every node in ``nodes`` is on the graph; returns seconds since the launch began."""
    assert launch.wait_until(lambda: nodes <= node_names(probe), timeout, probe.spin_for), (
        f"nodes up: {sorted(node_names(probe))}\n{launch.output()}"
    )
    return time.monotonic() - launch.started


def measure_rates(launch, probe, topics: dict, window_s: float, also: dict | None = None):
    """Subscribe to ``topics`` now (name -> (type, reliable)) and keep the probe spinning, so no
    backlog is counted; once each has a message, messages per second over ``window_s`` for them
    and for the lists in ``also`` (name -> list of (receive time, message)). Returns (rates, the
    received lists)."""
    got = receive_times(probe, topics)
    assert launch.wait_until(lambda: all(got.values()), 60, probe.spin_for), (
        {t: len(m) for t, m in got.items()},
        launch.output(),
    )
    probe.spin_for(0.5)
    t0 = time.monotonic()
    probe.spin_for(window_s)
    got.update(also or {})
    return rates(got, t0, time.monotonic()), got


def policy_tick_s() -> float:
    """conversation_policy's tick_s as the launch files start it (config/timar.yaml)."""
    from timar_ros.resources import node_defaults

    return float(node_defaults("conversation_policy")["tick_s"])


def blocks_per_s(turn_s: float = 1.0, frames: int = 25) -> float:
    """HeadMotion messages per second of audio at the configured tick (1 in the 1-s mode)."""
    b = round(policy_tick_s() * 25)
    return len(range(0, frames, b)) / turn_s


def display_delay_s() -> float:
    """conversation_policy's display delay (audio time -> display stamp) as the launch files
    configure it (config/timar.yaml through PipelineConfig)."""
    from timar_ros.resources import node_defaults
    from timar_ros.robot.conversation import PipelineConfig

    return PipelineConfig.from_params(node_defaults("conversation_policy")).display_delay_s


def check_motion_keeps_up(motion: list, hz: float, window_s: float, slack_s: float = 0.1) -> float:
    """HeadMotion as received (list of (monotonic receive time, message)) at ``hz`` messages per
    second over a ``window_s`` window: at least (window_s - 1.5) seconds of blocks (the policy
    keeps up with the audio), and none received before the audio of its last frame was heard
    (its display stamp less the display delay; ROS time = the system clock here) by more than
    ``slack_s``. A burst above the block rate is allowed: after a stall (a CLI process starting
    on 2 cores) the policy catches up with its queued audio. Returns the smallest time from
    hearing a block's audio to receiving it, seconds."""
    k = blocks_per_s()
    assert (window_s - 1.5) * k / window_s <= hz, (hz, k)
    to_system, delay = time.time() - time.monotonic(), display_delay_s()
    heard = [stamp_to_s(m.header.stamp) + m.num_frames / 25.0 - delay for _, m in motion]
    lags = [t + to_system - h for (t, _), h in zip(motion, heard)]
    assert min(lags) > -slack_s, min(lags)
    return min(lags)


def check_turn_blocks(blocks, turn_s: float = 1.0, frames: int = 25) -> None:
    """HeadMotion messages as conversation_policy publishes them at the configured tick: the
    blocks of a turn tile its ``frames`` frames (first_frame 0, b, 2b, ...; one block per turn
    in the 1-s mode), turn after turn, none lost or repeated, each block starting where the
    previous one ended (contiguous stamps; turns ``turn_s`` apart)."""
    b = round(policy_tick_s() * 25)
    firsts = list(range(0, frames, b))
    got = [(m.turn_index, m.first_frame) for m in blocks]
    turn, i = got[0][0], firsts.index(got[0][1])
    want = []
    for _ in blocks:
        want.append((turn, firsts[i]))
        i = (i + 1) % len(firsts)
        turn += i == 0
    assert got == want, got  # none lost or repeated
    assert all(m.num_frames == min(b, frames - m.first_frame) for m in blocks)
    assert all(len(m.jaw) == 3 * m.num_frames for m in blocks)
    starts = [stamp_to_s(m.header.stamp) for m in blocks]
    period = turn_s / frames
    for m, a, c in zip(blocks, starts, starts[1:]):
        assert abs((c - a) - m.num_frames * period) < 1e-6, starts
