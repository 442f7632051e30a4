"""Run several nodes in one process the way `ros2 launch` runs them in several: each on its own.

:class:`RosSession` is the one way a `timar` command runs nodes in its own process (the demo,
`timar bag play/record/evaluate --live`, the soak, the benchmark's DDS figure): its own rclpy
context with DDS on loopback, nodes built with parameter overrides, each spun on its own thread
by :class:`ComposedNodes`, and at exit the spinning stopped, every node destroyed (a recorder
finishes its bag then) and the context shut down, also on Ctrl-C or an error.

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


class RosSession:
    """An rclpy context of its own and the nodes made in it (a context manager).

        with RosSession() as ros:
            policy = ros.add(ConversationPolicy, namespace="timar", checkpoint="...")
            ...                      # the nodes spin on their own threads meanwhile

    Args:
        domain_id: ROS domain of the context (default: ``ROS_DOMAIN_ID``).
    """

    def __init__(self, domain_id: int | None = None):
        keep_dds_local()
        import rclpy

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.nodes: list = []
        self._spinning = ComposedNodes(context=self.context)

    def add(
        self,
        node_class,
        *,
        namespace: str | None = None,
        spin: bool = True,
        remap: dict[str, str] | None = None,
        **parameters,
    ):
        """Make ``node_class(context=..., namespace=..., parameter_overrides=parameters)`` in this
        session and spin it unless ``spin`` is False; ``remap`` {from: to} renames its topics as
        ``--ros-args -r from:=to`` would. Returns the node."""
        from timar_ros.nodes.params import overrides

        kw = {"namespace": namespace} if namespace is not None else {}
        if remap:
            kw["cli_args"] = ["--ros-args"] + [
                a for k, v in remap.items() for a in ("-r", f"{k}:={v}")
            ]
        node = node_class(context=self.context, parameter_overrides=overrides(parameters), **kw)
        self.nodes.append(node)
        if spin:
            self._spinning.add(node)
        return node

    def spin(self, node) -> None:
        """Start spinning a node made with ``spin=False``."""
        self._spinning.add(node)

    def stop(self) -> None:
        """Stop spinning (no callback runs after this returns); the nodes can still be read."""
        self._spinning.shutdown()

    def close(self) -> None:
        import rclpy

        self.stop()  # no callback may still run when the nodes are destroyed
        for node in self.nodes:
            node.destroy_node()
        self.nodes.clear()
        rclpy.try_shutdown(context=self.context)

    def __enter__(self) -> RosSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
