"""ROS-free robot logic: turn segmentation + alignment, voice activity, FLAME -> servo retargeting.

Nothing here imports rclpy; the nodes in timar_ros.nodes wrap these cores.
"""

from timar_ros.robot.retarget import (  # noqa: F401
    MotionPlayer,
    RetargetConfig,
    RetargetConfigError,
    Retargeter,
    SafetyLimiter,
    load_retarget_config,
)
from timar_ros.robot.segmenter import SegmenterCounters, Turn, TurnSegmenter  # noqa: F401
from timar_ros.robot.vad import TurnVoiceActivity, VoiceActivity  # noqa: F401
