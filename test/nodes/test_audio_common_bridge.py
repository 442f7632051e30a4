"""audio_common_bridge over real DDS, for both audio_common_msgs families. Each family's package
is built from its published field definitions in a temporary workspace (the CMake path our own
messages take); a child process publishes a known signal with it, the bridge (another child, with
that package on its paths) republishes AudioChunk, and the samples and stamps are checked."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import publish_audio_common as source
from helpers.msg_build import build_interface_package, package_env
from helpers.ros import REPO, ros_env, stop
from timar_ros.msg import AudioChunk

# Field definitions as published by each project (ros-drivers/audio_common branch ros2;
# mgonzs13/audio_common), comments dropped.
FAMILIES = {
    "ros_drivers": {
        "AudioData": "uint8[] data",
        "AudioDataStamped": "std_msgs/Header header\naudio_common_msgs/AudioData audio",
        "AudioInfo": "uint8 channels\nuint32 sample_rate\nstring sample_format\nuint32 bitrate\n"
        "string coding_format",
    },
    "audio_stamped": {
        "AudioData": "float32[] float32_data\nint32[] int32_data\nint16[] int16_data\n"
        "int8[] int8_data\nuint8[] uint8_data",
        "AudioInfo": "int32 format\nint32 channels\nint32 rate\nint32 chunk",
        "Audio": "audio_common_msgs/AudioData audio_data\naudio_common_msgs/AudioInfo info",
        "AudioStamped": "std_msgs/Header header\naudio_common_msgs/Audio audio",
    },
}


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    return {
        f: build_interface_package(tmp_path_factory.mktemp(f), "audio_common_msgs", msgs)
        for f, msgs in FAMILIES.items()
    }


def _child(args, prefix):
    env = ros_env()
    env.update(package_env(prefix))
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(REPO), str(REPO / "test")])
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _bridge(prefix, ns, family, topic):
    return _child(
        [
            "-m",
            "timar_ros.nodes.audio_common_bridge",
            "--ros-args",
            "-r",
            f"__ns:={ns}",
            "-p",
            f"message_family:={family}",
            "-p",
            f"input_topic:={topic}",
        ],
        prefix,
    )


@pytest.mark.parametrize(
    "family, topic, channels", [("ros_drivers", "audio_stamped", 1), ("audio_stamped", "audio", 2)]
)
def test_bridge_republishes_samples_and_stamps(packages, ros_probe, family, topic, channels):
    ns = f"/acb_{family}"
    got = ros_probe.collect(AudioChunk, f"{ns}/user/audio", reliable=False)
    bridge = _bridge(packages[family], ns, family, topic)
    pub = None
    try:
        assert ros_probe.spin_until(
            lambda: ros_probe.node.count_publishers(f"{ns}/user/audio") > 0, 30
        ), "the bridge did not start"
        pub = _child(
            [str(REPO / "test" / "helpers" / "publish_audio_common.py"), family, ns],
            packages[family],
        )
        arrived = ros_probe.spin_until(lambda: len(got) >= source.CHUNKS, 40)
    finally:
        out = stop(bridge) + (stop(pub) if pub else "")
    assert arrived and len(got) == source.CHUNKS, (len(got), [m.seq for m in got], out)
    assert [m.seq for m in got] == list(range(source.CHUNKS))
    assert {(m.sample_rate, m.channels) for m in got} == {(source.RATE, channels)}
    for k, m in enumerate(got):
        want = source.stamp(k)
        assert (m.header.stamp.sec, m.header.stamp.nanosec) == (want.sec, want.nanosec)
    x = np.concatenate([np.asarray(m.samples, np.float32) for m in got]).reshape(-1, channels)
    np.testing.assert_allclose(x, source.signal(channels), atol=1.0 / 32767)


def test_mp3_is_refused_with_the_fix_and_nothing_is_published(packages, ros_probe):
    ns = "/acb_mp3"
    got = ros_probe.collect(AudioChunk, f"{ns}/user/audio", reliable=False)
    bridge = _bridge(packages["ros_drivers"], ns, "ros_drivers", "audio_stamped")
    pub = None
    try:
        assert ros_probe.spin_until(
            lambda: ros_probe.node.count_publishers(f"{ns}/user/audio") > 0, 30
        )
        pub = _child(
            [str(REPO / "test" / "helpers" / "publish_audio_common.py"), "ros_drivers", ns, "mp3"],
            packages["ros_drivers"],
        )
        pub.wait(timeout=60)
        ros_probe.spin_for(0.5)
    finally:
        out = stop(bridge) + (stop(pub) if pub else "")
    assert got == []
    assert "coding_format 'mp3'" in out and "format:=wave" in out, out


def test_the_wrong_or_a_missing_package_is_named(packages):
    # the ros-drivers package installed, the other family asked for
    r = _child(
        [
            "-m",
            "timar_ros.nodes.audio_common_bridge",
            "--ros-args",
            "-p",
            "message_family:=audio_stamped",
        ],
        packages["ros_drivers"],
    )
    out = r.communicate(timeout=60)[0]
    assert r.returncode == 2 and "message_family:=ros_drivers" in out, out
    # no audio_common_msgs at all
    r = subprocess.run(
        [sys.executable, "-m", "timar_ros.nodes.audio_common_bridge"],
        cwd=REPO,
        env=ros_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "needs the audio_common_msgs package" in r.stderr, r.stderr
