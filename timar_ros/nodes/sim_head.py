"""sim_head: the head in MuJoCo, behind the interfaces ros2_control gives a real head.

It takes what head_retargeter sends a real head: std_msgs/Float64MultiArray on
``forward_position_controller/commands`` (a ForwardCommandController: one position per joint, in
URDF order) or trajectory_msgs/JointTrajectory on ``joint_trajectory_controller/joint_trajectory``
(``command_interface``), steps the physics (timar_ros.sim.head: servo-like position actuators
with the URDF's position, velocity and torque limits) and publishes the measured
sensor_msgs/JointState (positions, velocities, efforts) on ``joint_states``, as
joint_state_broadcaster does. Run it in the root namespace as the controller manager runs
(remap head_retargeter's command topic there; see launch/sim.launch.xml).

Time: with ``publish_clock`` false the physics follows this node's clock (ROS time); with it true
the node drives simulated time, publishing /clock from 0 at ``real_time_factor`` x real time,
and the other nodes run with ``use_sim_time``. Rendering (a camera facing the head):
``render_fps`` > 0 publishes sensor_msgs/Image on ``sim_head/image`` and, with ``video_path``,
writes an MP4. Wrong-length or NaN commands are rejected (the previous command stays), counted
in /diagnostics and logged once per ``fault_log_period_s``.
"""

from __future__ import annotations

import collections
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from timar_ros import topics
from timar_ros.nodes.convert import diagnostic_array, s_to_stamp, stamp_to_s
from timar_ros.nodes.fault_log import PERIOD_DESCRIPTION, PERIOD_PARAM, NodeFaultLog
from timar_ros.nodes.params import Param, declare
from timar_ros.nodes.runner import run_node
from timar_ros.robot.faults import Fault
from timar_ros.robot.status import OK, WARN, Status
from timar_ros.sim.commands import CommandError, TrajectoryFollower, check_command
from timar_ros.sim.config import load_sim_config
from timar_ros.sim.frame_grid import FrameGrid
from timar_ros.sim.head import MujocoHead, default_urdf

NAME = "sim_head"
INTERFACES = ("forward", "trajectory")
MAX_CATCH_UP_S = 0.1  # at most this much physics per tick when the node falls behind its clock
CLOCK_JUMP_S = 1.0  # the clock this far ahead of the physics has jumped forward
CLOCK_BACK_S = 0.05  # and this far behind it, back
PARAMS = {
    "urdf": Param("the head's URDF; '' = urdf/expressive_head.urdf of the package"),
    "sim_config": Param("servo model and camera YAML; '' = config/sim_head.yaml"),
    "command_interface": Param(
        "'forward' (Float64MultiArray, a position per joint) or 'trajectory' (JointTrajectory)",
        choices=INTERFACES,
    ),
    "rate_hz": Param(
        "physics is stepped and joint_states published at this rate (Hz)", 1.0, 1000.0
    ),
    "publish_clock": Param(
        "drive simulated time: publish /clock from 0 (run the other nodes with use_sim_time)"
    ),
    "real_time_factor": Param("with publish_clock: simulated seconds per real second", 0.01, 100.0),
    "render_fps": Param(
        "render the camera at this rate of simulated time (Hz); 0 = off", 0.0, 60.0
    ),
    "video_path": Param("with render_fps > 0: write the frames to this MP4; '' = none"),
    "keep_trace_s": Param(
        "keep this many seconds of (time, command, measured) in memory for in-process tools "
        "(timar demo --sim mujoco); 0 = none",
        0.0,
        3600.0,
    ),
    "joint_state_frame_id": Param("frame_id of the published JointState"),
    PERIOD_PARAM: Param(PERIOD_DESCRIPTION, 0.0, 3600.0),
}


