"""What a running ROS graph shows a user: its nodes, a managed node's state, topic rates."""

from __future__ import annotations

import time

import numpy as np

from helpers.launch import ros2


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
        out = ros2("lifecycle", "get", node, check=False)
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
