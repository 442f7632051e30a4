"""ROS-free robot logic: turn segmentation + alignment, voice activity, the conversation loop,
FLAME -> servo retargeting and its safety, faults and status.

Nothing here imports rclpy; the nodes in timar_ros.nodes wrap these cores.
"""

from timar_ros.robot.retarget import MotionPlayer, Retargeter, SafetyLimiter
from timar_ros.robot.retarget_config import (
    RetargetConfig,
    RetargetConfigError,
    load_retarget_config,
)
from timar_ros.robot.segmenter import SegmenterCounters, Turn, TurnSegmenter
from timar_ros.robot.vad import TurnVoiceActivity, VoiceActivity

__all__ = [
    "MotionPlayer",
    "Retargeter",
    "SafetyLimiter",
    "RetargetConfig",
    "RetargetConfigError",
    "load_retarget_config",
    "SegmenterCounters",
    "Turn",
    "TurnSegmenter",
    "TurnVoiceActivity",
    "VoiceActivity",
]
