"""`timar bag evaluate BAG [--live]`: the pipeline's head motion on a recorded conversation, scored
against the bag's ground truth with the DualTalk metrics.

The bag holds both speakers' audio (``<ns>/user/audio``, ``<ns>/agent/audio``), optionally the
partner's tracked motion (``<ns>/user/motion``) and the agent's ground-truth motion
(``<ns>/ground_truth/head_motion``), as written by ``timar bag from-dualtalk`` or recorded on a
robot.

Two modes produce the motion:

- **offline** (default, no ROS needed): the bag's messages are pushed, in log-time order, through
  :class:`~timar_ros.robot.conversation.ConversationPipeline` exactly as the ``conversation_policy``
  node does on sim time (``push_audio`` with the receive clock = log time, ``note_time``, ``poll``
  after every message, user motion as it arrives), then ``flush`` for the open turns at the end.
- **live** (``--live``): the real nodes, composed in one process over DDS: ``bag_player`` replays
  the inputs with ``/clock`` (``publish_clock``, ``wait_for_subscribers``), ``conversation_policy``
  (and optionally ``head_retargeter``) run on sim time, ``bag_recorder`` records the outputs; the
  produced HeadMotion and ConversationState are read back from the recorded bag.

Both give per-turn records (turn index, start stamp, motion [F, 56] or None when skipped, latency,
deadline missed, padded audio). The prediction is laid out on the audio clock: turn k's frames go to
frame ``round((turn_start_k - ref_start) * fps)``, with ``ref_start`` the ground truth's first
stamp (the first turn's start without ground truth); frames no turn produced hold the nearest
produced frame (counted as ``unfilled_frames``). With ground truth and partner motion the DualTalk
metrics (:func:`timar_ros.eval.metrics.file_metrics`, same name and seed as ``timar metrics``) are
computed; the report (``report.json``, ``report.md``), a plot (``motion.png``: jaw, head
yaw/pitch/roll, two expression coefficients, produced vs ground truth) and the prediction
(``predictions/<name>.npy``, usable with ``timar metrics``) go to the output folder.

The policy is deterministic given the checkpoint, the seed and the turn index (its noise is a
function of (seed, turn)), and turns are cut by the audio stamps, so the two modes agree exactly
when the live replay loses nothing (see the tests).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from timar_ros import bags as B
from timar_ros import topics
from timar_ros.eval.bag_report import assemble, build_report, markdown, plot_motion, score
from timar_ros.files import save_array, write_json, write_text_atomic
from timar_ros.robot.conversation import PipelineConfig
from timar_ros.robot.policy_setup import load_policy, resolve_checkpoint

NODE = "conversation_policy"


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


@dataclass
class BagInputs:
    """What a bag gives the evaluation. ``events`` are (log_time_ns, kind, record) in log-time
    order, kind ``"user"``/``"agent"`` (AudioRecord) or ``"motion"`` (MotionRecord)."""

    path: Path
    name: str
    namespace: str
    events: list
    gt: np.ndarray | None  # [T, 56] ground-truth agent motion
    gt_start_s: float | None
    anchor: np.ndarray | None  # [T, 56] the partner's motion (DualTalk anchor)
    audio_start_s: float
    audio_end_s: float
    topics: dict

    def expected_turns(self, turn_s: float) -> int:
        """Turns a segmenter starting at the first chunk emits for all of the audio."""
        return int(math.ceil((self.audio_end_s - self.audio_start_s) / turn_s - 1e-9))


def detect_namespace(types: dict) -> str:
    """The namespace of the bag's ``user/audio`` topic ('' = root). BagError when absent."""
    suffix = "/" + topics.USER_AUDIO
    found = [t for t in types if t.endswith(suffix) or t == topics.USER_AUDIO]
    if not found:
        have = ", ".join(sorted(types)) or "no topics"
        raise B.BagError(
            f"no <namespace>/{topics.USER_AUDIO} topic in the bag (it has: {have}); "
            "evaluation needs both speakers' audio. Convert DualTalk data with "
            "`timar bag from-dualtalk`, or record user/audio and agent/audio"
        )
    if len(found) > 1:
        raise B.BagError(f"several user audio topics ({', '.join(found)}): pass --namespace")
    return found[0][: -len(suffix)].strip("/")


