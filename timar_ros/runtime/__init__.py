"""Streaming TIMAR inference: :class:`StreamingPolicy` behind several backends.

    policy = StreamingPolicy.from_checkpoint("checkpoints/robot", backend="torch", seed=0)
    motion = policy.step(user_audio, agent_audio, user_motion=None)   # [F, 56] float32

This package never imports torch at import time: the torch backend (``runtime.torch_policy``) is
loaded only when chosen, so the onnxruntime backend runs without PyTorch.
"""

from .base import BACKENDS, StreamingPolicy
from .checkpoint import CheckpointError, load_checkpoint_config, model_id
from .sampling_noise import turn_noise

__all__ = [
    "StreamingPolicy",
    "BACKENDS",
    "CheckpointError",
    "load_checkpoint_config",
    "model_id",
    "turn_noise",
]
