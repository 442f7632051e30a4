"""The motion vector and the clocks: the one definition every module uses.

The model's 56-d motion vector is ``[expression 0:50 | jaw 50:53 | head rotation 53:56]``
(FLAME coefficients; jaw and head rotation are axis-angle in radians). DualTalk's ``.npz``
stores ``exp`` [T, 50] and ``pose`` [T, 6] = ``[head rotation | jaw]``: note the swapped order.
"""

from __future__ import annotations

import numpy as np

FPS = 25  # motion frames per second (DualTalk, TIMAR)
SAMPLE_RATE = 16000  # audio samples per second the policy consumes (Hz)
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640

EXP_DIM = 50
JAW_DIM = 3
ROT_DIM = 3
MOTION_DIM = EXP_DIM + JAW_DIM + ROT_DIM  # 56

EXP = slice(0, 50)
JAW = slice(50, 53)
ROT = slice(53, 56)

# Groups as the DualTalk metrics and the loss weighting use them: name -> slice of the 56-d vector.
GROUPS = {"exp": EXP, "jaw": JAW, "pose": ROT}


def from_dualtalk(exp: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """DualTalk npz arrays -> model motion.

    Args:
        exp: [T, 50] FLAME expression.
        pose: [T, 6] = head rotation (axis-angle, rad) | jaw (axis-angle, rad).
    Returns:
        [T, 56] float32, order exp | jaw | rotation.
    """
    exp = np.asarray(exp, dtype=np.float32)
    pose = np.asarray(pose, dtype=np.float32)
    if exp.ndim != 2 or exp.shape[1] != EXP_DIM:
        raise ValueError(f"exp must be [T, {EXP_DIM}], got {exp.shape}")
    if pose.ndim != 2 or pose.shape[1] != 6:
        raise ValueError(f"pose must be [T, 6] (rotation | jaw), got {pose.shape}")
    if len(exp) != len(pose):
        raise ValueError(f"exp has {len(exp)} frames but pose has {len(pose)}")
    return np.concatenate([exp, pose[:, 3:6], pose[:, 0:3]], axis=1)


def to_dualtalk(motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Model motion [T, 56] -> (exp [T, 50], pose [T, 6] = rotation | jaw), float32."""
    motion = np.asarray(motion, dtype=np.float32)
    if motion.ndim != 2 or motion.shape[1] != MOTION_DIM:
        raise ValueError(f"motion must be [T, {MOTION_DIM}], got {motion.shape}")
    pose = np.concatenate([motion[:, ROT], motion[:, JAW]], axis=1)
    return motion[:, EXP].copy(), pose
