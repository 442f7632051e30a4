"""A long synthetic conversation through the composed pipeline (`timar soak`), faster than real
time, to show that nothing is lost and memory stays flat.

One process holds conversation_policy and head_retargeter (the node classes `ros2 launch`
starts) on simulated time, and a feeder node that publishes /clock and both speakers' audio
(procedural voices from timar_ros.data.synthetic, one fresh minute at a time, in 0.1-s chunks)
through DDS. Simulated time runs ``--rate`` times faster than the wall clock, but the simulated
clock never passes a turn's end + ``SLACK_S`` before that turn's motion is back: in simulated time
the policy is never late (the retargeter plays every frame, as on a robot whose CPU keeps up),
on a slow CPU the soak slows down instead of overflowing queues, and every lost turn is a real
loss. (The policy's wall-clock step time is what ``p50_ms_turn``/``p99_ms_turn`` report.)

Reported (JSON): ``turns`` (HeadMotion messages received), ``expected_turns`` (audio seconds /
turn length), ``dropped_turns`` (expected - received; must be 0), ``skipped_turns``,
``deadline_misses``, ``rss_growth_mb`` (process RSS at the end minus after the warm-up minute),
``p50_ms_turn`` / ``p99_ms_turn`` (policy step), ``per_minute`` (turns, p50/p99 and RSS per minute
of audio), ``joint_limit_violations`` (joint commands outside the configured limits), the
segmenter counters, the achieved speed and the checkpoint used.
"""

from __future__ import annotations

import resource
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

CHUNK_S = 0.1
SIM_START_S = 1000.0  # simulated clock at the first sample (non-zero: 0 means "no clock yet")
SLACK_S = 0.1  # simulated time a turn's motion may take after the turn's audio is complete
# (< display_delay_s - turn length = 0.25 s, so the motion reaches the retargeter before it is due)


