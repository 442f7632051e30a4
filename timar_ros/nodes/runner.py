"""The `main()` every node shares: init, spin, shut down cleanly, setup errors as one message."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

from timar_ros.errors import InputError, one_line


def run_node(
    factory: Callable[[], object],
    name: str,
    args=None,
    setup_errors: tuple[type[BaseException], ...] = (),
) -> int:
    """Create the node with `factory()` and spin it until Ctrl-C, SIGTERM or SystemExit.

    Returns the process exit status: 0, or 2 when creating the node raised bad input (an
    :class:`~timar_ros.errors.InputError`, a missing file, a ValueError, an rclpy
    ParameterException, or one of ``setup_errors``), printed as ``<name>: cannot start:
    <message>`` without a traceback.

    Ctrl-C often comes twice: a terminal sends it to the whole process group and ``ros2 launch``
    (run without a terminal) sends its own to each process; the second must not interrupt the
    shutdown the first began, nor the exit that follows: SIGINT stays ignored once run_node has
    begun to shut down (it is a process's main; a caller in a test restores its handler). And
    rclpy's known race (ros2/rclpy#398): a signal that shuts the context down while the executor
    builds its wait set raises RCLError; that is a shutdown too.
    """
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        # installed before rclpy.init, so rclpy's own handler (which wakes the executor) runs
        # first and then calls this one
        signal.signal(signal.SIGINT, _interrupt_once)
    try:
        rclpy.init(args=args)
    except RuntimeError as exc:  # rclpy's RCLError: e.g. a params file that is not valid YAML
        text = str(exc).split(", at /")[0]  # drop the C source locations
        print(f"{name}: cannot start: {one_line(text)} (check the --ros-args)", file=sys.stderr)
        return 2
    node = None
    try:
        node = factory()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException, SystemExit):
        pass
    except _rclpy.RCLError:
        if rclpy.ok():  # the context is fine: a real error
            raise
    except (
        ParameterException,
        InputError,
        FileNotFoundError,
        ValueError,
        *setup_errors,
    ) as exc:  # e.g. a value outside its declared range
        if node is not None:  # an error while running is a bug: keep its traceback
            raise
        print(f"{name}: cannot start: {one_line(exc)}", file=sys.stderr)
        return 2
    finally:
        try:
            _ignore_interrupts()
        except KeyboardInterrupt:
            # Python ran the first Ctrl-C's handler only now (signal.signal runs pending
            # handlers); that handler has ignored SIGINT from here on
            pass
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _interrupt_once(signum, frame) -> None:
    _ignore_interrupts()
    raise KeyboardInterrupt


def _ignore_interrupts() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def autostart(node, why=lambda: "the error above says why") -> None:
    """Configure and activate a lifecycle ``node`` now (its ``autostart`` parameter). Without a
    lifecycle manager nobody would notice a failed configure: raise instead, so the process
    exits with ``why()`` (run_node prints it)."""
    from rclpy.lifecycle import TransitionCallbackReturn

    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        raise ValueError(f"configure failed: {why()}")
    node.trigger_activate()