class SimHead(Node):
    def __init__(self, **kwargs):
        super().__init__(NAME, **kwargs)
        p = self._p = declare(self, NAME, PARAMS)
        cfg = load_sim_config(p["sim_config"] or None)
        self.head = MujocoHead(p["urdf"] or default_urdf(), cfg)
        self.joint_names = self.head.joint_names
        self._dt = 1.0 / float(p["rate_hz"])
        self._fault_log = NodeFaultLog(self.get_logger(), float(p[PERIOD_PARAM]))
        self.rejected = {"wrong_length": 0, "non_finite": 0, "bad_trajectory": 0}
        self.overruns = 0  # ticks that could not catch up with the clock
        self.clock_resets = 0  # clock jumps: the physics continues from the new time
        self._physics_s = 0.0  # wall time spent in the physics (for the real-time factor)
        self._follower = TrajectoryFollower(self.joint_names)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        if p["command_interface"] == "forward":
            self.create_subscription(
                Float64MultiArray, topics.FORWARD_COMMANDS, self._on_forward, reliable
            )
        else:
            self.create_subscription(
                JointTrajectory, topics.JOINT_TRAJECTORY, self._on_trajectory, reliable
            )
        self._js_pub = self.create_publisher(JointState, topics.JOINT_STATES, reliable)
        self._clock_pub = None
        if p["publish_clock"]:
            if self.get_parameter("use_sim_time").value:
                raise ValueError(
                    "publish_clock and use_sim_time both set: sim_head drives /clock, so it "
                    "cannot also follow it (set use_sim_time false for sim_head)"
                )
            self._clock_pub = self.create_publisher(ClockMsg, topics.CLOCK, 10)
            self._t0 = 0.0
        else:
            self._t0 = self._ros_now()
        self._image_pub = self._video = None
        if p["video_path"] and p["render_fps"] <= 0:
            raise ValueError(
                f"video_path {p['video_path']!r} needs render_fps > 0 (the frame rate of the video)"
            )
        self._frames = None
        if p["render_fps"] > 0:
            # half a physics step: a tick that ends a hair before a frame's time still takes it
            self._frames = FrameGrid(p["render_fps"], 0.5 * self.head.model.opt.timestep)
            self._image_pub = self.create_publisher(Image, topics.SIM_IMAGE, 2)
            if p["video_path"]:
                from timar_ros.viz.video import Mp4Writer

                cam = cfg.camera
                self._video = Mp4Writer(p["video_path"], cam.width, cam.height, p["render_fps"])
        keep = int(round(p["keep_trace_s"] / self._dt))
        self.trace = collections.deque(maxlen=keep) if keep else None
        self._diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        # the physics keeps real time on a steady clock, whatever clock the ROS graph uses
        self._timer = self.create_timer(
            self._dt / (p["real_time_factor"] if p["publish_clock"] else 1.0),
            self._tick,
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )
        self._diag_timer = self.create_timer(
            1.0, self._publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME)
        )
        self.get_logger().info(
            f"simulating {len(self.joint_names)} joints in MuJoCo at {p['rate_hz']:g} Hz "
            f"(physics step {cfg.timestep_s * 1e3:g} ms), commands on "
            f"{'forward' if p['command_interface'] == 'forward' else 'trajectory'} interface"
            + (f", /clock at {p['real_time_factor']:g}x real time" if p["publish_clock"] else "")
        )

    # -- time
    def _ros_now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def sim_now(self) -> float:
        """The current time of the ROS graph (s): ROS time, or /clock when publishing it."""
        return self._t0 + self.head.time

    # -- commands
    def _reject(self, kind: str, text: str) -> None:
        self.rejected[kind] += 1
        self._fault_log(Fault(kind, f"rejected command: {text}; the previous command stays"))

    def _on_forward(self, msg: Float64MultiArray) -> None:
        try:
            q = check_command(msg.data, self.joint_names)
        except CommandError as exc:
            self._reject(exc.kind, str(exc))
            return
        self.head.set_command(q)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        stamp = stamp_to_s(msg.header.stamp)
        try:
            self._follower.set(
                msg.joint_names,
                [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points],
                [p.positions for p in msg.points],
                stamp if stamp > 0 else self.sim_now(),
                self.head.positions,
            )
        except CommandError as exc:
            self._reject(exc.kind, str(exc))

    # -- the physics tick
    def _tick(self) -> None:
        head = self.head
        if self._clock_pub is None:
            ahead = self._ros_now() - self._t0 - head.time
            # the clock jumped: a sim clock started, or went back (a bag looped)
            if ahead > CLOCK_JUMP_S or ahead < -CLOCK_BACK_S:
                self.clock_resets += 1
                self._t0 += ahead
                self._fault_log(
                    Fault(
                        "clock_resets",
                        f"the clock jumped by {ahead:+.2f} s: the simulation continues from now",
                        "info",
                    )
                )
                ahead = 0.0
            elif ahead > MAX_CATCH_UP_S:
                self.overruns += 1
                ahead = MAX_CATCH_UP_S
        else:
            ahead = self._dt
        dt = head.model.opt.timestep
        if ahead < dt * (1 - 1e-9):
            # less than one physics step is due (a timer that fired early): nothing moved, and a
            # second joint_states with the same stamp would say it did
            return
        t = time.perf_counter()
        while ahead >= dt * (1 - 1e-9):  # in pieces of one tick: a trajectory's target moves
            piece = min(ahead, self._dt)
            if self._follower.active:
                head.set_command(self._follower.at(self.sim_now() + piece))
            ahead -= head.step(piece) * dt
        self._physics_s += time.perf_counter() - t
        now = self.sim_now()
        if self._clock_pub is not None:
            c = ClockMsg()
            s_to_stamp(now, c.clock)
            self._clock_pub.publish(c)
        js = JointState(
            name=list(self.joint_names),
            position=head.positions.tolist(),
            velocity=head.velocities.tolist(),
            effort=head.efforts.tolist(),
        )
        s_to_stamp(now, js.header.stamp)
        js.header.frame_id = self._p["joint_state_frame_id"]
        self._js_pub.publish(js)
        if self.trace is not None:
            self.trace.append((now, head.command.copy(), head.positions))
        if self._frames is not None and self._frames.due(head.time):
            self._render(now)

    def _render(self, now: float) -> None:
        rgb = self.head.render()
        img = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=rgb.shape[1] * 3)
        img.data = rgb.tobytes()
        s_to_stamp(now, img.header.stamp)
        self._image_pub.publish(img)
        if self._video is not None:
            self._video.write(rgb)

    # -- diagnostics
    @property
    def real_time_factor(self) -> float:
        """Simulated seconds per wall second spent in the physics (what this CPU could do)."""
        return self.head.time / self._physics_s if self._physics_s > 0 else float("nan")

    def status(self) -> Status:
        counts = self.head.count_summary()
        problems = [f"{k.replace('_', ' ')}: {v}" for k, v in self.rejected.items() if v]
        if self.overruns:
            problems.append(f"overruns: {self.overruns}")
        values = {
            "sim_time_s": round(self.head.time, 3),
            "physics_real_time_factor": round(self.real_time_factor, 1),
            "commands": counts["commands"],
            **{f"rejected_{k}": v for k, v in self.rejected.items()},
            "overruns": self.overruns,
            "clock_resets": self.clock_resets,
        }
        for key in ("position_clipped", "velocity_limited", "effort_saturated"):
            values[key] = sum(counts[key].values())
        return Status(WARN if problems else OK, "; ".join(problems) or "simulating", values)

    def _publish_diagnostics(self) -> None:
        self._diag_pub.publish(
            diagnostic_array(
                self.status(), f"{NAME}: MuJoCo head", "mujoco", self.get_clock().now().to_msg()
            )
        )

    def destroy_node(self):
        if self._video is not None:
            self._video.close()
            self._video = None
        self.head.close()
        return super().destroy_node()


def main(args=None) -> int:
    return run_node(SimHead, NAME, args)


if __name__ == "__main__":
    sys.exit(main())
