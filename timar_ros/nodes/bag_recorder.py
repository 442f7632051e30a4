"""bag_recorder: records the pipeline's topics to a rosbag2 (MCAP by default).

The wire bytes of each message are written as received (a raw subscription), never re-serialized:
rclpy's serialize_message pads buffers with garbage that rosbag2 readers reject. Each message is
logged at its receive time on the node's clock (sim time when use_sim_time is set).
"""

from __future__ import annotations

import importlib
import sys

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from timar_ros import topics
from timar_ros.bags import STORAGES, BagWriter
from timar_ros.nodes.params import Param, declare
from timar_ros.nodes.runner import run_node

NAME = "bag_recorder"
PARAMS = {
    "output": Param("bag folder to write (must not exist unless overwrite is set)"),
    "storage": Param("'mcap' (default) or 'sqlite3'", choices=STORAGES),
    "overwrite": Param("replace an existing bag folder"),
    "topics": Param("topics to record, relative to the node's namespace unless absolute"),
}


def message_class(msgtype: str):
    """'pkg/msg/Name' -> the generated rclpy message class."""
    pkg, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


class BagRecorder(Node):
    def __init__(self, **kwargs):
        self._writer = None  # destroy_node may run before the bag is open
        super().__init__(NAME, **kwargs)
        p = declare(self, NAME, PARAMS)
        if not p["output"]:
            raise ValueError("set the 'output' parameter to the bag folder to write")
        self.counts: dict[str, int] = {}
        for rel in p["topics"]:  # before the bag is created: a typo leaves no empty bag
            if rel not in topics.TYPES:
                raise ValueError(
                    f"don't know the message type of topic '{rel}'; known: {sorted(topics.TYPES)}"
                )
        self._writer = BagWriter(
            p["output"], storage=p["storage"], overwrite=bool(p["overwrite"])
        ).open()
        try:
            self._subscribe(p["topics"])
        except BaseException:  # Ctrl-C while starting: the bag is finished all the same
            self.close()
            raise
        self.get_logger().info(
            f"recording {len(self.counts)} topics to {p['output']} ({p['storage']})"
        )

    def _subscribe(self, names) -> None:
        for rel in names:
            msgtype = topics.TYPES[rel]
            name = self.resolve_topic_name(rel)
            # Best effort matches both best-effort (live audio) and reliable publishers.
            reliability = (
                ReliabilityPolicy.BEST_EFFORT
                if rel in topics.SENSOR_TOPICS
                else ReliabilityPolicy.RELIABLE
            )
            qos = QoSProfile(depth=1000, reliability=reliability)
            self.counts[name] = 0
            self.create_subscription(
                message_class(msgtype),
                name,
                lambda data, n=name, t=msgtype: self._write(n, t, data),
                qos,
                raw=True,
            )

    def _write(self, topic: str, msgtype: str, data: bytes) -> None:
        if self._writer is None:
            return
        self._writer.write_raw(topic, msgtype, data, self.get_clock().now().nanoseconds)
        self.counts[topic] += 1

    def close(self) -> None:
        """Finish the bag (writes metadata.yaml); further messages are ignored."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def destroy_node(self):
        self.close()
        return super().destroy_node()


def main(args=None) -> int:
    return run_node(BagRecorder, NAME, args)


if __name__ == "__main__":
    sys.exit(main())
