"""conversation_policy: audio of both speakers in, blocks of head motion out.

Subscribes the partner's audio (user/audio), the robot's own speech (agent/audio) and, optionally,
the partner's tracked motion (user/motion); cuts aligned turns on the audio clock, runs the
streaming TIMAR policy on the turn in progress every ``tick_s`` (or once per completed turn,
``tick_s`` = 1) and publishes a HeadMotion block per tick (head_motion), ConversationState per
turn (conversation_state), the head orientation per frame as QuaternionStamped (head_orientation,
REP-103), its display delay (display_delay, latched: voice_player's lead) and diagnostics.
The work is done by timar_ros.robot.conversation.ConversationPipeline.

Faults (bad audio, gaps, clock jumps, failed or late policy steps) are logged once per kind per
``fault_log_period_s`` with what was done and how much, and counted: totals in ConversationState
(dropped_audio_s, late/duplicate/invalid chunks, skipped_turns, deadline_missed) and every counter
by name in /diagnostics. Start-up problems (missing, truncated or mismatched checkpoint, bad
parameters) end the process with exit code 2 and a message naming the file and the fix.
"""

from __future__ import annotations

import sys
import time
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import QuaternionStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64

from timar_ros import topics
from timar_ros.motion import FPS, ROT
from timar_ros.msg import AudioChunk, ConversationState, HeadMotion
from timar_ros.nodes.convert import (
    audio_buffer,
    diagnostic_array,
    head_motion,
    motion_frames,
    s_to_stamp,
    stamp_to_s,
)
from timar_ros.nodes.fault_log import PERIOD_DESCRIPTION, PERIOD_PARAM, NodeFaultLog
from timar_ros.nodes.params import Param, declare
from timar_ros.nodes.qos import AUDIO_QOS, AUDIO_QOS_DESCRIPTION, audio_qos
from timar_ros.nodes.runner import run_node
from timar_ros.robot.chunk_input import WRONG_RATE_ACTIONS
from timar_ros.robot.conversation import (
    ConversationPipeline,
    MotionBlock,
    PipelineConfig,
    TurnResult,
)
from timar_ros.robot.faults import Fault
from timar_ros.robot.policy_setup import BACKENDS, load_policy
from timar_ros.robot.rotations import flame_to_rep103_quaternion
from timar_ros.robot.status import policy_status

NAME = "conversation_policy"
PARAMS = {
    "checkpoint": Param(
        "checkpoint folder (model.safetensors + config.json); '' = the bundled model"
    ),
    "backend": Param(
        "policy backend: 'torch' or 'onnx'; 'auto' = onnx when an export exists, else torch",
        choices=BACKENDS,
    ),
    "device": Param("torch device, e.g. 'cpu' or 'cuda'"),
    "onnx_threads": Param(
        "onnxruntime intra-op threads of the onnx backend; 0 = its default (2, or fewer cores)",
        0,
        256,
    ),
    "seed": Param("seed of the diffusion sampling noise (same seed + same audio = same motion)"),
    "kv_cache": Param(
        "reuse past turns' keys/values (exact; off = re-encode the window every turn; a "
        "reference-compatible model with absolute positions always re-encodes)"
    ),
    "audio_norm": Param(
        "waveform normalisation before the speech encoder: 'running' (causal, for live audio), "
        "'chunk', 'none'; '' = the checkpoint's ('file' needs whole files: offline only)",
        choices=("", "none", "chunk", "running"),
    ),
    "context_turns": Param(
        "-1 = stream the full history (each layer attends the model's window - 1 past turns); "
        "n >= 0 = see only the inputs of the last n turns (the reference's crop; a turn then "
        "costs about n + 1 streamed turns)",
        -1,
        64,
    ),
    "noise_tau_s": Param(
        "time constant of the sampling noise's correlation over frames (s; smooth motion); "
        "-1 = the checkpoint's, 0 = independent per frame",
        -1.0,
        10.0,
    ),
    "noise_hold_exp": Param(
        "share of the expression's sampling noise held for the whole conversation (the face's "
        "own baseline stays put); -1 = the checkpoint's",
        -1.0,
        0.99,
    ),
    "temperature": Param(
        "scale of the diffusion sampler's step noise; -1 = the checkpoint's", -1.0, 10.0
    ),
    "guidance_scale": Param(
        "classifier-free guidance scale (1 = off, the published setting; above 1 the motion "
        "follows the partner's current turn more, at twice the compute); -1 = the checkpoint's",
        -1.0,
        10.0,
    ),
    "guidance_every": Param(
        "with guidance, inside the turn: the pass without the partner runs at a turn's first "
        "tick and every guidance_every-th after it, the ticks between reuse it (1 = every "
        "tick; 2 saves a sixth of the policy's CPU, for a little more pose jitter); -1 = the "
        "checkpoint's",
        -1,
        1000,
    ),
    "num_sampling_steps": Param("diffusion sampling steps per turn", 1, 1000),
    "tick_s": Param(
        "streaming inside the turn: a block of motion every tick_s of the partner's audio (s, a "
        "multiple of 0.04); the turn's length (1.0) = the 1-s mode, one block per turn",
        0.04,
        10.0,
    ),
    "lookahead_s": Param(
        "partner audio heard beyond a block before it is computed (s, a multiple of 0.04)",
        0.0,
        2.0,
    ),
    "latency_margin_s": Param(
        "display delay beyond tick_s + lookahead_s (s): the audio chunk that completes a tick "
        "arriving, and the policy's compute",
        0.0,
        10.0,
    ),
    "display_delay_s": Param(
        "a frame is shown this long after its audio time (s); -1 = tick_s + lookahead_s + "
        "latency_margin_s. Published on the latched display_delay topic (voice_player's lead)",
        -1.0,
        30.0,
    ),
    "agent_audio_heard": Param(
        "agent/audio is stamped with the time the robot's speech is heard (voice_player): take "
        "it display_delay_s early into the turns, so its motion frames are due when it is heard"
    ),
    "deadline_ms": Param(
        "a step slower than this is reported as a deadline miss (ms)", 1.0, 60000.0
    ),
    "speaking_threshold": Param(
        "voiced fraction of a turn above which a speaker counts as speaking", 0.0, 1.0
    ),
    "vad_aggressiveness": Param("webrtcvad aggressiveness 0 (least) .. 3 (most)", 0, 3),
    "use_user_motion": Param(
        "feed the partner's tracked motion (user/motion) to the policy when present"
    ),
    "on_wrong_rate": Param(
        "audio not at 16 kHz: 'resample' or 'reject'", choices=WRONG_RATE_ACTIONS
    ),
    "max_latency_s": Param(
        "a turn still incomplete this long after its end is padded with silence (s)", 0.0, 10.0
    ),
    "max_jump_s": Param("audio stamps jumping by more than this are a clock jump (s)", 0.1, 3600.0),
    "audio_qos": Param(AUDIO_QOS_DESCRIPTION, choices=AUDIO_QOS),
    "poll_period_s": Param(
        "how often to check for turns whose audio stopped arriving (s)", 0.005, 1.0
    ),
    "motion_frame_id": Param("frame_id of published HeadMotion (the FLAME head frame)"),
    "orientation_frame_id": Param("frame_id of the published head orientation (REP-103 neck base)"),
    "diagnostics_period_s": Param("period of the /diagnostics status (s)", 0.1, 60.0),
    PERIOD_PARAM: Param(PERIOD_DESCRIPTION, 0.0, 3600.0),
}


