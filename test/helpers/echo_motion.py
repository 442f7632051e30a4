"""Child process for the DDS test: receive HeadMotion messages and print what arrived."""

import sys

import numpy as np
import rclpy
from rclpy.node import Node

from timar_ros.msg import HeadMotion
from timar_ros.nodes.convert import motion_frames


def main() -> None:
    expected = int(sys.argv[1])
    rclpy.init()
    node = Node("echo_motion")
    got = []
    node.create_subscription(HeadMotion, "timar_test/head_motion", got.append, 10)
    print("ready", flush=True)
    while len(got) < expected and rclpy.ok():
        rclpy.spin_once(node, timeout_sec=0.1)
    for msg in got:
        frames = motion_frames(msg)
        print(
            f"turn={msg.turn_index} frames={frames.shape[0]} "
            f"sum={float(np.sum(frames, dtype=np.float64)):.6f}",
            flush=True,
        )
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
