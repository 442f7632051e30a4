"""ComposedNodes (the demo's and live bag evaluation's way to run nodes in one process) serves a
node's subscriptions in turn when messages queue up, as a node in its own process does.

rclpy's MultiThreadedExecutor, used before, drained the first subscription's whole backlog before
the second one's (measured: 50 "A" callbacks, then the 50 "B"): for conversation_policy that put
the user audio seconds ahead of the agent audio and padded turns that a real robot never pads.
"""

import time

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Int32

from timar_ros.nodes.compose import ComposedNodes


def test_a_backlog_on_two_topics_is_served_alternately():
    rclpy.init()
    qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
    sub, pub = Node("compose_sub"), Node("compose_pub")
    order: list[str] = []

    def callback(tag):
        def on_message(_msg):
            order.append(tag)
            time.sleep(0.005)  # a callback that takes a while, as a policy step does

        return on_message

    sub.create_subscription(Int32, "compose_a", callback("A"), qos)
    sub.create_subscription(Int32, "compose_b", callback("B"), qos)
    pa, pb = (
        pub.create_publisher(Int32, "compose_a", qos),
        pub.create_publisher(Int32, "compose_b", qos),
    )
    spinning = None
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
            pa.get_subscription_count() and pb.get_subscription_count()
        ):
            time.sleep(0.01)
        time.sleep(0.3)  # the subscriber's side of discovery
        for i in range(40):  # the backlog waits in the readers before anything spins
            pa.publish(Int32(data=i))
            pb.publish(Int32(data=i))
        time.sleep(0.2)
        spinning = ComposedNodes([sub])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(order) < 80:
            time.sleep(0.02)
    finally:
        if spinning is not None:
            spinning.shutdown()
        sub.destroy_node()
        pub.destroy_node()
        rclpy.try_shutdown()
    s = "".join(order)
    assert len(s) == 80, s
    lead = max(abs(s[:k].count("A") - s[:k].count("B")) for k in range(len(s) + 1))
    assert lead <= 2, s