def rss_mb() -> float:
    """Resident set size of this process (MiB), from /proc (falls back to the peak)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_soak(
    minutes: float,
    rate: float = 20.0,
    checkpoint: str | None = None,
    seed: int = 0,
    backend: str = "torch",
    log=print,
) -> dict:
    """Run the soak; returns the report (see the module docstring). Its scratch folder (a
    random checkpoint when none is bundled) is removed when it returns or fails."""
    if not (minutes > 0 and rate > 0):
        raise ValueError(f"--minutes and --rate must be > 0, got {minutes:g} and {rate:g}")
    with tempfile.TemporaryDirectory(prefix="timar-soak-") as scratch:
        return _soak(minutes, rate, checkpoint, seed, backend, log, Path(scratch))


def _soak(
    minutes: float, rate: float, checkpoint: str | None, seed: int, backend: str, log, scratch: Path
) -> dict:
    from timar_ros.data.synthetic import SyntheticConfig
    from timar_ros.nodes.compose import RosSession  # DDS on loopback (see the README, "Networking")
    from timar_ros.resources import config_path
    from timar_ros.runtime.checkpoint import checkpoint_or_random

    ckpt, note = checkpoint_or_random(checkpoint, "robot", scratch)
    log(
        f"soak: {minutes:g} min of synthetic conversation at up to {rate:g}x real time; "
        f"checkpoint {ckpt} ({note})"
    )
    syn = SyntheticConfig.from_yaml(config_path("synthetic.yaml"))
    syn.tts.mode = "off"  # procedural voices: no external TTS, deterministic
    rng = np.random.default_rng(seed)

    with RosSession() as ros:
        return _feed(ros, "soak", ckpt, note, backend, seed, minutes, rate, syn, rng, log)


def _feed(ros, ns, ckpt, note, backend, seed, minutes, rate, syn, rng, log) -> dict:
    """The soak proper, in ``ros`` (a RosSession): feed the audio, collect the report."""
    from functools import partial

    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import JointState

    from timar_ros import topics
    from timar_ros.data.synthetic import generate_conversation
    from timar_ros.msg import AudioChunk, ConversationState, HeadMotion
    from timar_ros.nodes.conversation_policy import ConversationPolicy
    from timar_ros.nodes.convert import audio_chunk, s_to_stamp
    from timar_ros.nodes.head_retargeter import HeadRetargeter

    policy = ros.add(
        ConversationPolicy,
        namespace=ns,
        spin=False,
        use_sim_time=True,
        checkpoint=str(ckpt),
        backend=backend,
        audio_qos="reliable",
        seed=seed,
        tick_s=1.0,  # the 1-s mode: a turn per HeadMotion (ticks cost 9x: `timar bench`)
    )
    retargeter = ros.add(HeadRetargeter, namespace=ns, spin=False, use_sim_time=True)
    feeder = ros.add(partial(Node, "soak_feeder"), namespace=ns, spin=False)
    reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    audio_pub = {
        s: feeder.create_publisher(AudioChunk, f"{s}/audio", reliable) for s in ("user", "agent")
    }
    clock_pub = feeder.create_publisher(Clock, "/clock", 10)
    lock = threading.Lock()
    got = {"motion": set(), "states": {}, "joint_msgs": 0, "violations": 0}
    lim = retargeter.player.config.limits()

    def on_motion(m):
        with lock:
            got["motion"].add(int(m.turn_index))

    def on_state(s):
        with lock:
            got["states"][int(s.turn_index)] = (
                float(s.policy_latency_ms),
                bool(s.deadline_missed),
                int(s.skipped_turns),
            )

    def on_joints(j):
        p = np.asarray(j.position)
        bad = bool(np.any(p < lim["min"] - 1e-9) or np.any(p > lim["max"] + 1e-9))
        with lock:
            got["joint_msgs"] += 1
            got["violations"] += int(bad)

    feeder.create_subscription(HeadMotion, topics.HEAD_MOTION, on_motion, reliable)
    feeder.create_subscription(ConversationState, topics.CONVERSATION_STATE, on_state, reliable)
    feeder.create_subscription(JointState, topics.JOINT_STATES, on_joints, reliable)
    for n in (policy, retargeter, feeder):
        ros.spin(n)

    def publish_clock(t: float) -> None:
        msg = Clock()
        s_to_stamp(t, msg.clock)
        clock_pub.publish(msg)

    def produced() -> int:
        with lock:
            return len(got["motion"]) + sum(
                1 for k, v in got["states"].items() if v[2] and k not in got["motion"]
            )

    # Wait until the policy's subscriptions are matched (discovery) before the first chunk.
    # (and the observer's, or the first turns' motion is missed by discovery, not by the pipeline)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        all(p.get_subscription_count() for p in audio_pub.values())
        and feeder.count_publishers(topics.HEAD_MOTION)
        and feeder.count_publishers(topics.CONVERSATION_STATE)
        and policy._motion_pub.get_subscription_count() >= 2
        and policy._state_pub.get_subscription_count()
    ):
        time.sleep(0.05)
    publish_clock(SIM_START_S)

    turn_s = policy.policy.frames_per_turn / 25.0
    per_turn = int(round(turn_s / CHUNK_S))
    chunk_n = int(round(CHUNK_S * 16000))
    total_turns = int(round(minutes * 60 / turn_s))
    per_minute, rss_warm = [], None
    rss_start = rss_mb()
    t_wall0 = time.monotonic()
    fed, seq, stall_s = 0, 0, 0.0
    minute_turns = int(round(60 / turn_s))
    audio, audio_pos = None, 0
    interrupted = None
    try:
        while fed < total_turns:
            if audio is None or audio_pos >= audio[0].size:
                conv = generate_conversation(syn, rng, duration_s=60.0)
                audio, audio_pos = conv.audio, 0
            for c in range(per_turn):
                stamp = SIM_START_S + fed * turn_s + c * CHUNK_S
                # the clock waits for the policy: turns ending before now - SLACK_S must be back
                need = int(np.floor((stamp + CHUNK_S - SIM_START_S - SLACK_S) / turn_s + 1e-9))
                t_wait = time.monotonic()
                while produced() < min(need, fed) and time.monotonic() - t_wait < 120:
                    time.sleep(0.001)
                stall_s += time.monotonic() - t_wait
                # pace simulated time at `rate` x the wall clock
                lag = (stamp - SIM_START_S) / rate - (time.monotonic() - t_wall0)
                if lag > 0:
                    time.sleep(lag)
                for k, stream in enumerate(("user", "agent")):
                    x = audio[k][audio_pos : audio_pos + chunk_n]
                    audio_pub[stream].publish(audio_chunk(x, 16000, stamp, stream, seq))
                seq += 1
                audio_pos += chunk_n
                publish_clock(stamp + CHUNK_S)
            fed += 1
            if fed % minute_turns == 0 or fed == total_turns:
                rss = rss_mb()
                with lock:
                    lat = [v[0] for k, v in got["states"].items() if k >= fed - minute_turns]
                per_minute.append(
                    {
                        "minute": len(per_minute) + 1,
                        "turns": len(lat),
                        "p50_ms": round(float(np.percentile(lat, 50)), 2) if lat else None,
                        "p99_ms": round(float(np.percentile(lat, 99)), 2) if lat else None,
                        "rss_mb": round(rss, 1),
                        "wall_s": round(time.monotonic() - t_wall0, 1),
                    }
                )
                if rss_warm is None:
                    rss_warm = rss
                log(
                    f"  minute {len(per_minute):3d}: {produced():5d}/{fed} turns, policy step p50 "
                    f"{per_minute[-1]['p50_ms']} ms p99 {per_minute[-1]['p99_ms']} ms, RSS "
                    f"{rss:.1f} MB"
                )
        # Let the last turns through, advancing the clock so the servo loop and deadlines run.
        deadline = time.monotonic() + 60
        while produced() < fed and time.monotonic() < deadline:
            time.sleep(0.01)  # the clock waits for the last turn too (its audio is complete)
        end = SIM_START_S + fed * turn_s
        for _ in range(
            int(3.0 / CHUNK_S)
        ):  # then 3 s more: the last frames play, the watchdog trips
            end += CHUNK_S
            publish_clock(end)
            time.sleep(CHUNK_S / rate)
    except (KeyboardInterrupt, Exception) as exc:  # noqa: BLE001 - report what ran so far
        interrupted = f"{type(exc).__name__}: {exc}"
        log(f"soak interrupted after {fed} turns: {interrupted}; writing a partial report")
    wall = time.monotonic() - t_wall0
    rss_end = rss_mb()
    ros.stop()
    with lock:
        states = dict(got["states"])
        motion = set(got["motion"])
        joint_msgs, violations = got["joint_msgs"], got["violations"]
    counters = policy.pipeline.segmenter.counters.as_dict()
    pipe = dict(policy.pipeline.counters)
    player = retargeter.player.counters.as_dict()

    lat = np.array([v[0] for v in states.values()]) if states else np.zeros(1)
    report = {
        "minutes": minutes,
        "rate": rate,
        "seed": seed,
        "checkpoint": str(ckpt),
        "checkpoint_note": note,
        "model_id": "",
        "interrupted": interrupted,
        "fed_turns": fed,
        "expected_turns": total_turns,
        "turns": len(motion),
        "states": len(states),
        "dropped_turns": fed - len(motion) if interrupted else total_turns - len(motion),
        "skipped_turns": max((v[2] for v in states.values()), default=0),
        "deadline_misses": int(sum(v[1] for v in states.values())),
        "rss_mb_start": round(rss_start, 1),
        "rss_mb_warm": round(rss_warm or rss_start, 1),
        "rss_mb_end": round(rss_end, 1),
        "rss_growth_mb": round(rss_end - (rss_warm or rss_start), 2),
        "p50_ms_turn": round(float(np.percentile(lat, 50)), 2),
        "p99_ms_turn": round(float(np.percentile(lat, 99)), 2),
        "max_ms_turn": round(float(lat.max()), 2),
        "wall_s": round(wall, 1),
        "speed_x_realtime": round(minutes * 60 / wall, 2),
        "clock_waited_for_policy_s": round(stall_s, 1),
        "joint_state_msgs": joint_msgs,
        "joint_limit_violations": violations,
        "segmenter": counters,
        "pipeline": pipe,
        "retargeter": player,
        "per_minute": per_minute,
    }
    from timar_ros.runtime.checkpoint import model_id

    report["model_id"] = model_id(ckpt)
    return report
