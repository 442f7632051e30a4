"""head_retargeter: FLAME head motion -> safe servo commands at the servo rate.

A managed (lifecycle) node, since it drives hardware. It subscribes HeadMotion (head_motion),
maps each frame to joint targets with a per-robot retarget YAML, and plays the frames out on
their stamps at the config's servo rate through timar_ros.robot.retarget.MotionPlayer, which
keeps every command within the joint position, velocity and acceleration limits and eases to
the neutral pose when motion stops arriving (watchdog). Outputs:

- sensor_msgs/JointState (joint_states): the commanded positions and velocities, every tick;
- command_interface 'forward': std_msgs/Float64MultiArray for a ros2_control
  ForwardCommandController (forward_position_controller/commands), every tick;
- command_interface 'trajectory': trajectory_msgs/JointTrajectory for a JointTrajectoryController
  (joint_trajectory_controller/joint_trajectory), one per received block (and one to neutral when
  the watchdog trips), sampled at the servo rate from a copy of the same safe player, so the
  points obey the same limits;
- 'none': JointState only;
- diagnostic_msgs/DiagnosticArray (/diagnostics): the player's counters (blocks, rejected frames
  and blocks, late frames, deadline misses, watchdog trips, clock resets).

Faults in the incoming motion (a malformed message: ignored; NaN/huge frames: held at the last
good frame; a late block: eased into, never jumped to; a far-future block: rejected; the clock
going back: buffer cleared) are logged once per kind per ``fault_log_period_s`` with what was
done, and counted in /diagnostics. A retarget YAML that cannot be used makes the configure
transition fail with the file, field and problem.

Parameters: ``retarget_config`` and ``command_interface`` are read on configure, so they can be set
while the node is unconfigured (a set while it is configured is refused, with the reason); the
others are read once at start-up and are read-only.
"""

from __future__ import annotations

import sys

import numpy as np
from builtin_interfaces.msg import Duration as DurationMsg
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from timar_ros import topics
from timar_ros.motion import EXP, JAW, ROT
from timar_ros.msg import HeadMotion
from timar_ros.nodes.attention_inputs import AttentionInputs
from timar_ros.nodes.convert import diagnostic_array, motion_frames, s_to_stamp, stamp_to_s
from timar_ros.nodes.fault_log import PERIOD_DESCRIPTION, PERIOD_PARAM, NodeFaultLog
from timar_ros.nodes.params import CONFIGURE, Param, declare
from timar_ros.nodes.runner import autostart, run_node
from timar_ros.resources import share_dir
from timar_ros.robot.attention import AttentionConfig
from timar_ros.robot.faults import Fault
from timar_ros.robot.retarget import MotionPlayer
from timar_ros.robot.retarget_config import RetargetConfigError, load_retarget_config
from timar_ros.robot.status import player_faults, servo_status
from timar_ros.robot.targets import TargetAimer, build_gaze

NAME = "head_retargeter"
INTERFACES = ("forward", "trajectory", "none")
PARAMS = {
    "retarget_config": Param(
        "per-robot retarget YAML; '' = config/retarget_default.yaml", read_at=CONFIGURE
    ),
    "command_interface": Param(
        "'forward' (Float64MultiArray every tick), 'trajectory' "
        "(JointTrajectory per block) or 'none' (JointState only)",
        read_at=CONFIGURE,
        choices=INTERFACES,
    ),
    "autostart": Param(
        "configure and activate at start-up instead of waiting for lifecycle commands"
    ),
    "joint_state_frame_id": Param("frame_id of the published JointState"),
    "attention": Param(
        "turn the head to the partner: subscribe attention/point (PointStamped) and "
        "attention/sound_direction (SoundDirection); TIMAR's rotation plays on top",
        read_at=CONFIGURE,
    ),
    "urdf": Param(
        "the robot's URDF for the attention targets; '' = the bundled head", read_at=CONFIGURE
    ),
    "base_frame": Param("the URDF link the head's gaze is measured in", read_at=CONFIGURE),
    "gaze_frame": Param(
        "the URDF link whose +x is where the head looks (e.g. a camera link)", read_at=CONFIGURE
    ),
    "target_stale_s": Param(
        "a target not seen for this long no longer holds attention (s); with none left the head "
        "returns to rest slowly",
        0.05,
        60.0,
        read_at=CONFIGURE,
    ),
    "min_dwell_s": Param(
        "attention stays on a target at least this long before switching (s)",
        0.0,
        60.0,
        read_at=CONFIGURE,
    ),
    "sound_distance_m": Param(
        "the distance taken for a direction of arrival (m): the parallax to the eyes",
        0.2,
        20.0,
        read_at=CONFIGURE,
    ),
    "measured_joint_states": Param(
        "topic of the measured sensor_msgs/JointState (e.g. /joint_states of a "
        "joint_state_broadcaster) to transform head-mounted targets with; '' = the commanded "
        "positions",
        read_at=CONFIGURE,
    ),
    PERIOD_PARAM: Param(PERIOD_DESCRIPTION, 0.0, 3600.0),
}


