"""The head in MuJoCo: the URDF with a position servo on every joint (config/sim_head.yaml).

Each servo: the target moves towards the command at most at the URDF velocity limit (a servo's
profile velocity), a PD loop with the torque clipped to the URDF effort drives the joint, which
carries the gearbox's reflected inertia (armature) and static friction. Commands outside the
URDF position limits are clipped to them. How often each limit acted is counted
(:attr:`MujocoHead.counts`), so a user can see whether the servos can do what is asked of them.

Rendering is offscreen: OSMesa on a CPU-only machine (``MUJOCO_GL=osmesa``, the default set
here when nothing else is chosen), EGL on a GPU machine (``MUJOCO_GL=egl``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from timar_ros.sim.config import SimConfig, SimConfigError, urdf_joint_limits

MUJOCO_FIX = "pip install mujoco==4.0.0 (the version requirements.txt pins)"


def import_mujoco():
    """mujoco, with an offscreen GL backend chosen before its first import."""
    if not os.environ.get("MUJOCO_GL") and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "osmesa"
    try:
        import mujoco
    except ImportError as exc:
        raise SimConfigError(f"MuJoCo is not installed ({exc}): {MUJOCO_FIX}") from exc
    return mujoco


def default_urdf() -> Path:
    from timar_ros.resources import share_dir

    return share_dir() / "urdf" / "expressive_head.urdf"


class MujocoHead:
    """The simulated head. Joint order: the URDF's (= config/retarget_default.yaml's).

    Args:
        urdf: URDF file; every revolute joint needs a <limit> and a servo class in ``config``.
        config: the servo model and camera.
        initial_positions: [n] rad, the pose (and servo targets) at t = 0; default zeros.
    """

    def __init__(self, urdf: str | Path, config: SimConfig, initial_positions=None):
        mj = self._mj = import_mujoco()
        self.config = config
        limits = urdf_joint_limits(urdf)
        self.joint_names = [j.name for j in limits]
        unassigned = [n for n in self.joint_names if config.servo_of(n) is None]
        if unassigned:
            raise SimConfigError(
                f"{config.source}: servo_classes: joints of {urdf} in no class: {unassigned}"
            )
        unknown = sorted(
            {j for c in config.servo_classes for j in c.joints} - set(self.joint_names)
        )
        if unknown:
            raise SimConfigError(
                f"{config.source}: servo_classes name joints {urdf} does not have: {unknown}"
            )
        self.lower = np.array([j.lower for j in limits])
        self.upper = np.array([j.upper for j in limits])
        self.max_velocity = np.array([j.velocity for j in limits])
        self.max_effort = np.array([j.effort for j in limits])
        try:
            spec = mj.MjSpec.from_file(str(urdf))
        except Exception as exc:  # mujoco raises ValueError for a URDF it cannot compile
            raise SimConfigError(f"{urdf}: MuJoCo cannot load it: {exc}") from exc
        spec.option.timestep = config.timestep_s
        # The URDF's collision shapes overlap where the parts meet (the jaw inside the head):
        # contacts between them would hold joints, and a head touches nothing else.
        spec.option.disableflags |= mj.mjtDisableBit.mjDSBL_CONTACT
        spec.worldbody.add_light(pos=[0.8, 0.4, 0.9], dir=[-0.6, -0.3, -0.7], diffuse=[0.8] * 3)
        spec.worldbody.add_light(pos=[0.6, -0.6, 0.5], dir=[-0.5, 0.5, -0.3], diffuse=[0.3] * 3)
        joints = {j.name: j for j in spec.joints}
        for k, name in enumerate(self.joint_names):
            servo = config.servo_of(name)
            joints[name].armature = servo.armature
            joints[name].frictionloss = servo.frictionloss
            act = spec.add_actuator(name=name, target=name, trntype=mj.mjtTrn.mjTRN_JOINT)
            act.set_to_position(kp=1.0, kv=0.0)  # gains set below, from the compiled inertia
            act.forcelimited = True
            act.forcerange = [-self.max_effort[k], self.max_effort[k]]
        self.model = spec.compile()
        self.data = mj.MjData(self.model)
        self._qadr = np.array([self.model.joint(n).qposadr[0] for n in self.joint_names])
        self._vadr = np.array([self.model.joint(n).dofadr[0] for n in self.joint_names])
        self._act = np.array([self.model.actuator(n).id for n in self.joint_names])
        q0 = np.zeros(len(self.joint_names))
        if initial_positions is not None and len(initial_positions):
            q0 = np.asarray(initial_positions, dtype=np.float64)
            if q0.shape != (len(self.joint_names),) or not np.isfinite(q0).all():
                raise SimConfigError(
                    f"initial_positions: {len(initial_positions)} values for "
                    f"{len(self.joint_names)} joints {self.joint_names}; give one finite value "
                    "per joint (rad) or none"
                )
            q0 = np.clip(q0, self.lower, self.upper)
        self.data.qpos[self._qadr] = q0
        mj.mj_forward(self.model, self.data)
        self.kp, self.kv = self._servo_gains()
        for k, a in enumerate(self._act):
            self.model.actuator_gainprm[a, 0] = self.kp[k]
            self.model.actuator_biasprm[a, :3] = [0.0, -self.kp[k], -self.kv[k]]
        self.command = q0.copy()  # what was asked, after the position limits
        self.target = q0.copy()  # the servo targets, after the velocity limit
        self.data.ctrl[self._act] = q0
        self.counts = {
            "commands": 0,
            "position_clipped": np.zeros(len(q0), dtype=np.int64),  # commands beyond a limit
            "velocity_limited": np.zeros(len(q0), dtype=np.int64),  # physics steps
            "effort_saturated": np.zeros(len(q0), dtype=np.int64),  # physics steps
            "steps": 0,
        }
        self._renderer = None
        self._camera = None

    def _servo_gains(self) -> tuple[np.ndarray, np.ndarray]:
        """kp = I w^2, kv = 2 zeta I w from each joint's inertia at the initial pose (the mass
        matrix diagonal, armature included), unless the class gives kp/kv."""
        mj = self._mj
        M = np.zeros((self.model.nv, self.model.nv))
        mj.mj_fullM(self.model, self.data, M)
        kp, kv = [], []
        for k, name in enumerate(self.joint_names):
            c = self.config.servo_of(name)
            inertia = float(M[self._vadr[k], self._vadr[k]])
            w = 2 * math.pi * c.bandwidth_hz
            kp.append(c.kp if c.kp is not None else inertia * w * w)
            kv.append(c.kv if c.kv is not None else 2 * c.damping_ratio * inertia * w)
        return np.array(kp), np.array(kv)

    # -- commands and stepping
    @property
    def time(self) -> float:
        """Simulated seconds since the start."""
        return float(self.data.time)

    def set_command(self, positions) -> None:
        """positions [n] rad (finite; check with :func:`timar_ros.sim.commands.check_command`);
        values beyond a joint's limits are clipped to them and counted."""
        q = np.asarray(positions, dtype=np.float64)
        clipped = (q < self.lower) | (q > self.upper)
        self.counts["position_clipped"] += clipped
        self.counts["commands"] += 1
        self.command = np.clip(q, self.lower, self.upper)

    def step(self, duration_s: float) -> int:
        """Advance the physics by ``duration_s`` (whole physics steps, at least one when
        duration_s > 0); returns the number of steps taken."""
        dt = self.model.opt.timestep
        n = int(math.floor(duration_s / dt + 1e-9))
        max_move = self.max_velocity * dt
        for _ in range(n):
            move = self.command - self.target
            limited = np.abs(move) > max_move
            self.counts["velocity_limited"] += limited
            self.target = self.target + np.clip(move, -max_move, max_move)
            self.data.ctrl[self._act] = self.target
            self._mj.mj_step(self.model, self.data)
            force = self.data.actuator_force[self._act]
            self.counts["effort_saturated"] += np.abs(force) >= self.max_effort * (1 - 1e-6)
        self.counts["steps"] += n
        return n

    @property
    def positions(self) -> np.ndarray:
        """[n] rad, measured."""
        return self.data.qpos[self._qadr].copy()

    @property
    def velocities(self) -> np.ndarray:
        """[n] rad/s, measured."""
        return self.data.qvel[self._vadr].copy()

    @property
    def efforts(self) -> np.ndarray:
        """[n] N m, the servos' torques."""
        return self.data.actuator_force[self._act].copy()

    def count_summary(self) -> dict:
        """Plain counters (JSON-able): commands, physics steps, and per joint how many commands
        were beyond a position limit and how many steps the velocity or torque limit acted."""
        out = {"commands": int(self.counts["commands"]), "steps": int(self.counts["steps"])}
        for key in ("position_clipped", "velocity_limited", "effort_saturated"):
            out[key] = dict(zip(self.joint_names, map(int, self.counts[key])))
        return out

    # -- rendering
    def render(self) -> np.ndarray:
        """The camera's view of the current state: [height, width, 3] uint8 RGB."""
        mj = self._mj
        cam = self.config.camera
        if self._renderer is None:
            try:
                self._renderer = mj.Renderer(self.model, cam.height, cam.width)
            except Exception as exc:  # no GL backend: OSMesa/EGL missing
                raise SimConfigError(
                    f"cannot render offscreen with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} "
                    f"({exc}): install OSMesa (Debian: apt-get install libosmesa6) and set "
                    "MUJOCO_GL=osmesa, or use MUJOCO_GL=egl on a GPU machine"
                ) from exc
            self._camera = mj.MjvCamera()
            self._camera.lookat[:] = cam.lookat
            self._camera.distance = cam.distance
            self._camera.azimuth = cam.azimuth_deg
            self._camera.elevation = cam.elevation_deg
        self._renderer.update_scene(self.data, camera=self._camera)
        return self._renderer.render().copy()

    def render_pose(self, positions) -> np.ndarray:
        """The camera's view of the head at ``positions`` [n] rad (kinematics only: the physics
        state is overwritten; for replaying recorded positions)."""
        self.data.qpos[self._qadr] = positions
        self.data.qvel[:] = 0.0
        self._mj.mj_forward(self.model, self.data)
        return self.render()

    def close(self) -> None:
        """Free the renderer's GL context (a no-op when nothing was rendered)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