def read_inputs(bag, namespace: str | None = None) -> BagInputs:
    """Read the audio, partner motion and ground truth of a bag (see :class:`BagInputs`)."""
    with B.BagReader(bag) as r:
        types = {k: v.msgtype for k, v in r.topics.items()}
        ns = detect_namespace(types) if namespace is None else namespace.strip("/")
        name_of = lambda rel: topics.resolve(rel, ns)  # noqa: E731
        ua, aa = name_of(topics.USER_AUDIO), name_of(topics.AGENT_AUDIO)
        um, gt_t = name_of(topics.USER_MOTION), name_of(topics.GROUND_TRUTH_MOTION)
        for t in (ua, aa):
            r.check_topic(t, B.AUDIO_CHUNK)  # clear error naming the bag and what it has
        wanted = [ua, aa] + ([um] if um in types else [])
        kinds = {ua: "user", aa: "agent", um: "motion"}
        events = [
            (t_ns, kinds[topic], B.to_record(msg)) for topic, _, t_ns, msg in r.messages(wanted)
        ]
        gt_recs = r.records(gt_t, B.HEAD_MOTION) if gt_t in types else []
        custom = r.custom_data
        path = r.path
    audio = [rec for _, k, rec in events if k != "motion"]
    if not audio:
        raise B.BagError(f"{path}: the audio topics {ua} and {aa} have no messages")
    start = min(a.stamp_s for a in audio)
    end = max(a.stamp_s + len(a.samples) / max(a.channels, 1) / a.sample_rate for a in audio)
    gt = gt_start = anchor = None
    if gt_recs:
        gt, _, g0 = B.concat_motion(gt_recs, path=path)
        gt_start = g0 * 1e-9
    mrecs = [rec for _, k, rec in events if k == "motion"]
    if mrecs:
        anchor, _, _ = B.concat_motion(mrecs, path=path)
    if "timar.clip" in custom and "timar.agent" in custom:  # the DualTalk file name of the agent
        name = f"{custom['timar.clip']}_{custom['timar.agent']}"
    else:
        name = path.name
    return BagInputs(path, name, ns, events, gt, gt_start, anchor, start, end, types)


# --------------------------------------------------------------------------------------------
# Policy and pipeline settings: the node's parameters (defaults from config/timar.yaml)
# --------------------------------------------------------------------------------------------


def policy_params(overrides: dict | None = None) -> dict:
    """``conversation_policy``'s parameters: config/timar.yaml's defaults + ``overrides``."""
    from timar_ros.resources import node_defaults

    p = node_defaults(NODE)
    unknown = set(overrides or {}) - set(p)
    if unknown:
        raise ValueError(f"{NODE} has no parameter(s) {sorted(unknown)}; it has {sorted(p)}")
    p.update(overrides or {})
    return p


CHECKPOINT_HINT = "pass --checkpoint"


# --------------------------------------------------------------------------------------------
# Per-turn records (both modes)
# --------------------------------------------------------------------------------------------


@dataclass
class TurnRecord:
    index: int
    start_s: float  # turn start on the audio clock
    motion: np.ndarray | None  # [F, 56]; None = skipped (policy error) or not received
    latency_ms: float = float("nan")
    deadline_missed: bool = False
    user_padded_s: float = 0.0
    agent_padded_s: float = 0.0
    error: str | None = None
    user_speaking: bool | None = None  # the policy's flags (None: not known)
    agent_speaking: bool | None = None

    @property
    def padded(self) -> bool:
        return self.user_padded_s > 0 or self.agent_padded_s > 0

    def summary(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "motion"}
        d["produced"] = self.motion is not None
        d["latency_ms"] = None if not math.isfinite(self.latency_ms) else round(self.latency_ms, 3)
        return d


@dataclass
class EvalRun:
    mode: str
    turns: list  # TurnRecord, by index
    model_id: str
    backend: str
    wall_s: float
    extra: dict = field(default_factory=dict)


def _stamp_s(ns: int) -> float:
    """A header stamp in seconds computed as the node does (sec + nanosec * 1e-9), so that
    offline and live see bit-identical stamps."""
    return ns // 1_000_000_000 + (ns % 1_000_000_000) * 1e-9


def run_offline(inputs: BagInputs, params: dict, log=print) -> EvalRun:
    """Feed the bag through ConversationPipeline as the node does on sim time (see the module
    docstring) and collect every turn."""
    from timar_ros.robot.conversation import ConversationPipeline

    t0 = time.perf_counter()
    policy, backend, note = load_policy(params, CHECKPOINT_HINT)
    if note:
        log(note)
    pipe = ConversationPipeline(policy, PipelineConfig.from_params(params))
    results = []
    for t_ns, kind, rec in inputs.events:
        now = t_ns * 1e-9  # the node's clock on /clock = the bag's log time
        stamp = _stamp_s(rec.stamp_ns)
        if kind == "motion":
            pipe.push_user_motion(stamp, rec.frame_period, rec.motion)
        else:
            results += pipe.push_audio(
                kind,
                stamp,
                rec.samples,
                rec.sample_rate,
                channels=rec.channels,
                seq=rec.seq,
                now_s=now,
            )
            pipe.note_time(now)
        results += pipe.poll(now)
    results += pipe.flush()
    turns = [
        TurnRecord(
            r.turn.index,
            r.turn.start_s,
            r.motion,
            r.latency_ms,
            r.deadline_missed,
            r.turn.user_padded_s,
            r.turn.agent_padded_s,
            r.error,
            r.user_speaking,
            r.agent_speaking,
        )
        for r in results
    ]
    return EvalRun(
        "offline",
        turns,
        policy.model_id,
        backend,
        time.perf_counter() - t0,
        {"segmenter": pipe.segmenter.counters.as_dict(), "pipeline": dict(pipe.counters)},
    )


