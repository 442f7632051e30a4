"""echo_canceller over real DDS, a real process: the microphone's raw audio (the robot's voice
through a room response, the partner's on top) and the loudspeaker's reference in, the partner's
audio out: the robot's voice removed, the partner kept, the stamps those of the capture; without
a reference the microphone passes, said once and counted in /diagnostics."""

import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from helpers.echo_signals import room_echo, voices
from helpers.ros import start_python, stop
from timar_ros.msg import AudioChunk
from timar_ros.nodes.convert import audio_buffer, float32_seq, s_to_stamp, stamp_to_s
from timar_ros.robot.echo import echo_return_loss_enhancement
from timar_ros.robot.echo_timing import estimate_delay

NS = "/echo"
RATE = 16000
CHUNK = 640  # 40 ms
T0 = 1000.0  # stamps on the common clock (s)


def _signals(seconds: float):
    robot, partner = voices(seconds)
    t = np.arange(len(robot)) / RATE
    reference = np.where(t < 6.0, robot, 0.0).astype(np.float32)
    echo = room_echo(reference, 0.004, 0.5)
    rng = np.random.default_rng(0)
    mic = echo + np.where(t >= 6.0, 0.1 * partner, 0.0) + 1e-4 * rng.standard_normal(len(t))
    return t, reference, mic.astype(np.float32)


def _chunk(samples, stamp, seq):
    msg = AudioChunk(sample_rate=RATE, channels=1, seq=seq)
    s_to_stamp(stamp, msg.header.stamp)
    msg.samples = float32_seq(samples)
    return msg


def _start(extra=()):
    return start_python(
        ["-m", "timar_ros.nodes.echo_canceller", "--ros-args", "-r", f"__ns:={NS}"]
        + ["-p", "diagnostics_period_s:=0.2", "-p", "fault_log_period_s:=600.0"]
        + ["-p", "audio_qos:=reliable", *extra]
    )


