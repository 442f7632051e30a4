"""Publish a known signal as audio_common messages (run as a child process with the test-built
audio_common_msgs on its paths): python publish_audio_common.py FAMILY NAMESPACE [CODING]."""

from __future__ import annotations

import sys
import time

import numpy as np

RATE, CHUNK, CHUNKS, START_S = 16000, 320, 40, 1000.0


def signal(channels: int) -> np.ndarray:
    """[CHUNKS * CHUNK, channels] float in [-0.5, 0.5]: a tone per channel."""
    t = np.arange(CHUNKS * CHUNK) / RATE
    return np.stack([0.5 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)], 1)


def stamp(k: int):
    from builtin_interfaces.msg import Time

    ns = int(round((START_S + k * CHUNK / RATE) * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def main() -> int:
    import rclpy
    from audio_common_msgs import msg as acm
    from rclpy.qos import QoSProfile

    family, ns = sys.argv[1], sys.argv[2]
    coding = sys.argv[3] if len(sys.argv) > 3 else "wave"
    rclpy.init()
    node = rclpy.create_node("audio_common_source", namespace=ns)
    if family == "ros_drivers":
        info_pub = node.create_publisher(acm.AudioInfo, "audio_info", QoSProfile(depth=1))
        pub = node.create_publisher(acm.AudioDataStamped, "audio_stamped", 10)
        x = signal(1)
        info = acm.AudioInfo(
            channels=1, sample_rate=RATE, sample_format="S16LE", bitrate=256, coding_format=coding
        )
    else:
        pub = node.create_publisher(acm.AudioStamped, "audio", 10)
        x = signal(2)
    pcm = np.round(x * 32767).astype("<i2")
    deadline = time.monotonic() + 20
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    if family == "ros_drivers":
        info_pub.publish(info)
        time.sleep(0.3)
    for k in range(CHUNKS):
        block = pcm[k * CHUNK : (k + 1) * CHUNK]
        if family == "ros_drivers":
            m = acm.AudioDataStamped()
            m.audio.data = block.tobytes()
        else:
            m = acm.AudioStamped()
            m.audio.info.format, m.audio.info.channels = 8, 2  # paInt16, stereo
            m.audio.info.rate, m.audio.info.chunk = RATE, CHUNK
            m.audio.audio_data.int16_data = block.reshape(-1).tolist()
        m.header.stamp = stamp(k)
        m.header.frame_id = "mic"
        pub.publish(m)
        # at the audio's own rate, as a capture node publishes: faster, the bridge's sensor-data
        # queue (depth 5, best effort) overflows on a busy machine and chunks are lost (seen in CI)
        time.sleep(CHUNK / RATE)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
