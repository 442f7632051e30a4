"""Head rotation conventions: FLAME axis-angle -> REP-103 yaw/pitch/roll and quaternions.

Frames
------
FLAME head frame (the model's ``head rotation`` = FLAME neck pose, axis-angle in radians):
    x to the right as seen by a viewer facing the person (= the person's LEFT),
    y up, z forward out of the face. Right-handed.
REP-103 head frame (ROS, the robot's head link):
    x forward (out of the face), y to the robot's left, z up. Right-handed.

Both frames are attached to the same physical head, so the change of basis is a pure axis
permutation (a proper rotation, det = +1):

    REP x = FLAME z,   REP y = FLAME x,   REP z = FLAME y          v_rep = P @ v_flame

    P = [[0, 0, 1],
         [1, 0, 0],
         [0, 1, 0]]

A rotation R_flame becomes R_rep = P @ R_flame @ P.T; an axis-angle vector maps as v_rep = P @ v.

Yaw, pitch, roll are the intrinsic Z-Y'-X'' angles of R_rep: R_rep = Rz(yaw) @ Ry(pitch) @ Rx(roll).
With the REP-103 right-hand rule that means:
    yaw   > 0: the head turns to the robot's LEFT  (about +z, up)
    pitch > 0: the head tilts DOWN (chin down)      (about +y, left)
    roll  > 0: the head rolls to the robot's RIGHT (left ear up; about +x, forward)
Small rotations reduce to (yaw, pitch, roll) ~= (v_flame[1], v_flame[0], v_flame[2]).
"""

from __future__ import annotations

import numpy as np

# v_rep = P @ v_flame
FLAME_TO_REP103 = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def axis_angle_to_matrix(v: np.ndarray) -> np.ndarray:
    """Rodrigues: axis-angle [..., 3] (rad) -> rotation matrices [..., 3, 3] (float64)."""
    v = np.asarray(v, dtype=np.float64)
    theta = np.linalg.norm(v, axis=-1, keepdims=True)  # [..., 1]
    small = theta < 1e-8
    safe = np.where(small, 1.0, theta)
    k = v / safe
    kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
    zero = np.zeros_like(kx)
    kmat = np.stack(
        [
            np.stack([zero, -kz, ky], -1),
            np.stack([kz, zero, -kx], -1),
            np.stack([-ky, kx, zero], -1),
        ],
        -2,
    )
    s = np.sin(theta)[..., None]
    c = np.cos(theta)[..., None]
    eye = np.broadcast_to(np.eye(3), kmat.shape)
    rot = eye + s * kmat + (1.0 - c) * (kmat @ kmat)
    # First order for tiny angles: I + [v]x (exact to O(theta^2)).
    vx, vy, vz = v[..., 0], v[..., 1], v[..., 2]
    first = eye + np.stack(
        [
            np.stack([zero, -vz, vy], -1),
            np.stack([vz, zero, -vx], -1),
            np.stack([-vy, vx, zero], -1),
        ],
        -2,
    )
    return np.where(small[..., None], first, rot)


def flame_to_rep103_matrix(rot_flame: np.ndarray) -> np.ndarray:
    """FLAME head axis-angle [..., 3] -> rotation matrix in the REP-103 head frame [..., 3, 3]."""
    v_rep = np.asarray(rot_flame, dtype=np.float64) @ FLAME_TO_REP103.T
    return axis_angle_to_matrix(v_rep)


def matrix_to_ypr(r: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] -> [..., 3] = (yaw, pitch, roll), intrinsic Z-Y-X, radians.

    pitch is in [-pi/2, pi/2]; at the gimbal lock (|pitch| = pi/2) roll is set to 0.
    """
    r = np.asarray(r, dtype=np.float64)
    sp = np.clip(-r[..., 2, 0], -1.0, 1.0)
    pitch = np.arcsin(sp)
    cp = np.sqrt(np.maximum(0.0, 1.0 - sp * sp))
    lock = cp < 1e-9
    yaw = np.where(
        lock, np.arctan2(-r[..., 0, 1], r[..., 1, 1]), np.arctan2(r[..., 1, 0], r[..., 0, 0])
    )
    roll = np.where(lock, 0.0, np.arctan2(r[..., 2, 1], r[..., 2, 2]))
    return np.stack([yaw, pitch, roll], axis=-1)


def ypr_to_matrix(ypr: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) [..., 3] -> Rz(yaw) @ Ry(pitch) @ Rx(roll) [..., 3, 3]."""
    ypr = np.asarray(ypr, dtype=np.float64)
    z = np.zeros(ypr.shape[:-1])
    return (
        axis_angle_to_matrix(np.stack([z, z, ypr[..., 0]], -1))
        @ axis_angle_to_matrix(np.stack([z, ypr[..., 1], z], -1))
        @ axis_angle_to_matrix(np.stack([ypr[..., 2], z, z], -1))
    )


def flame_to_ypr(rot_flame: np.ndarray) -> np.ndarray:
    """FLAME head axis-angle [..., 3] -> REP-103 (yaw, pitch, roll) [..., 3], radians."""
    return matrix_to_ypr(flame_to_rep103_matrix(rot_flame))


def flame_to_rep103_quaternion(rot_flame: np.ndarray) -> np.ndarray:
    """FLAME head axis-angle [..., 3] -> unit quaternion (x, y, z, w) [..., 4] in the REP-103 frame.

    This is the orientation of the head link relative to its neutral pose, as published in a
    geometry_msgs/QuaternionStamped (field order x, y, z, w). w >= 0.
    """
    v = np.asarray(rot_flame, dtype=np.float64) @ FLAME_TO_REP103.T
    theta = np.linalg.norm(v, axis=-1, keepdims=True)
    half = 0.5 * theta
    # sin(theta/2)/theta, with its limit 1/2 at theta -> 0
    scale = np.where(
        theta < 1e-8, 0.5 - theta**2 / 48.0, np.sin(half) / np.where(theta < 1e-8, 1.0, theta)
    )
    q = np.concatenate([v * scale, np.cos(half)], axis=-1)
    return np.where(q[..., 3:4] < 0.0, -q, q)
