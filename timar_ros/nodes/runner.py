"""The `main()` every node shares: init, spin, shut down cleanly, setup errors as one message."""

from __future__ import annotations

import faulthandler
import signal
import sys
import threading
from collections.abc import Callable

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException

from timar_ros.errors import InputError, one_line

# A node's own clean-up takes well under a second (a bag's metadata, a video's last frames, an
# audio device); a launch's Ctrl-C ends everything within 5 s (the launch tests), before launch
# itself escalates to SIGTERM.
TEARDOWN_S = 3.0


def run_node(
    factory: Callable[[], object],
    name: str,
    args=None,
    setup_errors: tuple[type[BaseException], ...] = (),
    teardown_limit_s: float | None = TEARDOWN_S,
) -> int:
    """Create the node with `factory()` and spin it until Ctrl-C, SIGTERM or SystemExit.

    Returns the process exit status: 0, or 2 when creating the node raised bad input (an
    :class:`~timar_ros.errors.InputError`, a missing file, a ValueError, an rclpy
    ParameterException, or one of ``setup_errors``), printed as ``<name>: cannot start:
    <message>`` without a traceback.

    Ctrl-C: rclpy's own signal handler shuts the context down, which ends the spin; nothing is
    raised into the code that happens to run (a KeyboardInterrupt there can leave rclpy's objects
    half made, and their finalizers print tracebacks). It often comes twice, a terminal's to the
    whole process group and ``ros2 launch``'s own to each process: the second is ignored. Any
    error once the context is shut down is the shutdown itself (e.g. rclpy's race, ros2/rclpy#398:
    the executor building a wait set on a context a signal just shut down, an RCLError).

    Once the spin has ended, the rest of the process's life (the node's own clean-up, the DDS
    teardown, the interpreter's exit) has ``teardown_limit_s`` seconds (None = no limit, for
    callers that go on living, e.g. tests): past that, faulthandler prints every
    thread's stack and the process exits with status 1. Fast DDS 3.2 (the only RMW there is from
    PyPI) can deadlock for ever while an entity is destroyed as other participants leave, which
    they all do on a launch's Ctrl-C (eProsima/Fast-DDS#6502: seen here with gdb in the ros2
    daemon; a sim_head in CI hung the same way, its stacks unseen); rclpy holds the GIL in that
    call, so only faulthandler's native thread can act.
    """
    global _rclpy_started
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        # installed before rclpy.init, so rclpy's handler runs first and then calls this one
        signal.signal(signal.SIGINT, _on_interrupt)
    try:
        rclpy.init(args=args)
    except RuntimeError as exc:  # rclpy's RCLError: e.g. a params file that is not valid YAML
        text = str(exc).split(", at /")[0]  # drop the C source locations
        print(f"{name}: cannot start: {one_line(text)} (check the --ros-args)", file=sys.stderr)
        return 2
    _rclpy_started = True
    node = None
    try:
        node = factory()
        _spin(node)
    except (KeyboardInterrupt, ExternalShutdownException, SystemExit):
        pass
    except Exception as exc:
        if not rclpy.ok():
            pass  # a signal shut the context down under it: that is the shutdown
        elif node is None and isinstance(
            exc, (ParameterException, InputError, FileNotFoundError, ValueError, *setup_errors)
        ):  # bad input, e.g. a value outside its declared range
            print(f"{name}: cannot start: {one_line(exc)}", file=sys.stderr)
            return 2
        else:  # an error while running is a bug: keep its traceback
            raise
    finally:
        if teardown_limit_s is not None:
            # not cancelled: it also covers the interpreter's exit, where rclpy's context
            # deletes the DDS participant
            faulthandler.dump_traceback_later(teardown_limit_s, exit=True)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


_rclpy_started = False
# The longest a spin waits before it looks at the context again. rclpy's Ctrl-C handler shuts the
# context down and wakes the wait; seen on Jazzy, that wake-up is sometimes lost and a node with
# no timer (bag_recorder) then waits for ever, its bag never finished.
SPIN_WAKE_S = 0.5


def _spin(node) -> None:
    """rclpy.spin(node), waking at least every SPIN_WAKE_S to notice a shutdown."""
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        while executor.context.ok():
            executor.spin_once(timeout_sec=SPIN_WAKE_S)
    finally:
        executor.shutdown(timeout_sec=0)


def _on_interrupt(signum, frame) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C changes nothing
    if not _rclpy_started:  # before rclpy.init nothing else would stop the process
        raise KeyboardInterrupt


def autostart(node, why=lambda: "the error above says why") -> None:
    """Configure and activate a lifecycle ``node`` now (its ``autostart`` parameter). Without a
    lifecycle manager nobody would notice a failed configure: raise instead, so the process
    exits with ``why()`` (run_node prints it)."""
    from rclpy.lifecycle import TransitionCallbackReturn

    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        raise ValueError(f"configure failed: {why()}")
    node.trigger_activate()
