"""Helpers for tests that run real ROS 2 processes (DDS on loopback)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def ros_env() -> dict[str, str]:
    """The environment for a child ROS process: loopback discovery, this run's domain."""
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = os.environ.get(
        "ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST"
    )
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    # as in an activated venv: its `python3` and `ros2` first (launch runs the nodes' scripts,
    # whose `#!/usr/bin/env python3` must find this interpreter), the venv as the ROS underlay
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if not env.get("AMENT_PREFIX_PATH") and (Path(sys.prefix) / "share" / "ament_index").is_dir():
        env["AMENT_PREFIX_PATH"] = sys.prefix
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"  # a hung process's stacks (stop() sends SIGABRT)
    return env


def start_python(args: list[str], cwd: Path = REPO) -> subprocess.Popen:
    """Start `python <args>` with the test's interpreter in a ROS-ready environment."""
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        env=ros_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> str:
    """SIGINT the process (as Ctrl-C would), wait, and return its output."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # hung: SIGABRT makes faulthandler (PYTHONFAULTHANDLER, ros_env) print every
            # thread's stack into the output before the process dies
            proc.send_signal(6)
            try:
                proc.wait(5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return proc.stdout.read() if proc.stdout and not proc.stdout.closed else ""


def spin_until(executor_or_node, predicate, timeout: float) -> bool:
    """Spin an rclpy node until predicate() is true or timeout seconds pass."""
    import rclpy

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        rclpy.spin_once(executor_or_node, timeout_sec=0.05)
    return predicate()


class RosProbe:
    """A test's own rclpy node on DDS: collect messages into lists, publish, spin until done.

    Use the ``ros_probe`` fixture (test/conftest.py), which closes it after the test."""

    def __init__(self, name: str = "timar_test_probe"):
        import rclpy
        from rclpy.node import Node

        rclpy.init()
        self.node = Node(name)

    @staticmethod
    def qos(depth: int = 1000, reliable: bool = True):
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        return QoSProfile(
            depth=depth,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        )

    def collect(
        self, msg_type, topic: str, depth: int = 1000, reliable: bool = True, qos=None
    ) -> list:
        """A list that receives every ``msg_type`` message on ``topic`` while the probe spins
        (``qos``: a QoSProfile instead of depth/reliable, e.g. transient local)."""
        got: list = []
        self.node.create_subscription(
            msg_type, topic, got.append, qos if qos is not None else self.qos(depth, reliable)
        )
        return got

    def publisher(self, msg_type, topic: str, depth: int = 1000, reliable: bool = True):
        return self.node.create_publisher(msg_type, topic, self.qos(depth, reliable))

    def spin_until(self, predicate, timeout: float) -> bool:
        return spin_until(self.node, predicate, timeout)

    def spin_for(self, seconds: float) -> None:
        spin_until(self.node, lambda: False, seconds)

    def close(self) -> None:
        import rclpy

        self.node.destroy_node()
        rclpy.try_shutdown()


# Fast DDS drops a service's response when the server's response writer has not matched the
# client's response reader yet (rmw_fastrtps: "client will not receive response"; rclpy warns
# "failed to send response (timeout)"). wait_for_service sees only the client's side of the
# match, so on a loaded machine the first request after discovery can go unanswered for good.
# Requests that are safe to repeat are sent again; a transition is checked against the state.
RESEND_S = 3.0


def call(node, send, timeout: float = 30.0, resend_s: float = RESEND_S):
    """The answer to a request that is safe to repeat (a query, setting a value): ``send()``
    sends it and returns its future (e.g. ``lambda: client.call_async(request)``), again every
    ``resend_s`` seconds until one is answered; None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    futures = []
    while time.monotonic() < deadline:
        futures.append(send())
        until = min(deadline, time.monotonic() + resend_s)
        spin_until(node, lambda: any(f.done() for f in futures), until - time.monotonic())
        for f in futures:
            if f.done():
                return f.result()
    return None


# a transition's state once done (lifecycle_msgs Transition ids -> State labels)
_GOAL = {1: "inactive", 2: "unconfigured", 3: "active", 4: "inactive"}
_GOAL.update({5: "finalized", 6: "finalized", 7: "finalized"})


class Lifecycle:
    """A managed node's change_state/get_state, called from a test's node (see ``call``)."""

    def __init__(self, node, name: str):
        from lifecycle_msgs.srv import ChangeState, GetState

        self.node, self.name = node, name
        self.change = node.create_client(ChangeState, f"{name}/change_state")
        self.get = node.create_client(GetState, f"{name}/get_state")

    def wait(self, timeout: float) -> bool:
        """True once both services are there."""
        return self.change.wait_for_service(timeout_sec=timeout) and self.get.wait_for_service(
            timeout_sec=timeout
        )

    def state(self, timeout: float = 30.0) -> str:
        """The node's state label, e.g. 'inactive'."""
        from lifecycle_msgs.srv import GetState

        answer = call(self.node, lambda: self.get.call_async(GetState.Request()), timeout)
        assert answer is not None, f"no answer from {self.name}/get_state"
        return answer.current_state.label

    def transition(self, transition_id: int, timeout: float = 30.0) -> bool:
        """Ask for a transition (lifecycle_msgs Transition id); its success. Unanswered, the
        state says whether it was done (the answer lost) or must be asked for again (the node
        still in the state it started from: not done, or refused, which changes nothing)."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        start = self.state(timeout)
        request = ChangeState.Request(transition=Transition(id=transition_id))
        deadline = time.monotonic() + timeout
        futures = []
        while time.monotonic() < deadline:
            futures.append(self.change.call_async(request))
            while time.monotonic() < deadline:
                spin_until(self.node, lambda: any(f.done() for f in futures), RESEND_S)
                answered = [f for f in futures if f.done()]
                if answered:
                    return answered[0].result().success
                now = self.state(timeout)
                if now == _GOAL.get(transition_id):
                    return True
                if now == start:
                    break  # ask again
        raise AssertionError(f"no answer from {self.name}/change_state ({transition_id})")
