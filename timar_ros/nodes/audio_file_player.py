"""audio_file_player: plays WAV files as AudioChunk topics, in real time or faster.

Either one stereo file (left = user/partner, right = agent/robot) or two mono files. Header
stamps follow the audio timeline: chunk k of a file is stamped start + k * chunk_s, where start is
the node clock when playback begins (after `start_delay_s`).
"""

from __future__ import annotations

import sys

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.time import Duration

from timar_ros import topics
from timar_ros.data.audio import read_wav
from timar_ros.msg import AudioChunk
from timar_ros.nodes.convert import audio_chunk
from timar_ros.nodes.params import Param, declare
from timar_ros.nodes.runner import run_node

NAME = "audio_file_player"
PARAMS = {
    "user_wav": Param("WAV file of the user (partner) speech; '' when stereo_wav is used"),
    "agent_wav": Param("WAV file of the agent (robot) speech; '' when stereo_wav is used"),
    "stereo_wav": Param("stereo WAV, left = user, right = agent; overrides user_wav/agent_wav"),
    "chunk_s": Param("seconds of audio per AudioChunk", 0.005, 2.0),
    "playback_rate": Param("1.0 = real time, 2.0 = twice as fast", 0.1, 100.0),
    "start_delay_s": Param("seconds to wait before playing (lets subscribers connect)", 0.0, 60.0),
    "wait_for_subscribers": Param(
        "after start_delay_s, also wait until each audio topic has this "
        "many subscribers (0 = don't wait); a replay then loses nothing "
        "to slow discovery",
        0,
        100,
    ),
    "reliable": Param("publish with RELIABLE QoS (replay loses nothing) instead of BEST_EFFORT"),
    "loop": Param("start again at the end of the files"),
    "exit_when_done": Param("shut the process down when playback ends (standalone runs)"),
}


class AudioFilePlayer(Node):
    def __init__(self, **kwargs):
        super().__init__(NAME, **kwargs)
        p = declare(self, NAME, PARAMS)
        self._tracks = self._load_tracks(p)
        self._chunk_s = float(p["chunk_s"])
        self._rate = float(p["playback_rate"])
        self._loop = bool(p["loop"])
        self._exit_when_done = bool(p["exit_when_done"])
        qos = QoSProfile(depth=100)
        qos.reliability = (
            ReliabilityPolicy.RELIABLE if p["reliable"] else ReliabilityPolicy.BEST_EFFORT
        )
        self._pubs = {
            "user": self.create_publisher(AudioChunk, topics.USER_AUDIO, qos),
            "agent": self.create_publisher(AudioChunk, topics.AGENT_AUDIO, qos),
        }
        self._seq = {"user": 0, "agent": 0}
        self._next_chunk = 0
        self._start_wall = self.get_clock().now() + Duration(seconds=float(p["start_delay_s"]))
        self._start_stamp = self._start_wall
        self._wait_for = int(p["wait_for_subscribers"])
        self._started = False
        self.done = False
        self._timer = self.create_timer(min(self._chunk_s / self._rate, 0.02), self._tick)
        secs = max(len(t[0]) / t[1] for t in self._tracks.values())
        self.get_logger().info(
            f"playing {secs:.1f} s of audio ({', '.join(self._tracks)}) at {self._rate:g}x "
            f"in {self._chunk_s * 1000:.0f} ms chunks"
        )

    def _load_tracks(self, p) -> dict[str, tuple[np.ndarray, int]]:
        if p["stereo_wav"]:
            data, rate = read_wav(p["stereo_wav"], on_repair=self.get_logger().warning)
            if data.shape[1] != 2:
                raise ValueError(
                    f"stereo_wav '{p['stereo_wav']}' has {data.shape[1]} channel(s); it needs 2 "
                    "(left = user, right = agent). Use user_wav/agent_wav for mono files."
                )
            return {"user": (data[:, 0].copy(), rate), "agent": (data[:, 1].copy(), rate)}
        tracks = {}
        for role in ("user", "agent"):
            path = p[f"{role}_wav"]
            if path:
                data, rate = read_wav(path, on_repair=self.get_logger().warning)
                tracks[role] = (data.mean(axis=1) if data.shape[1] > 1 else data[:, 0], rate)
        if not tracks:
            raise ValueError("no audio to play: set stereo_wav, or user_wav and/or agent_wav")
        return tracks

    def _tick(self) -> None:
        if self.done:
            return
        now = self.get_clock().now()
        if not self._started:
            if now < self._start_wall:
                return
            if any(
                pub.get_subscription_count() < self._wait_for
                for role, pub in self._pubs.items()
                if role in self._tracks
            ):
                return
            self._started = True
            self._start_wall = self._start_stamp = now
        elapsed = (now - self._start_wall).nanoseconds * 1e-9
        due = int(elapsed * self._rate / self._chunk_s) + 1  # chunks whose start time has passed
        while self._next_chunk < due:
            if not self._publish_chunk(self._next_chunk):
                if self._loop:
                    self._start_wall = self.get_clock().now()
                    self._start_stamp = self._start_stamp + Duration(
                        seconds=self._next_chunk * self._chunk_s
                    )
                    self._next_chunk = 0
                    return
                self.done = True
                self.get_logger().info(f"playback finished after {self._next_chunk} chunks")
                if self._exit_when_done:
                    raise SystemExit(0)
                return
            self._next_chunk += 1

    def _publish_chunk(self, k: int) -> bool:
        published = False
        for role, (samples, rate) in self._tracks.items():
            n = int(round(self._chunk_s * rate))
            block = samples[k * n : (k + 1) * n]
            if len(block) == 0:
                continue
            stamp_s = self._start_stamp.nanoseconds * 1e-9 + k * n / rate
            self._pubs[role].publish(audio_chunk(block, rate, stamp_s, role, self._seq[role]))
            self._seq[role] += 1
            published = True
        return published


def main(args=None) -> int:
    return run_node(AudioFilePlayer, NAME, args)


if __name__ == "__main__":
    sys.exit(main())
