"""head_retargeter's attention inputs: where the partner is, as the robot's sensors say it.

- ``attention/point`` (geometry_msgs/PointStamped): a person's head, e.g. from a face tracker, in
  any frame of the URDF (a camera link: transformed with the joint positions of its stamp);
- ``attention/sound_direction`` (timar_ros/SoundDirection): a microphone array's direction of
  arrival, for looking at who is speaking (ranked first).

Both best effort (sensor data, REP-2003; a reliable publisher matches too). Each target is aimed
through the URDF (:class:`~timar_ros.robot.targets.TargetAimer`) and offered to the ranked
attention; a target that cannot be used (NaN, a frame the URDF does not have, a stamp far in the
future or already stale) is refused with one line saying why (rate-limited per kind) and counted.
"""

from __future__ import annotations

from geometry_msgs.msg import PointStamped
from rclpy.qos import qos_profile_sensor_data

from timar_ros import topics
from timar_ros.msg import SoundDirection
from timar_ros.nodes.convert import stamp_to_s
from timar_ros.robot.attention import POINT, SOUND, Attention
from timar_ros.robot.faults import Fault
from timar_ros.robot.kinematics import UnknownFrame
from timar_ros.robot.targets import TargetAimer


class AttentionInputs:
    """The subscriptions of the attention inputs on ``node``; :meth:`destroy` removes them."""

    def __init__(self, node, aimer: TargetAimer, attention: Attention, fault_log, now):
        self.node, self.aimer, self.attention = node, aimer, attention
        self._fault_log, self._now = fault_log, now
        self._subs = [
            node.create_subscription(
                PointStamped, topics.ATTENTION_POINT, self._on_point, qos_profile_sensor_data
            ),
            node.create_subscription(
                SoundDirection, topics.SOUND_DIRECTION, self._on_sound, qos_profile_sensor_data
            ),
        ]

    def destroy(self) -> None:
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        self._subs = []

    def _on_point(self, msg: PointStamped) -> None:
        p = msg.point
        self._offer(
            POINT,
            topics.ATTENTION_POINT,
            msg.header,
            lambda t: self.aimer.point(msg.header.frame_id, (p.x, p.y, p.z), t),
        )

    def _on_sound(self, msg: SoundDirection) -> None:
        self._offer(
            SOUND,
            topics.SOUND_DIRECTION,
            msg.header,
            lambda t: self.aimer.sound(msg.header.frame_id, msg.azimuth, msg.elevation, t),
        )

    def _offer(self, source: str, topic: str, header, aim) -> None:
        stamp = stamp_to_s(header.stamp)
        where = f"ignoring the attention target on {topic} (frame '{header.frame_id}')"
        try:
            direction = aim(stamp)
        except UnknownFrame as exc:
            self.attention.counters.unknown_frame_targets += 1
            self._fault_log(
                Fault(
                    "unknown_frame_targets",
                    f"{where}: {exc}; publish it in one of them (or transform it with tf first)",
                )
            )
            return
        refused = self.attention.offer(source, stamp, direction, self._now())
        if refused is not None:
            kind, why = refused
            self._fault_log(Fault(kind, f"{where}: {why}"))
