"""Default topic names (relative, so a namespace applies; remappable with --ros-args -r)."""

USER_AUDIO = "user/audio"  # timar_ros/AudioChunk: the partner's speech (microphone)
# timar_ros/AudioChunk: the microphone as captured, the robot's own voice in it (echo_canceller's
# input; it publishes user/audio)
MIC_AUDIO = "user/audio_raw"
AGENT_AUDIO = "agent/audio"  # timar_ros/AudioChunk: the robot's own speech (TTS output)
AGENT_SPEECH = "agent/speech"  # timar_ros/AudioChunk: the robot's speech from a TTS, to be played
AGENT_SAY = "agent/say"  # std_msgs/String: text for the robot to say (voice_player, with flite)
AGENT_SAY_WAV = "agent/say_wav"  # std_msgs/String: a WAV file for the robot to say (voice_player)
USER_MOTION = "user/motion"  # timar_ros/HeadMotion: the partner's tracked motion (optional)
HEAD_MOTION = "head_motion"  # timar_ros/HeadMotion: generated agent motion, one turn per message
GROUND_TRUTH_MOTION = "ground_truth/head_motion"  # timar_ros/HeadMotion: reference motion in bags
CONVERSATION_STATE = "conversation_state"  # timar_ros/ConversationState
HEAD_ORIENTATION = "head_orientation"  # geometry_msgs/QuaternionStamped (REP-103)
JOINT_STATES = "joint_states"  # sensor_msgs/JointState: servo targets (measured, from sim_head)
JOINT_TRAJECTORY = "joint_trajectory_controller/joint_trajectory"  # trajectory_msgs/JointTrajectory
FORWARD_COMMANDS = "forward_position_controller/commands"  # std_msgs/Float64MultiArray
# geometry_msgs/PointStamped: a person to look at, in a frame of the URDF (e.g. a face tracker's)
ATTENTION_POINT = "attention/point"
# timar_ros/SoundDirection: a microphone array's direction of arrival (who is speaking)
SOUND_DIRECTION = "attention/sound_direction"
DISPLAY_DELAY = "display_delay"  # std_msgs/Float64, latched: the policy's display delay (s)
DIAGNOSTICS = "/diagnostics"  # diagnostic_msgs/DiagnosticArray (absolute, by convention)
SIM_IMAGE = "sim_head/image"  # sensor_msgs/Image: the simulated head's camera (sim_head)
CLOCK = "/clock"  # rosgraph_msgs/Clock: simulated time (sim_head with publish_clock)

DEFAULT_NAMESPACE = "timar"
PACKAGE = "timar_ros"

# Message type names (rosbag2 / rosbags form "pkg/msg/Name").
AUDIO_CHUNK_TYPE = f"{PACKAGE}/msg/AudioChunk"
HEAD_MOTION_TYPE = f"{PACKAGE}/msg/HeadMotion"
CONVERSATION_STATE_TYPE = f"{PACKAGE}/msg/ConversationState"
JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
QUATERNION_STAMPED_TYPE = "geometry_msgs/msg/QuaternionStamped"
SOUND_DIRECTION_TYPE = f"{PACKAGE}/msg/SoundDirection"

# Message type of each topic, for recording and replay.
TYPES = {
    USER_AUDIO: AUDIO_CHUNK_TYPE,
    MIC_AUDIO: AUDIO_CHUNK_TYPE,
    AGENT_AUDIO: AUDIO_CHUNK_TYPE,
    AGENT_SPEECH: AUDIO_CHUNK_TYPE,
    AGENT_SAY: "std_msgs/msg/String",
    AGENT_SAY_WAV: "std_msgs/msg/String",
    USER_MOTION: HEAD_MOTION_TYPE,
    HEAD_MOTION: HEAD_MOTION_TYPE,
    GROUND_TRUTH_MOTION: HEAD_MOTION_TYPE,
    CONVERSATION_STATE: CONVERSATION_STATE_TYPE,
    HEAD_ORIENTATION: QUATERNION_STAMPED_TYPE,
    JOINT_STATES: JOINT_STATE_TYPE,
    JOINT_TRAJECTORY: "trajectory_msgs/msg/JointTrajectory",
    FORWARD_COMMANDS: "std_msgs/msg/Float64MultiArray",
    ATTENTION_POINT: "geometry_msgs/msg/PointStamped",
    SOUND_DIRECTION: SOUND_DIRECTION_TYPE,
    DIAGNOSTICS: "diagnostic_msgs/msg/DiagnosticArray",
    SIM_IMAGE: "sensor_msgs/msg/Image",
    CLOCK: "rosgraph_msgs/msg/Clock",
}
# published best effort by live sources (REP-2003)
SENSOR_TOPICS = (USER_AUDIO, MIC_AUDIO, AGENT_AUDIO, ATTENTION_POINT, SOUND_DIRECTION)


def resolve(topic: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """Absolute name of a default topic under `namespace` (absolute topics stay as they are)."""
    if topic.startswith("/"):
        return topic
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return f"{ns}/{topic}"
