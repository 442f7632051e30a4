"""Training helpers for ``timar train``: EMA of the weights, the learning-rate schedule and the
pickle-free training state (safetensors + JSON); the run's config (:mod:`timar_ros.training.config`)
and the loop itself (:mod:`timar_ros.training.loop`)."""

from timar_ros.training.ema import EMA
from timar_ros.training.schedule import lr_at

__all__ = ["EMA", "lr_at"]
