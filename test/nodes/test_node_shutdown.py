"""How every node process ends: `run_node` turns Ctrl-C (once or repeated, as a terminal's
Ctrl-C to the process group plus `ros2 launch`'s own SIGINT deliver it) and rclpy's shutdown race
(ros2/rclpy#398: the executor building a wait set on a context a signal just shut down) into a
clean exit 0, keeps a real error an error, and ends a teardown that hangs (Fast DDS#6502) within
its limit, saying where it hung."""

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
    node = _node_whose_timer_raises(True)
    assert run_node(node, "shutdown_race", args=[], teardown_limit_s=None) == 0


def test_rclerror_on_a_live_context_stays_an_error():
    with pytest.raises((_rclpy.RCLError, AssertionError)):
        run_node(_node_whose_timer_raises(False), "shutdown_race", args=[], teardown_limit_s=None)


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


# A node whose teardown hangs the way Fast DDS's does: inside a C call that holds the GIL (a
# PyDLL call keeps it), so no Python thread could end the process.
_HANGING_NODE = """
import ctypes, sys
from rclpy.node import Node
from timar_ros.nodes.runner import run_node

class Stuck(Node):
    def __init__(self):
        super().__init__("stuck_teardown")
        self.create_timer(0.05, lambda: None)
        self.get_logger().info("up")

    def destroy_node(self):
        ctypes.PyDLL(None).sleep(30)  # the GIL held, as rcl_publisher_fini holds it
        return super().destroy_node()

sys.exit(run_node(Stuck, "stuck_teardown", teardown_limit_s=1.0))
"""


def test_a_teardown_that_hangs_ends_within_its_limit_with_the_stacks():
    proc = start_python(["-c", _HANGING_NODE])
    deadline = time.monotonic() + 60
    lines = []
    while time.monotonic() < deadline:
        lines.append(proc.stdout.readline())
        if "up" in lines[-1] or proc.poll() is not None:
            break
    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    try:
        proc.wait(15)
    finally:
        proc.kill()
    took = time.monotonic() - t0
    out = "".join(lines) + proc.stdout.read()
    assert proc.returncode == 1, out
    assert took < 10, f"ended {took:.1f} s after Ctrl-C (limit 1 s, the hang 30 s)\n{out}"
    # faulthandler's dump names the limit and the frame that hung
    assert "Timeout (0:00:01)!" in out and "in destroy_node" in out, out
