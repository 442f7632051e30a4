"""Run several nodes in one process the way `ros2 launch` runs them in several: each on its own.

Why not one MultiThreadedExecutor: a node's callbacks share one mutually exclusive callback
group, and rclpy's multi-threaded executor skips a ready subscription whose group is busy and
starts its next scan from the first entity again. Under load the first-created subscription (the
user audio) is then served again and again while the second (the agent audio) waits: one stream
ran seconds ahead of the other and turns were padded that a separate process never pads. A
single-threaded executor runs each callback before it looks at the next ready entity, so every
subscription of a node gets its turn; one executor (and thread) per node keeps a slow policy
step from stalling the player or the recorder, as separate processes would.
"""
from __future__ import annotations

import threading


class ComposedNodes:
    """Spin each node in its own SingleThreadedExecutor on a daemon thread.

    Use as a context manager, or call :meth:`shutdown`; nodes can be added while spinning.
    The nodes are not destroyed here (their owner may still read them after the spin stops).
    """

    def __init__(self, nodes=(), context=None):
        self._context = context
        self._running: list[tuple[object, threading.Thread]] = []
        for node in nodes:
            self.add(node)

    def add(self, node) -> None:
        from rclpy.executors import SingleThreadedExecutor

        executor = SingleThreadedExecutor(context=self._context)
        executor.add_node(node)
        thread = threading.Thread(target=executor.spin, name=f"spin {node.get_name()}", daemon=True)
        thread.start()
        self._running.append((executor, thread))

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop every executor and wait for its thread: no callback runs after this returns."""
        for executor, _ in self._running:
            executor.shutdown(timeout_sec=timeout_s)
        for _, thread in self._running:
            thread.join(timeout=timeout_s)
        self._running.clear()

    def __enter__(self) -> ComposedNodes:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


def keep_dds_local() -> None:
    """Self-contained runs (demo, live bag evaluation, soak) only talk to themselves: keep DDS
    discovery on this machine unless the user chose a range (call before rclpy.init)."""
    import os

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
