"""Default topic names (relative, so a namespace applies; remappable with --ros-args -r)."""

USER_AUDIO = "user/audio"  # timar_ros/AudioChunk: the partner's speech (microphone)
AGENT_AUDIO = "agent/audio"  # timar_ros/AudioChunk: the robot's own speech (TTS output)
USER_MOTION = "user/motion"  # timar_ros/HeadMotion: the partner's tracked motion (optional)
HEAD_MOTION = "head_motion"  # timar_ros/HeadMotion: generated agent motion, one turn per message
GROUND_TRUTH_MOTION = "ground_truth/head_motion"  # timar_ros/HeadMotion: reference motion in bags
CONVERSATION_STATE = "conversation_state"  # timar_ros/ConversationState
HEAD_ORIENTATION = "head_orientation"  # geometry_msgs/QuaternionStamped (REP-103)
JOINT_STATES = "joint_states"  # sensor_msgs/JointState: servo targets
JOINT_TRAJECTORY = "joint_trajectory_controller/joint_trajectory"  # trajectory_msgs/JointTrajectory
FORWARD_COMMANDS = "forward_position_controller/commands"  # std_msgs/Float64MultiArray
DIAGNOSTICS = "/diagnostics"  # diagnostic_msgs/DiagnosticArray (absolute, by convention)

DEFAULT_NAMESPACE = "timar"

# Message type of each topic (rosbag2 / rosbags type names), for recording and replay.
TYPES = {
    USER_AUDIO: "timar_ros/msg/AudioChunk",
    AGENT_AUDIO: "timar_ros/msg/AudioChunk",
    USER_MOTION: "timar_ros/msg/HeadMotion",
    HEAD_MOTION: "timar_ros/msg/HeadMotion",
    GROUND_TRUTH_MOTION: "timar_ros/msg/HeadMotion",
    CONVERSATION_STATE: "timar_ros/msg/ConversationState",
    HEAD_ORIENTATION: "geometry_msgs/msg/QuaternionStamped",
    JOINT_STATES: "sensor_msgs/msg/JointState",
    JOINT_TRAJECTORY: "trajectory_msgs/msg/JointTrajectory",
    FORWARD_COMMANDS: "std_msgs/msg/Float64MultiArray",
    DIAGNOSTICS: "diagnostic_msgs/msg/DiagnosticArray",
}
SENSOR_TOPICS = (USER_AUDIO, AGENT_AUDIO)  # published best effort by live sources (REP-2003)


def resolve(topic: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """Absolute name of a default topic under `namespace` (absolute topics stay as they are)."""
    if topic.startswith("/"):
        return topic
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return f"{ns}/{topic}"
