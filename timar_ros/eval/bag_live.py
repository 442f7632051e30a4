"""``timar bag evaluate --live``: a bag replayed through the real nodes over DDS (the one part of
bag evaluation that needs ROS): bag_player with /clock -> conversation_policy (and optionally
head_retargeter) on sim time -> bag_recorder, composed in one process; the produced turns are
read back from the recording (:func:`timar_ros.eval.bag_records.turns_from_recording`)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from timar_ros import topics
from timar_ros.eval.bag_records import BagInputs, EvalRun, turns_from_recording
from timar_ros.motion import FPS


def run_live(
    inputs: BagInputs,
    params: dict,
    out: Path,
    rate: float = 1.0,
    retargeter: bool = False,
    timeout_s: float | None = None,
    log=print,
) -> EvalRun:
    """Replay the bag through the composed nodes over DDS and read the outputs back.

    The nodes get their own rclpy context, so this can run inside a process that uses rclpy.
    Returns when every expected turn's ConversationState is recorded, or at the timeout."""
    from timar_ros.nodes.bag_player import BagPlayer
    from timar_ros.nodes.bag_recorder import BagRecorder
    from timar_ros.nodes.compose import RosSession
    from timar_ros.nodes.conversation_policy import ConversationPolicy

    ns = inputs.namespace
    rec_path = out / "recorded"
    played = [topics.resolve(topics.USER_AUDIO, ns), topics.resolve(topics.AGENT_AUDIO, ns)]
    if topics.resolve(topics.USER_MOTION, ns) in inputs.topics:
        played.append(topics.resolve(topics.USER_MOTION, ns))
    recorded = [topics.HEAD_MOTION, topics.CONVERSATION_STATE] + (
        [topics.JOINT_STATES] if retargeter else []
    )
    t0 = time.perf_counter()
    with RosSession() as ros:  # its own context; the recorder finishes its bag when it closes
        policy = ros.add(
            ConversationPolicy,
            namespace=ns,
            spin=False,
            use_sim_time=True,
            **{**params, "audio_qos": "reliable"},
        )
        # A first step pays one-time costs (allocations, kernel selection) that would stall the
        # node while the replay's clock runs on: take it now, then start from a clean stream.
        silence = np.zeros(policy.policy.samples_per_turn, np.float32)
        policy.policy.step(silence, silence, None)
        policy.pipeline.reset()
        ros.spin(policy)
        recorder = ros.add(
            BagRecorder,
            namespace=ns,
            use_sim_time=True,
            output=str(rec_path),
            overwrite=True,
            topics=recorded,
        )
        if retargeter:
            from timar_ros.nodes.head_retargeter import HeadRetargeter

            ros.add(HeadRetargeter, namespace=ns, use_sim_time=True, command_interface="none")
        # The recorder must hear the first turn: wait for discovery before playing.
        outs = [
            policy.resolve_topic_name(t) for t in (topics.HEAD_MOTION, topics.CONVERSATION_STATE)
        ]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(
            policy.count_subscribers(t) >= 1 for t in outs
        ):
            time.sleep(0.02)
        player = ros.add(
            BagPlayer,
            namespace=ns,
            bag=str(inputs.path),
            rate=float(rate),
            publish_clock=True,
            wait_for_subscribers=1,
            start_delay_s=0.2,
            topics=played,
        )
        turn_s = policy.policy.frames_per_turn / FPS
        expected = inputs.expected_turns(turn_s)
        span = inputs.audio_end_s - inputs.audio_start_s
        limit = timeout_s if timeout_s is not None else 60.0 + 3.0 * span / rate
        deadline = time.monotonic() + limit
        state_topic = outs[1]
        while time.monotonic() < deadline:
            if (
                player.done
                and policy.turns >= expected
                and recorder.counts.get(state_topic, 0) >= policy.turns
            ):
                break
            time.sleep(0.05)
        else:
            log(
                f"live: timed out after {limit:.0f} s with {policy.turns}/{expected} turns "
                f"(player done: {player.done}); evaluating what was recorded"
            )
        time.sleep(0.2)  # the last messages reach the recorder's callbacks
        extra = {
            "segmenter": policy.pipeline.segmenter.counters.as_dict(),
            "pipeline": dict(policy.pipeline.counters),
            "expected_turns": expected,
            "recorded": dict(recorder.counts),
            "rate": rate,
            "recording": str(rec_path),
        }
        model_id, backend = policy.policy.model_id, policy.backend
    turns = turns_from_recording(rec_path, ns)
    return EvalRun("live", turns, model_id, backend, time.perf_counter() - t0, extra)
