"""rosbag2 without ROS (rosbags + numpy): ``records`` (our messages as arrays, the one place that
knows their field layouts), ``io`` (BagWriter / BagReader, joined streams, a bag's summary) and
``from_dualtalk`` (a DualTalk test set as bags). The common names are re-exported here."""
from timar_ros.bags.from_dualtalk import DualTalkBagOptions, convert_dualtalk, dualtalk_clips, write_conversation_bag
from timar_ros.bags.io import (BAG_VERSION, STORAGES, BagReader, BagWriter, TopicInfo, bag_info, concat_audio,
                               concat_motion, read_audio, read_motion, read_records)
from timar_ros.bags.records import (AUDIO_CHUNK, CONVERSATION_STATE, HEAD_MOTION, JOINT_STATE, MSG_NAMES,
                                    QUATERNION_STAMPED, AudioRecord, BagError, JointStateRecord, MotionRecord,
                                    QuaternionRecord, audio_chunk_msg, audio_chunk_to_record,
                                    conversation_state_msg, conversation_state_to_dict, find_msg_dir,
                                    head_motion_msg, head_motion_to_record, joint_state_msg,
                                    joint_state_to_record, msg_class, quaternion_stamped_msg,
                                    quaternion_stamped_to_record, stamp_ns, to_ns, to_record, typestore)

__all__ = [
    "AUDIO_CHUNK", "BAG_VERSION", "CONVERSATION_STATE", "HEAD_MOTION", "JOINT_STATE", "MSG_NAMES",
    "QUATERNION_STAMPED", "STORAGES", "AudioRecord", "BagError", "BagReader", "BagWriter",
    "DualTalkBagOptions", "JointStateRecord", "MotionRecord", "QuaternionRecord", "TopicInfo",
    "audio_chunk_msg", "audio_chunk_to_record", "bag_info", "concat_audio", "concat_motion",
    "conversation_state_msg", "conversation_state_to_dict", "convert_dualtalk", "dualtalk_clips",
    "find_msg_dir", "head_motion_msg", "head_motion_to_record", "joint_state_msg",
    "joint_state_to_record", "msg_class", "quaternion_stamped_msg", "quaternion_stamped_to_record",
    "read_audio", "read_motion", "read_records", "stamp_ns", "to_ns", "to_record", "typestore",
    "write_conversation_bag",
]