def _feed(ros_probe, mic, reference=None, lead=5, pace=4.0):
    """Publish the microphone (and the reference, ``lead`` chunks ahead, or behind when
    negative) at ``pace`` x real time, once the node listens."""
    node = ros_probe.node
    qos = ros_probe.qos(2000)
    pub_mic = node.create_publisher(AudioChunk, f"{NS}/user/audio_raw", qos)
    pub_ref = node.create_publisher(AudioChunk, f"{NS}/agent/audio", qos)
    assert ros_probe.spin_until(lambda: pub_mic.get_subscription_count() > 0, 30.0)
    if reference is not None:
        assert ros_probe.spin_until(lambda: pub_ref.get_subscription_count() > 0, 10.0)
        if lead < 0:  # the reference streams (silence) before the microphone starts
            for k in range(-5, 0):
                pub_ref.publish(_chunk(np.zeros(CHUNK, np.float32), T0 + k * CHUNK / RATE, 0))
                ros_probe.spin_for(0.05)
        for k in range(lead):
            pub_ref.publish(
                _chunk(reference[k * CHUNK : (k + 1) * CHUNK], T0 + k * CHUNK / RATE, k)
            )
    start = time.monotonic()
    for k, i in enumerate(range(0, len(mic) - CHUNK + 1, CHUNK)):
        j = i + lead * CHUNK
        if reference is not None and 0 <= j < len(reference):
            pub_ref.publish(_chunk(reference[j : j + CHUNK], T0 + j / RATE, k + lead))
        pub_mic.publish(_chunk(mic[i : i + CHUNK], T0 + i / RATE, k))
        wait = start + (i + CHUNK) / RATE / pace - time.monotonic()
        ros_probe.spin_for(max(wait, 0.0))
    if reference is not None and lead < 0:  # the reference's last chunks, behind
        for j in range(len(mic) // CHUNK * CHUNK + lead * CHUNK, len(reference), CHUNK):
            pub_ref.publish(_chunk(reference[j : j + CHUNK], T0 + j / RATE, j // CHUNK))
        # and goes on (silence), as voice_player's does: AEC3's lead reads past the end
        end = T0 + len(reference) / RATE
        pub_ref.publish(_chunk(np.zeros(4 * CHUNK, np.float32), end, len(reference) // CHUNK))


def _assemble(chunks, n):
    out = np.zeros(n, np.float32)
    stamps = []
    for m in chunks:
        x, _ = audio_buffer(m)
        s = stamp_to_s(m.header.stamp)
        stamps.append((s, len(x)))
        k = int(round((s - T0) * RATE))
        x, k = (x[-k:], 0) if k < 0 else (x, k)
        out[k : k + len(x)] = x[: n - k]
    return out, stamps


def test_the_robots_voice_is_cancelled_and_the_partner_passes(ros_probe):
    t, reference, mic = _signals(10.0)
    got = ros_probe.collect(AudioChunk, f"{NS}/user/audio")
    # the canceller alone: the suppressor also lowers speech a few dB while it adapts
    node = _start(["-p", "noise_suppression:=false"])
    try:
        _feed(ros_probe, mic, reference)
        ros_probe.spin_until(lambda: sum(len(m.samples) for m in got) >= len(mic) - CHUNK, 10.0)
    finally:
        log = stop(node)
    out, stamps = _assemble(got, len(mic))
    assert len(got) >= len(mic) // CHUNK - 2, (len(got), log[-2000:])
    erle = echo_return_loss_enhancement(mic, out, (t >= 2.0) & (t < 6.0))
    assert erle >= 20.0, (erle, log[-2000:])
    kept = echo_return_loss_enhancement(mic, out, t >= 7.0)
    assert abs(kept) < 3.0, kept
    # the chunks are contiguous, stamped with the capture time of what they carry
    for (a, n), (b, _) in zip(stamps, stamps[1:]):
        assert abs(a + n / RATE - b) < 2e-6, (a, n, b)
    assert "echo mode aec with reference agent/audio" in log


@pytest.mark.parametrize("wait_s", [0.1, 0.0])
def test_a_reference_that_comes_after_the_microphone_is_waited_for(ros_probe, wait_s):
    """The reference a chunk behind the microphone (a CPU burst held voice_player's chunks
    back): the microphone waits for it (reference_wait_s, the default 0.1 s) and the robot's
    voice is cancelled; without the wait it passes uncancelled (the fallback), said."""
    t, reference, mic = _signals(8.0)
    got = ros_probe.collect(AudioChunk, f"{NS}/user/audio")
    node = _start(["-p", "noise_suppression:=false", "-p", f"reference_wait_s:={wait_s}"])
    try:
        _feed(ros_probe, mic, reference, lead=-1)
        ros_probe.spin_until(lambda: sum(len(m.samples) for m in got) >= len(mic) - CHUNK, 10.0)
    finally:
        log = stop(node)
    out, _ = _assemble(got, len(mic))
    erle = echo_return_loss_enhancement(mic, out, (t >= 2.0) & (t < 6.0))
    if wait_s:
        assert erle >= 20.0 and "no reference audio" not in log, (erle, log[-2000:])
    else:
        assert erle < 6.0 and "no reference audio" in log, (erle, log[-2000:])


def test_without_a_reference_the_microphone_passes_said_once_and_counted(ros_probe):
    _, _, mic = _signals(3.0)
    got = ros_probe.collect(AudioChunk, f"{NS}/user/audio")
    diag = ros_probe.collect(DiagnosticArray, "/diagnostics", depth=100)
    node = _start(["-p", "noise_suppression:=false"])  # the canceller alone
    try:
        _feed(ros_probe, mic)
        ros_probe.spin_until(
            lambda: any(
                s.name.endswith("echo")
                and any(v.key == "no_reference" and v.value != "0" for v in s.values)
                for d in diag
                for s in d.status
            ),
            10.0,
        )
    finally:
        log = stop(node)
    out, _ = _assemble(got, len(mic))
    n = len(mic) - CHUNK
    # the microphone passed (through the canceller with nothing to cancel), stamped as captured
    assert abs(echo_return_loss_enhancement(mic[:n], out[:n], np.arange(n) > RATE // 10)) < 1.0
    assert estimate_delay(mic[:n], out[:n], RATE, 0.05)[0] == 0.0
    assert log.count("no reference audio") == 1, log[-2000:]
    last = [s for d in diag for s in d.status if s.name.endswith("echo")][-1]
    values = {v.key: v.value for v in last.values}
    assert last.level == DiagnosticStatus.WARN and int(values["no_reference"]) > 0


def test_a_malformed_chunk_is_dropped_and_said(ros_probe):
    got = ros_probe.collect(AudioChunk, f"{NS}/user/audio")
    pub = ros_probe.node.create_publisher(AudioChunk, f"{NS}/user/audio_raw", ros_probe.qos(10))
    node = _start()
    try:
        assert ros_probe.spin_until(lambda: pub.get_subscription_count() > 0, 30.0)
        bad = _chunk(np.zeros(641, np.float32), T0, 0)
        bad.channels = 2  # 641 samples are not whole stereo frames
        pub.publish(bad)
        ros_probe.spin_for(1.5)
    finally:
        log = stop(node)
    assert not got
    assert "microphone chunk dropped" in log and "2-channel" in log, log[-2000:]
