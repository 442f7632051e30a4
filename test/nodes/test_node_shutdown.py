"""How every node process ends: `run_node` turns Ctrl-C (once or repeated, as a terminal's
Ctrl-C to the process group plus `ros2 launch`'s own SIGINT deliver it) and rclpy's shutdown race
(ros2/rclpy#398: the executor building a wait set on a context a signal just shut down) into a
clean exit 0, and keeps a real error an error."""

from __future__ import annotations

import signal
import time

import pytest
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node

from helpers.ros import start_python
from timar_ros.nodes.runner import run_node


@pytest.fixture(autouse=True)
def _sigint_restored():
    """run_node is a process's main and leaves SIGINT ignored for the exit: this process (the
    test run) gets its handler back."""
    before = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, before)


def _node_whose_timer_raises(shut_down_first: bool):
    def factory():
        node = Node("shutdown_race")

        def tick():
            context = node.context
            if shut_down_first:
                context.try_shutdown()
            # what the executor does next when the race hits: a wait set on that context
            _rclpy.WaitSet(0, 0, 0, 0, 0, 0, context.handle)
            raise AssertionError("a wait set on a valid context: nothing to test")

        node.create_timer(0.01, tick)
        return node

    return factory


def test_rclerror_from_a_context_shut_down_is_a_clean_exit():
    assert run_node(_node_whose_timer_raises(True), "shutdown_race", args=[]) == 0


def test_rclerror_on_a_live_context_stays_an_error():
    with pytest.raises((_rclpy.RCLError, AssertionError)):
        run_node(_node_whose_timer_raises(False), "shutdown_race", args=[])


@pytest.mark.parametrize("module", ["head_retargeter", "conversation_policy"])
def test_ctrl_c_twice_ends_a_node_cleanly(module, tiny_checkpoint):
    """SIGINT, then SIGINT again every 2 ms while the node shuts down: exit 0, no traceback."""
    params = ["-p", f"checkpoint:={tiny_checkpoint}"] if module == "conversation_policy" else []
    proc = start_python(
        ["-m", f"timar_ros.nodes.{module}", "--ros-args", "-r", "__ns:=/twice", *params]
    )
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the node says it is up
        lines.append(proc.stdout.readline())
        if "] [twice." in lines[-1] or proc.poll() is not None:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    while proc.poll() is None and time.monotonic() < deadline:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.002)
    out = "".join(lines) + proc.stdout.read()
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
