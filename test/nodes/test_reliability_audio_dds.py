"""Bad audio through real DDS into a real conversation_policy process: NaN/Inf, empty, oversize,
wrong and changing sample rate, stereo, gaps, duplicates, out-of-order, a far-future stamp, clock
jumps (forward, and back to a sim-time-like clock), late chunks. Each is logged once (rate-limited)
saying what was done, counted in ConversationState and /diagnostics; every turn is still
produced."""

import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from helpers.ros import RosProbe, spin_until, start_python, stop
from timar_ros.msg import AudioChunk, ConversationState, HeadMotion
from timar_ros.nodes.convert import float32_seq, s_to_stamp

NS = "/faults"
SR = 16000


class Feeder:
    """Publishes hand-made AudioChunk messages (stamps in seconds; own seq per stream)."""

    def __init__(self, node):
        qos = RosProbe.qos(5000)
        self.pubs = {
            s: node.create_publisher(AudioChunk, f"{NS}/{s}/audio", qos) for s in ("user", "agent")
        }
        self.seq = {"user": 0, "agent": 0}
        self.rng = np.random.default_rng(0)

    def send(self, stream, stamp, samples=None, rate=SR, channels=1, n=None):
        if samples is None:
            samples = self.rng.uniform(-0.1, 0.1, int(n or rate // 10) * channels).astype(
                np.float32
            )
        msg = AudioChunk(sample_rate=int(rate), channels=channels, seq=self.seq[stream])
        self.seq[stream] += 1
        s_to_stamp(stamp, msg.header.stamp)
        msg.header.frame_id = stream
        msg.samples = float32_seq(samples)
        self.pubs[stream].publish(msg)


def test_bad_audio_is_repaired_or_dropped_logged_once_counted_and_turns_go_on(
    tiny_checkpoint, ros_probe
):
    node = ros_probe.node
    got = {"motion": [], "state": [], "diag": []}
    reliable = ros_probe.qos(1000)
    node.create_subscription(HeadMotion, f"{NS}/head_motion", got["motion"].append, reliable)
    node.create_subscription(
        ConversationState, f"{NS}/conversation_state", got["state"].append, reliable
    )
    node.create_subscription(DiagnosticArray, "/diagnostics", got["diag"].append, 10)
    feed = Feeder(node)
    policy = start_python(
        [
            "-m",
            "timar_ros.nodes.conversation_policy",
            "--ros-args",
            "-r",
            f"__ns:={NS}",
            "-p",
            f"checkpoint:={tiny_checkpoint}",
            "-p",
            "tick_s:=1.0",  # the 1-s mode: one HeadMotion per turn
            "-p",
            "audio_qos:=reliable",
            "-p",
            "fault_log_period_s:=600.0",
            "-p",
            "diagnostics_period_s:=0.2",
            # the test publishes faster than real time: the two topics' queues may be
            # drained a turn apart, which must not count as late audio
            "-p",
            "max_latency_s:=3.0",
        ]
    )
    try:
        ready = spin_until(
            node,
            lambda: (
                all(p.get_subscription_count() for p in feed.pubs.values())
                and node.count_publishers(f"{NS}/head_motion") > 0
            ),
            60,
        )
        assert ready, "conversation_policy did not start:\n" + stop(policy)
        t0 = time.time() + 2.0  # stamps of the wall clock the node runs on

        def second(k, user=None):
            """One 1-s turn of both streams in 0.1-s chunks; user(i, stamp) overrides the user
            chunk.
            Paced by the policy's output (at most 2 turns ahead) so no reader queue overflows."""
            spin_until(node, lambda: len(got["state"]) >= k - 2, 30)
            for i in range(10):
                stamp = t0 + k + i / 10
                feed.send("agent", stamp)
                (user or (lambda i, s: feed.send("user", s)))(i, stamp)

        second(0)
        second(1)

        def nan(i, s):
            x = feed.rng.uniform(-0.1, 0.1, 1600).astype(np.float32)
            x[:5], x[5] = np.nan, np.inf
            feed.send("user", s, x)

        second(2, nan)

        def empty_oversize(i, s):
            feed.send("user", s)
            if i == 0:
                feed.send("user", s, np.zeros(0, np.float32))
                feed.send("user", s + 0.05, n=11 * SR)  # 11 s > max_chunk_s

        second(3, empty_oversize)
        second(4, lambda i, s: feed.send("user", s, rate=48000))
        second(5, lambda i, s: feed.send("user", s, rate=22050))

        def stereo(i, s):
            feed.send("user", s, channels=2)
            if i == 0:  # 1601 interleaved samples cannot be 2-channel frames: dropped, said
                feed.send(
                    "user",
                    s + 0.05,
                    feed.rng.uniform(-0.1, 0.1, 1601).astype(np.float32),
                    channels=2,
                )

        second(6, stereo)
        second(7, lambda i, s: None if 3 <= i <= 6 else feed.send("user", s))  # 0.4-s gap

        def twice(i, s):
            x = feed.rng.uniform(-0.1, 0.1, 1600).astype(np.float32)
            feed.send("user", s, x)
            feed.send("user", s, x)

        second(8, twice)
        for i in range(10):  # the user's chunks of turn 9 arrive in reverse order
            feed.send("agent", t0 + 9 + i / 10)
        for i in reversed(range(10)):
            feed.send("user", t0 + 9 + i / 10)

        def future(i, s):
            feed.send("user", s)
            if i == 5:
                feed.send("user", s + 1000.0)  # one bogus far-future stamp

        second(10, future)
        second(11)
        # Before each clock change, let the old clock's turns through: the two topics are separate
        # DDS readers, and on a busy machine one may be drained a little ahead of the other.
        spin_until(node, lambda: len(got["state"]) >= 12, 30)
        # Forward clock jump by 100 s (both streams continue on the new clock): turns 12..14.
        t0 += 100.0
        for k in (12, 13, 14):
            second(k)
        spin_until(node, lambda: len(got["state"]) >= 15, 30)
        feed.send("user", t0 - 100.0 + 11.5)  # a straggler of the old clock: late
        # Back to a sim-time-like clock near 0 (e.g. a node switched to /clock): turns 15..17.
        t0 = 5.0 - 15
        for k in (15, 16, 17):
            second(k)
        feed.send("user", t0 + 15.2)  # for turn 15, long processed: late

        done = spin_until(node, lambda: len(got["state"]) >= 18, 90)
        spin_until(node, lambda: False, 1.0)  # diagnostics after the last turn
    finally:
        log = stop(policy)
    assert done, f"{len(got['state'])} turns of 18:\n{log}"

    # Every turn is produced once, in order; none skipped; the clock jumps reset the history.
    assert [s.turn_index for s in got["state"]] == list(range(18)), log
    assert [m.turn_index for m in got["motion"]] == list(range(18)), log
    st = {s.turn_index: s for s in got["state"]}
    assert st[11].history_turns > 0 and st[12].history_turns == 0 and st[15].history_turns == 0
    assert st[7].user_padded_s == pytest.approx(0.4, abs=1e-3) and st[7].agent_padded_s == 0
    # (the very last turn may be forced out by the 3-s deadline if its last chunk is delayed on a
    # heavily loaded machine; then that chunk is counted as late)
    assert all(s.user_padded_s == 0 for k, s in st.items() if k not in (7, 17)), log
    last = got["state"][-1]
    # 10 NaN chunks + empty + oversize + the torn stereo chunk + the far-future outlier
    # (the last turn is out before the last late chunk; /diagnostics below counts both)
    assert last.invalid_chunks == 14 and last.duplicate_chunks == 10 and last.late_chunks in (1, 2)
    assert last.skipped_turns == 0
    # oversize 11 s + duplicates 10 x 0.1 s + the torn stereo chunk 800.5 frames + the outlier 0.1 s
    # + the old clock's straggler 0.1 s
    assert (
        last.dropped_audio_s == pytest.approx(11 + 1.0 + 1601 / 2 / SR + 0.1 + 0.1, abs=1e-3)
        or st[17].user_padded_s
    )

    # /diagnostics has every counter by name.
    ours = [
        s for d in got["diag"] for s in d.status if s.name.endswith("conversation_policy: policy")
    ]
    values = {kv.key: kv.value for kv in ours[-1].values}
    expect = {
        "nonfinite_samples": 60,
        "empty_chunks": 1,
        "oversize_chunks": 1,
        "resampled_chunks": 20,
        "downmixed_chunks": 10,
        "rate_changes": 3,
        "duplicate_chunks": 10,
        "outlier_chunks": 1,
        "clock_jumps": 2,
        "resyncs": 2,
        "skipped_turns": 0,
    }
    assert int(values["late_chunks"]) >= 2 and int(values["padded_turns"]) >= 1
    assert {k: int(values[k]) for k in expect} == expect, values
    assert int(values["reordered_chunks"]) >= 9 and ours[-1].level == DiagnosticStatus.WARN

    # Each kind logged exactly once (the period is longer than the test), saying what was done.
    for text in [
        "6 NaN/Inf samples replaced with 0",
        "empty chunk ignored",
        "chunk dropped: longer than max_chunk_s (10 s)",
        "sample rate changed from 16000 to 48000 Hz",
        "chunk at 48000 Hz resampled to 16000 Hz",
        "2-channel chunk down-mixed to mono",
        "1601 interleaved samples are not a whole number of 2-channel frames",
        "0.40 s of user audio missing (gap or stream stopped): padded with silence",
        "100 ms already received dropped (duplicate; the first copy is kept)",
        "arrived out of order",
        "a chunk stamped +999.",
        "was dropped (100 ms; lone far-future",
        "the audio clock jumped by +10",
        "clock resynchronised, policy history reset",
        "ms dropped: late, its turns were already processed",
    ]:
        assert log.count(text) == 1, (text, log)
    assert "Traceback" not in log
