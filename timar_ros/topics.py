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