def _duration(seconds: float) -> DurationMsg:
    ns = max(int(round(seconds * 1e9)), 0)
    return DurationMsg(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class HeadRetargeter(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__(NAME, **kwargs)
        self._p = declare(self, NAME, PARAMS)
        # Every handle on_configure creates, on_cleanup destroys; None while unconfigured.
        self.player: MotionPlayer | None = None
        self._pubs: dict[str, object] = {}  # lifecycle publishers: joint_states, forward/trajectory
        self._sub = None
        self._attention: AttentionInputs | None = None
        self._measured_sub = None
        self._aimer: TargetAimer | None = None
        self._timer = None
        self._diag_pub = None
        self._diag_timer = None
        self._active = False
        self._watchdog_trips = 0
        self._malformed_blocks = 0
        self._fault_log = NodeFaultLog(self.get_logger(), float(self._p[PERIOD_PARAM]))
        self._counts: dict[str, int] = {}
        self._config_error: str | None = None
        self.add_on_set_parameters_callback(self._on_set_parameters)
        if self._p["autostart"]:
            autostart(self, lambda: self._config_error)

    # -- lifecycle
    def _on_set_parameters(self, params) -> SetParametersResult:
        late = [p.name for p in params if p.name in PARAMS and PARAMS[p.name].read_at == CONFIGURE]
        if late and self.player is not None:
            return SetParametersResult(
                successful=False,
                reason=(
                    f"{', '.join(late)}: read on configure, and {NAME} is configured; deactivate "
                    "and "
                    "clean it up, set the parameter, then configure again"
                ),
            )
        return SetParametersResult(successful=True)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        # read at configure time: fix the parameter and configure again without a restart
        mode = self.get_parameter("command_interface").value  # one of INTERFACES (declare checks)
        try:
            cfg = load_retarget_config(self.get_parameter("retarget_config").value or None)
        except (RetargetConfigError, OSError) as exc:
            return self._configure_failed(f"cannot load the retarget config: {exc}")
        gaze = None
        if self.get_parameter("attention").value:
            p = {n: self.get_parameter(n).value for n in PARAMS if PARAMS[n].read_at == CONFIGURE}
            try:
                gaze, self._aimer = build_gaze(
                    cfg,
                    p["urdf"] or share_dir() / "urdf" / "expressive_head.urdf",
                    p["base_frame"],
                    p["gaze_frame"],
                    AttentionConfig(
                        stale_after_s=p["target_stale_s"], min_dwell_s=p["min_dwell_s"]
                    ),
                    p["sound_distance_m"],
                )
            except (ValueError, OSError) as exc:
                return self._configure_failed(
                    f"cannot turn the head to targets: {exc}; set 'urdf' to your robot's URDF "
                    "(and base_frame, gaze_frame to its links), or attention:=false"
                )
        self.player = MotionPlayer(cfg, gaze=gaze)
        self._dt = 1.0 / cfg.servo_rate_hz
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._pubs["joint_states"] = self.create_lifecycle_publisher(
            JointState, topics.JOINT_STATES, reliable
        )
        if mode == "forward":
            self._pubs["forward"] = self.create_lifecycle_publisher(
                Float64MultiArray, topics.FORWARD_COMMANDS, reliable
            )
        elif mode == "trajectory":
            self._pubs["trajectory"] = self.create_lifecycle_publisher(
                JointTrajectory, topics.JOINT_TRAJECTORY, reliable
            )
        self._sub = self.create_subscription(
            HeadMotion, topics.HEAD_MOTION, self._on_motion, reliable
        )
        if gaze is not None:
            self._attention = AttentionInputs(
                self, self._aimer, gaze.attention, self._fault_log, self._now
            )
            topic = self.get_parameter("measured_joint_states").value
            if topic:
                self._measured_sub = self.create_subscription(
                    JointState, topic, self._on_measured, qos_profile_sensor_data
                )
        self._timer = self.create_timer(self._dt, self._tick)
        self._diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        self._diag_timer = self.create_timer(1.0, self._publish_diagnostics)
        self._counts = self.player.counters.as_dict()
        self.get_logger().info(
            f"retargeting to {len(cfg.joint_names)} joints of '{cfg.source}' at "
            f"{cfg.servo_rate_hz:g} Hz ({mode}); watchdog {cfg.watchdog_timeout_s} s, neutral "
            f"reached within {self.player.neutral_deadline_s:.2f} s"
        )
        return TransitionCallbackReturn.SUCCESS

    def _configure_failed(self, problem: str) -> TransitionCallbackReturn:
        self._config_error = problem
        self.get_logger().error(
            f"{problem}; the node stays unconfigured (fix the file or the "
            "parameter, then configure again)"
        )
        return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def _teardown(self) -> None:
        """Destroy exactly what on_configure created (safe to call when unconfigured)."""
        self._active = False
        for timer in (self._timer, self._diag_timer):
            if timer is not None:
                self.destroy_timer(timer)
        if self._sub is not None:
            self.destroy_subscription(self._sub)
        if self._measured_sub is not None:
            self.destroy_subscription(self._measured_sub)
        if self._attention is not None:
            self._attention.destroy()
        if self._diag_pub is not None:
            self.destroy_publisher(self._diag_pub)
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._timer = self._diag_timer = self._sub = self._diag_pub = None
        self._measured_sub = self._attention = self._aimer = None
        self._pubs.clear()
        self.player = None

    # -- motion in
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_motion(self, msg: HeadMotion) -> None:
        if not self._active or self.player is None:
            return
        try:
            frames = motion_frames(msg)
        except ValueError as exc:
            self._malformed_blocks += 1
            self._fault_log(
                Fault(
                    "malformed_blocks",
                    f"ignoring malformed HeadMotion (turn {msg.turn_index}): {exc}",
                )
            )
            return
        stamp = stamp_to_s(msg.header.stamp)
        accepted = self.player.add_block(
            stamp, float(msg.frame_period), frames[:, EXP], frames[:, JAW], frames[:, ROT]
        )
        self._report(
            f"HeadMotion turn {msg.turn_index} (stamp {stamp:.3f} s, {msg.num_frames} frames, "
            f"now {self._now():.3f} s)"
        )
        if accepted and "trajectory" in self._pubs:
            start = max(stamp, self._now())
            self._publish_trajectory(start, stamp + msg.num_frames * float(msg.frame_period))

    # -- servo tick
    def _tick(self) -> None:
        if not self._active or self.player is None:
            return
        now = self._now()
        positions = self.player.step(now)
        if self._aimer is not None and self._measured_sub is None:
            self._aimer.record(now, dict(zip(self.player.joint_names, positions.tolist())))
        trips = self.player.counters.watchdog_trips
        self._report(f"servo tick at {now:.3f} s")
        if trips != self._watchdog_trips:
            self._watchdog_trips = trips
            if "trajectory" in self._pubs:
                self._publish_trajectory(now, now + self.player.motion_bound_s)
        js = JointState(
            name=list(self.player.joint_names),
            position=positions.tolist(),
            velocity=self.player.velocities.tolist(),
        )
        s_to_stamp(now, js.header.stamp)
        js.header.frame_id = self._p["joint_state_frame_id"]
        self._pubs["joint_states"].publish(js)
        if "forward" in self._pubs:
            self._pubs["forward"].publish(Float64MultiArray(data=positions.tolist()))

    def _on_measured(self, msg: JointState) -> None:
        if self._aimer is not None and len(msg.name) == len(msg.position):
            self._aimer.record(stamp_to_s(msg.header.stamp), dict(zip(msg.name, msg.position)))

    # -- faults and diagnostics
    def _report(self, where: str) -> None:
        now = self.player.counters.as_dict()
        for fault in player_faults(self._counts, now, where):
            self._fault_log(fault)
        self._counts = now

    def _publish_diagnostics(self) -> None:
        if self.player is None:
            return
        extra, info = {"malformed_blocks": self._malformed_blocks}, {}
        gaze = self.player.gaze
        if gaze is not None:
            counts = gaze.attention.counters.as_dict()
            info = {k: counts.pop(k) for k in ("targets", "switches")}
            extra.update(counts)  # the refused targets
            yaw, pitch = np.degrees(gaze.shifter.at(self._now())[0])
            info["attending"] = gaze.source or "rest"
            info["gaze_yaw_pitch_deg"] = f"{yaw:.1f} {pitch:.1f}"
        status = servo_status(self.player, self._active, extra, info)
        self._diag_pub.publish(
            diagnostic_array(
                status,
                f"{self.get_name()}: servo commands",
                self.player.config.robot,
                self.get_clock().now().to_msg(),
            )
        )

    def _publish_trajectory(self, start_s: float, end_s: float) -> None:
        """Sample a copy of the player from start_s to end_s at the servo rate (same limits)."""
        times = start_s + self._dt * np.arange(1, int(np.ceil((end_s - start_s) / self._dt)) + 1)
        traj = JointTrajectory(joint_names=list(self.player.joint_names))
        s_to_stamp(start_s, traj.header.stamp)
        for t, pos in zip(times, self.player.preview(times)):
            traj.points.append(
                JointTrajectoryPoint(positions=pos.tolist(), time_from_start=_duration(t - start_s))
            )
        if traj.points:
            self._pubs["trajectory"].publish(traj)


def main(args=None) -> int:
    return run_node(HeadRetargeter, NAME, args)


if __name__ == "__main__":
    sys.exit(main())
