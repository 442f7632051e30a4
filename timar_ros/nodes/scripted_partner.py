"""scripted_partner: a simulated conversation partner's head position, as a face tracker would
publish it (geometry_msgs/PointStamped on attention/point, in ``frame_id``), moving along a
scripted path (timar_ros.sim.partner) - for sim.launch.xml and the demo, where no camera sees a
person. head_retargeter turns the head to it."""

from __future__ import annotations

import sys

from geometry_msgs.msg import PointStamped
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data

from timar_ros import topics
from timar_ros.nodes.convert import s_to_stamp
from timar_ros.nodes.params import Param, declare
from timar_ros.nodes.runner import run_node
from timar_ros.sim.partner import FORMAT, PartnerPath

NAME = "scripted_partner"
PARAMS = {
    "path": Param(f"where the partner stands over time: {FORMAT}"),
    "distance_m": Param("the partner's distance from the base frame's origin (m)", 0.2, 20.0),
    "height_m": Param("the height of the partner's head in the base frame (m)", -5.0, 5.0),
    "frame_id": Param("the frame of the published points (a link of the URDF)"),
    "rate_hz": Param("points per second (a face tracker's rate)", 0.5, 200.0),
}


class ScriptedPartner(Node):
    def __init__(self, **kwargs):
        super().__init__(NAME, **kwargs)
        p = declare(self, NAME, PARAMS)
        self.path = PartnerPath(p["path"], p["distance_m"], p["height_m"])
        self._frame = p["frame_id"]
        self._pub = self.create_publisher(
            PointStamped, topics.ATTENTION_POINT, qos_profile_sensor_data
        )
        self._start = self._now()
        self._timer = self.create_timer(1.0 / p["rate_hz"], self._tick)

    def leave(self) -> None:
        """The partner goes away: no more points (the head returns to rest once they are
        stale)."""
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _tick(self) -> None:
        now = self._now()
        x, y, z = self.path.position(now - self._start)
        msg = PointStamped()
        s_to_stamp(now, msg.header.stamp)
        msg.header.frame_id = self._frame
        msg.point.x, msg.point.y, msg.point.z = float(x), float(y), float(z)
        self._pub.publish(msg)


def main(args=None) -> int:
    return run_node(ScriptedPartner, NAME, args)


if __name__ == "__main__":
    sys.exit(main())