def turns_from_recording(path, namespace: str) -> list[TurnRecord]:
    """Turn records from a recorded bag's HeadMotion and ConversationState (live mode).

    The turn start is the ConversationState stamp; a turn with a state but no HeadMotion was
    skipped (its state's ``skipped_turns`` counts it)."""
    hm, cs = (
        topics.resolve(topics.HEAD_MOTION, namespace),
        topics.resolve(topics.CONVERSATION_STATE, namespace),
    )
    with B.BagReader(path) as r:
        have = r.topics
        blocks = r.records(hm, B.HEAD_MOTION) if hm in have else []
        states = r.records(cs, B.CONVERSATION_STATE) if cs in have else []
    # a turn streamed inside the turn comes as blocks (one per tick): the turn's motion is its
    # blocks in frame order
    by_turn: dict[int, list] = {}
    for m in blocks:
        by_turn.setdefault(m.turn_index, []).append(m)
    motions = {
        k: np.concatenate([b.motion for b in sorted(v, key=lambda b: b.first_frame)], 0)
        for k, v in by_turn.items()
    }
    if not states:
        raise B.BagError(
            f"{path}: the recording has no {cs} messages: the policy produced no "
            "turn (see its log: checkpoint, audio topics, namespace)"
        )
    out, prev_skipped = [], 0
    for s in sorted(states, key=lambda d: d["turn_index"]):
        m = motions.get(s["turn_index"])
        skipped = int(s["skipped_turns"]) > prev_skipped
        prev_skipped = int(s["skipped_turns"])
        out.append(
            TurnRecord(
                int(s["turn_index"]),
                s["stamp_ns"] * 1e-9,
                m,
                float(s["policy_latency_ms"]),
                bool(s["deadline_missed"]),
                float(s["user_padded_s"]),
                float(s["agent_padded_s"]),
                "skipped by the policy (see its log)"
                if skipped
                else (None if m is not None else "HeadMotion not recorded"),
                bool(s["user_speaking"]),
                bool(s["agent_speaking"]),
            )
        )
    return out


def evaluate_bag(
    bag,
    out,
    *,
    live: bool = False,
    checkpoint: str = "",
    seed: int = 0,
    rate: float = 1.0,
    backend: str = "torch",
    namespace: str | None = None,
    params: dict | None = None,
    metrics_seed: int = 0,
    retargeter: bool = False,
    plot: bool = True,
    log=print,
) -> dict:
    """Evaluate one bag (see the module docstring); writes OUT/{report.json, report.md,
    motion.png, predictions/<name>.npy} (+ OUT/recorded in live mode). Returns the report."""
    out = Path(out)
    inputs = read_inputs(bag, namespace)
    p = policy_params(
        {
            **(params or {}),
            "checkpoint": str(checkpoint or ""),
            "seed": int(seed),
            "backend": backend,
        }
    )
    checkpoint = resolve_checkpoint(p["checkpoint"], CHECKPOINT_HINT)  # fail before any work
    out.mkdir(parents=True, exist_ok=True)
    if live:
        from timar_ros.eval.bag_live import run_live

        run = run_live(inputs, p, out, rate=rate, retargeter=retargeter, log=log)
    else:
        run = run_offline(inputs, p, log=log)
    ref = (
        inputs.gt_start_s
        if inputs.gt_start_s is not None
        else (min(t.start_s for t in run.turns) if run.turns else inputs.audio_start_s)
    )
    pred, unfilled = assemble(run.turns, ref)
    metrics, note = score(inputs, pred, metrics_seed)
    pred_path = out / "predictions" / f"{inputs.name}.npy"
    pred_path.parent.mkdir(parents=True, exist_ok=True)
    save_array(pred_path, pred)
    report = build_report(inputs, run, p, pred, unfilled, metrics, note, metrics_seed, checkpoint)
    report["predictions"] = str(pred_path)
    if plot and len(pred):
        report["plot"] = str(
            plot_motion(
                pred, inputs.gt, out / "motion.png", f"{inputs.name} ({run.mode}, {run.model_id})"
            )
        )
    write_json(out / "report.json", report)
    write_text_atomic(out / "report.md", markdown(report))
    return report