class ConversationPolicy(Node):
    def __init__(self, **kwargs):
        super().__init__(NAME, **kwargs)
        p = declare(self, NAME, PARAMS)
        self._p = p
        self.policy, self.backend, note = load_policy(p)
        if note:
            self.get_logger().warning(note)
        try:
            self.pipeline = ConversationPipeline(self.policy, PipelineConfig.from_params(p))
        except ValueError as exc:
            raise RuntimeError(f"{NAME}: {exc}") from exc
        qos = audio_qos(p["audio_qos"])
        self.create_subscription(
            AudioChunk, topics.USER_AUDIO, lambda m: self._on_audio("user", m), qos
        )
        self.create_subscription(
            AudioChunk, topics.AGENT_AUDIO, lambda m: self._on_audio("agent", m), qos
        )
        self.create_subscription(HeadMotion, topics.USER_MOTION, self._on_user_motion, 10)
        commands = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._motion_pub = self.create_publisher(HeadMotion, topics.HEAD_MOTION, commands)
        self._state_pub = self.create_publisher(
            ConversationState, topics.CONVERSATION_STATE, commands
        )
        self._orientation_pub = self.create_publisher(
            QuaternionStamped, topics.HEAD_ORIENTATION, 100
        )
        self._diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, 10)
        # latched, so that voice_player (lead_s = -1) holds the robot's voice back by exactly
        # the delay its mouth is shown with, whenever either node starts
        latched = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self._delay_pub = self.create_publisher(Float64, topics.DISPLAY_DELAY, latched)
        self._delay_pub.publish(Float64(data=float(self.pipeline.config.display_delay_s)))
        self.create_timer(float(p["poll_period_s"]), self._poll)
        self.create_timer(float(p["diagnostics_period_s"]), self._publish_diagnostics)
        self.turns = 0
        self.latencies_ms: deque[float] = deque(maxlen=1000)  # policy, per turn
        self.tick_ms: deque[float] = deque(maxlen=1000)  # policy, per block
        self.e2e_ms: deque[float] = deque(maxlen=1000)  # completing chunk arrival -> HeadMotion out
        self._malformed_user_motion = 0
        self._fault_log = NodeFaultLog(self.get_logger(), float(p[PERIOD_PARAM]))
        self.get_logger().info(
            f"policy {self.policy.model_id} ({self.backend}, {self.policy.frames_per_turn} frames "
            f"per turn, kv_cache={self.policy.kv_cache}, audio_norm={self.policy.audio_norm}); "
            f"a block every {self.pipeline.schedule.tick_s:g} s, shown "
            f"{self.pipeline.config.display_delay_s:g} s after its audio"
        )
        if getattr(self.policy, "cache_note", None):
            self.get_logger().info(self.policy.cache_note)

    # -- inputs
    def _on_audio(self, stream: str, msg: AudioChunk) -> None:
        arrival = time.perf_counter()
        # The interleaved buffer as sent: the segmenter down-mixes (and counts) stereo, and drops
        # (and counts) a buffer that is not a whole number of frames.
        samples, channels = audio_buffer(msg)
        results = self.pipeline.push_audio(
            stream,
            stamp_to_s(msg.header.stamp),
            samples,
            int(msg.sample_rate),
            channels=channels,
            seq=int(msg.seq),
            now_s=self.get_clock().now().nanoseconds * 1e-9,
        )
        self._publish(results, arrival)
        self.pipeline.note_time(self.get_clock().now().nanoseconds * 1e-9)

    def _log_faults(self) -> None:
        for fault in self.pipeline.take_faults():
            self._fault_log(fault)

    def _on_user_motion(self, msg: HeadMotion) -> None:
        try:
            frames = motion_frames(msg)
        except ValueError as exc:
            self._malformed_user_motion += 1
            self._fault_log(
                Fault(
                    "malformed_user_motion",
                    f"{topics.USER_MOTION} turn {msg.turn_index}: "
                    f"malformed HeadMotion ignored: {exc}",
                )
            )
            return
        self.pipeline.push_user_motion(
            stamp_to_s(msg.header.stamp), float(msg.frame_period), frames
        )

    def _poll(self) -> None:
        arrival = time.perf_counter()
        self._publish(self.pipeline.poll(self.get_clock().now().nanoseconds * 1e-9), arrival)

    # -- outputs
    def _publish(self, results: list[TurnResult], arrival: float) -> None:
        self._log_faults()  # the pipeline describes each fault (with context) as it happens
        for b in self.pipeline.take_blocks():
            self._motion_pub.publish(
                head_motion(
                    b.motion,
                    b.display_stamp_s,
                    b.turn_index,
                    self.policy.model_id,
                    frame_id=self._p["motion_frame_id"],
                    first_frame=b.first_frame,
                )
            )
            self._publish_orientation(b)
            self.tick_ms.append(b.latency_ms)
            self.e2e_ms.append((time.perf_counter() - arrival) * 1e3)
        for r in results:
            self.turns += 1
            self.latencies_ms.append(r.latency_ms)
            self._state_pub.publish(self._state(r))

    def _publish_orientation(self, b: MotionBlock) -> None:
        quats = flame_to_rep103_quaternion(b.motion[:, ROT].astype(np.float64))
        period = 1.0 / FPS
        for i, q in enumerate(quats):
            msg = QuaternionStamped()
            s_to_stamp(b.display_stamp_s + i * period, msg.header.stamp)
            msg.header.frame_id = self._p["orientation_frame_id"]
            msg.quaternion.x, msg.quaternion.y, msg.quaternion.z, msg.quaternion.w = (
                float(v) for v in q
            )
            self._orientation_pub.publish(msg)

    def _state(self, r: TurnResult) -> ConversationState:
        c = r.counters
        msg = ConversationState(
            turn_index=r.turn.index,
            turn_duration=r.turn.duration_s,
            user_voice_fraction=float(r.user_voice_fraction),
            agent_voice_fraction=float(r.agent_voice_fraction),
            user_speaking=bool(r.user_speaking),
            agent_speaking=bool(r.agent_speaking),
            history_turns=r.history_turns,
            policy_latency_ms=float(r.latency_ms),
            deadline_missed=bool(r.deadline_missed),
            user_padded_s=float(r.turn.user_padded_s),
            agent_padded_s=float(r.turn.agent_padded_s),
            dropped_audio_s=float(c.dropped_audio_s),
            late_chunks=c.late_chunks,
            duplicate_chunks=c.duplicate_chunks,
            invalid_chunks=c.invalid_chunks,
            skipped_turns=r.skipped_turns,
        )
        s_to_stamp(max(r.turn.start_s, 0.0), msg.header.stamp)
        return msg

    def _publish_diagnostics(self) -> None:
        status = policy_status(
            self.pipeline,
            self.turns,
            self.backend,
            self.latencies_ms,
            self.e2e_ms,
            self._p["deadline_ms"],
            extra={"malformed_user_motion": self._malformed_user_motion},
            logged=self._fault_log.counts,
            tick_ms=self.tick_ms,
        )
        self._diag_pub.publish(
            diagnostic_array(
                status,
                f"{self.get_name()}: policy",
                self.policy.model_id,
                self.get_clock().now().to_msg(),
            )
        )


def main(args=None) -> int:
    # a missing/truncated/mismatched checkpoint or bad parameters: exit 2 with the message
    return run_node(
        ConversationPolicy, NAME, args, setup_errors=(RuntimeError,)
    )  # e.g. onnxruntime refusing a graph


if __name__ == "__main__":
    sys.exit(main())
