"""bag_player: replays a rosbag2 (MCAP or sqlite3) onto live topics, in real time or faster.

Messages are published as their recorded wire bytes, paced by their log times. With
`publish_clock`, the node also publishes /clock with the bag's time, so nodes started with
`use_sim_time:=true` run on the recording's clock (what `ros2 bag play --clock` does): stamps in
the recorded messages then line up with "now" in every node, at any playback rate. /clock is
published at `clock_rate_hz`, and each message goes out right after the first /clock that covers
its log time, so no node receives a message from its future.
"""

from __future__ import annotations

import sys
import time

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.time import Duration
from rosgraph_msgs.msg import Clock

from timar_ros.bags import BagReader
from timar_ros.nodes.bag_recorder import message_class
from timar_ros.nodes.params import Param, declare
from timar_ros.nodes.runner import run_node

NAME = "bag_player"
PARAMS = {
    "bag": Param("rosbag2 folder to play"),
    "rate": Param("playback rate: 1.0 = real time, 4.0 = four times faster", 0.01, 1000.0),
    "start_delay_s": Param("seconds to wait before playing (lets subscribers connect)", 0.0, 60.0),
    "wait_for_subscribers": Param(
        "also wait until every played topic has this many subscribers", 0, 100
    ),
    "topics": Param("absolute topic names to play; ['all'] = every topic in the bag"),
    "publish_clock": Param("publish /clock with the bag's time (for use_sim_time nodes)"),
    "clock_rate_hz": Param("how often /clock is published while playing (Hz)", 1.0, 1000.0),
    "exit_when_done": Param("shut the process down when playback ends (standalone runs)"),
}


class BagPlayer(Node):
    def __init__(self, **kwargs):
        super().__init__(NAME, **kwargs)
        p = declare(self, NAME, PARAMS)
        if not p["bag"]:
            raise ValueError("set the 'bag' parameter to the rosbag2 folder to play")
        self._rate = float(p["rate"])
        self._exit_when_done = bool(p["exit_when_done"])
        self._wait_for = int(p["wait_for_subscribers"])
        self._waiting_since = self._said_waiting = 0.0  # time.monotonic() s
        with BagReader(p["bag"]) as reader:
            available = reader.topics
            wanted = list(available) if list(p["topics"]) == ["all"] else list(p["topics"])
            for topic in wanted:
                reader.check_topic(topic)  # clear error naming the bag and the topic
            # Bags of a few minutes fit in memory; reading ahead keeps publishing on time.
            self._messages = [
                (t_ns, topic, raw) for topic, _, t_ns, raw in reader.messages(wanted, raw=True)
            ]
            self._t0 = reader.start_ns
        reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        self._pubs = {
            t: self.create_publisher(message_class(available[t].msgtype), t, reliable)
            for t in wanted
        }
        self._clock_pub = self.create_publisher(Clock, "/clock", 10) if p["publish_clock"] else None
        self._next = 0
        self._start = None
        self._ready_at = self.get_clock().now() + Duration(seconds=float(p["start_delay_s"]))
        self.done = not self._messages
        # with /clock, its ticks pace the messages; without, a 2-ms poll keeps them on time
        self.create_timer(
            0.002 if self._clock_pub is None else 1.0 / float(p["clock_rate_hz"]), self._tick
        )
        span = (self._messages[-1][0] - self._t0) * 1e-9 if self._messages else 0.0
        self.get_logger().info(
            f"playing {len(self._messages)} messages on {len(wanted)} topics "
            f"({span:.1f} s of recording) at {self._rate:g}x"
        )

    def bag_time_ns(self) -> int:
        """The bag's clock now (ns): recording start + elapsed wall time * rate."""
        if self._start is None:
            return self._t0
        elapsed = (self.get_clock().now() - self._start).nanoseconds
        return self._t0 + int(elapsed * self._rate)

    def _publish_clock(self, ns: int) -> None:
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = ns // 1_000_000_000, ns % 1_000_000_000
        self._clock_pub.publish(msg)

    def _waiting(self) -> bool:
        """True until start_delay_s has passed and every topic has its subscribers (said)."""
        if self.get_clock().now() < self._ready_at:
            return True
        lacking = {
            t: n
            for t, pub in self._pubs.items()
            if (n := pub.get_subscription_count()) < self._wait_for
        }
        if not lacking:
            return False
        # said after a second (discovery takes a few hundred ms), then every 5 s
        now = time.monotonic()
        self._waiting_since = self._waiting_since or now
        if now - self._waiting_since >= 1.0 and now - self._said_waiting >= 5.0:
            self._said_waiting = now
            self.get_logger().info(
                f"waiting for {self._wait_for} subscriber(s) on every played topic "
                f"(wait_for_subscribers): "
                + ", ".join(f"{t} has {n}" for t, n in sorted(lacking.items()))
            )
        return True

    def _tick(self) -> None:
        if self._start is None and not self.done and not self._waiting():
            self._start = self.get_clock().now()
        now_ns = self.bag_time_ns()  # the recording's start until playback starts
        if self._clock_pub is not None:
            self._publish_clock(now_ns)  # /clock reaches subscribers before the messages it covers
        if self.done or self._start is None:
            return
        while self._next < len(self._messages) and self._messages[self._next][0] <= now_ns:
            _, topic, raw = self._messages[self._next]
            self._pubs[topic].publish(raw)
            self._next += 1
        if self._next == len(self._messages):
            self.done = True
            self.get_logger().info(f"playback finished ({self._next} messages)")
            if self._exit_when_done:
                raise SystemExit(0)


def main(args=None) -> int:
    return run_node(BagPlayer, NAME, args)


if __name__ == "__main__":
    sys.exit(main())
