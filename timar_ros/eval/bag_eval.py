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

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from timar_ros import bags as B
from timar_ros import topics
from timar_ros.motion import EXP, FPS, JAW, MOTION_DIM, ROT
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
        motions = {m.turn_index: m for m in r.records(hm, B.HEAD_MOTION)} if hm in have else {}
        states = r.records(cs, B.CONVERSATION_STATE) if cs in have else []
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
                None if m is None else m.motion,
                float(s["policy_latency_ms"]),
                bool(s["deadline_missed"]),
                float(s["user_padded_s"]),
                float(s["agent_padded_s"]),
                "skipped by the policy (see its log)"
                if skipped
                else (None if m is not None else "HeadMotion not recorded"),
            )
        )
    return out


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


# --------------------------------------------------------------------------------------------
# Scoring and the report
# --------------------------------------------------------------------------------------------


def assemble(turns: list[TurnRecord], ref_start_s: float, fps: int = FPS) -> tuple[np.ndarray, int]:
    """Lay the turns' motion out on the audio clock: (prediction [T, 56], unfilled frames).

    Turn k's frames start at ``round((start_s - ref_start_s) * fps)``; frames no turn produced
    hold the nearest produced frame (before the first: the first produced frame)."""
    placed = [
        (int(round((t.start_s - ref_start_s) * fps)), t.motion)
        for t in turns
        if t.motion is not None
    ]
    if not placed:
        return np.zeros((0, MOTION_DIM), np.float32), 0
    total = max(off + len(m) for off, m in placed)
    pred = np.zeros((total, MOTION_DIM), np.float32)
    filled = np.zeros(total, bool)
    for off, m in placed:
        lo = max(off, 0)
        pred[lo : off + len(m)] = m[lo - off :]
        filled[lo : off + len(m)] = True
    first = int(np.argmax(filled))
    pred[:first] = pred[first]
    for i in range(first + 1, total):
        if not filled[i]:
            pred[i] = pred[i - 1]
    return pred, int((~filled).sum())


def score(inputs: BagInputs, pred: np.ndarray, seed: int = 0) -> tuple[dict | None, str]:
    """DualTalk metrics of ``pred`` vs the bag's ground truth (anchor: the partner's motion).

    Returns (metrics or None, a note saying what was scored or why not)."""
    from timar_ros.eval.metrics import file_metrics

    gt_topic = topics.resolve(topics.GROUND_TRUTH_MOTION, inputs.namespace)
    um_topic = topics.resolve(topics.USER_MOTION, inputs.namespace)
    if inputs.gt is None:
        return None, (
            f"metrics skipped: the bag has no ground truth ({gt_topic}); the prediction "
            "is still written"
        )
    if inputs.anchor is None:
        return None, (
            f"metrics skipped: the bag has no partner motion ({um_topic}), the anchor "
            "of P-FD and rPCC; the prediction is still written"
        )
    n = min(len(pred), len(inputs.gt), len(inputs.anchor))
    if n < 2:
        return None, f"metrics skipped: only {n} common frames of prediction and ground truth"
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # as `timar metrics`: BLAS threads change sqrtm in the last bits
        m = file_metrics(pred, inputs.gt, inputs.anchor, name=inputs.name, seed=seed)
    undefined = [k for k, v in m.items() if not math.isfinite(v)]
    return m, (
        f"{n} frames scored ({n / FPS:.2f} s): prediction, ground truth and partner motion "
        "cut to their common length"
        + (
            f"; undefined (a constant prediction, ground truth or partner motion): "
            f"{', '.join(undefined)}"
            if undefined
            else ""
        )
    )


def plot_motion(pred: np.ndarray, gt: np.ndarray | None, path: Path, title: str) -> Path:
    """Jaw opening, head yaw/pitch/roll (REP-103) and expression 0/1: produced vs ground truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from timar_ros.robot.rotations import flame_to_ypr

    def traces(m):
        ypr = flame_to_ypr(m[:, ROT].astype(np.float64)) if len(m) else np.zeros((0, 3))
        return [m[:, JAW][:, 0], ypr[:, 0], ypr[:, 1], ypr[:, 2], m[:, EXP][:, 0], m[:, EXP][:, 1]]

    labels = [
        "jaw opening (rad)",
        "head yaw (rad)",
        "head pitch (rad)",
        "head roll (rad)",
        "expression 0",
        "expression 1",
    ]
    fig, axes = plt.subplots(len(labels), 1, figsize=(10, 1.6 * len(labels)), dpi=100, sharex=True)
    p_tr = traces(pred)
    g_tr = traces(gt) if gt is not None else [None] * len(labels)
    for ax, lab, p, g in zip(axes, labels, p_tr, g_tr):
        if g is not None:
            ax.plot(np.arange(len(g)) / FPS, g, color="k", lw=1.2, label="ground truth")
        ax.plot(np.arange(len(p)) / FPS, p, color="C0", lw=0.9, label="produced")
        ax.set_ylabel(lab, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2, loc="upper right")
    axes[-1].set_xlabel("time since the first turn (s)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def build_report(
    inputs: BagInputs,
    run: EvalRun,
    params: dict,
    pred: np.ndarray,
    unfilled: int,
    metrics: dict | None,
    note: str,
    metrics_seed: int,
) -> dict[str, Any]:
    from timar_ros.eval.metrics import format_for_pub

    turns = run.turns
    return {
        "bag": str(inputs.path),
        "name": inputs.name,
        "mode": run.mode,
        "namespace": inputs.namespace,
        "checkpoint": str(resolve_checkpoint(params["checkpoint"], CHECKPOINT_HINT)),
        "model_id": run.model_id,
        "backend": run.backend,
        "seed": int(params["seed"]),
        "metrics_seed": metrics_seed,
        "turns": len(turns),
        "produced_turns": sum(t.motion is not None for t in turns),
        "skipped_turns": sum(t.motion is None for t in turns),
        "late_turns": sum(t.deadline_missed for t in turns),
        "padded_turns": sum(t.padded for t in turns),
        "padded_audio_s": round(sum(t.user_padded_s + t.agent_padded_s for t in turns), 6),
        "deadline_ms": float(params["deadline_ms"]),
        "frames": int(len(pred)),
        "unfilled_frames": unfilled,
        "ground_truth_frames": None if inputs.gt is None else int(len(inputs.gt)),
        "metrics_note": note,
        "metrics": metrics,
        "pub": dict(format_for_pub(metrics)) if metrics else None,
        "latency_ms_p50": _pct([t.latency_ms for t in turns], 50),
        "latency_ms_max": _pct([t.latency_ms for t in turns], 100),
        "wall_s": round(run.wall_s, 3),
        "per_turn": [t.summary() for t in turns],
        **{k: v for k, v in run.extra.items()},
    }


def _pct(values, q):
    v = np.array([x for x in values if math.isfinite(x)])
    return round(float(np.percentile(v, q)), 3) if v.size else None


def markdown(report: dict) -> str:
    """The report as Markdown: counts, the DualTalk table (published scaling), raw averages."""
    lines = [
        f"# Bag evaluation: {report['name']} ({report['mode']})",
        "",
        f"- bag: `{report['bag']}`",
        f"- model: `{report['model_id']}` ({report['backend']}), checkpoint "
        f"`{report['checkpoint']}`, "
        f"seed {report['seed']}",
        f"- turns: {report['turns']} (produced {report['produced_turns']}, skipped "
        f"{report['skipped_turns']}, late {report['late_turns']} over {report['deadline_ms']:g} "
        "ms, "
        f"padded {report['padded_turns']} with {report['padded_audio_s']:.3f} s of silence)",
        f"- frames: {report['frames']} produced ({report['unfilled_frames']} held), ground truth "
        f"{report['ground_truth_frames']}",
        f"- policy step: p50 {report['latency_ms_p50']} ms, max {report['latency_ms_max']} ms; "
        f"wall time {report['wall_s']} s",
        "",
        f"{report['metrics_note']}",
        "",
    ]
    if report["metrics"]:
        from timar_ros.eval.tables import markdown_table

        lines += [
            markdown_table(
                [(report["name"], report["metrics"])], "DualTalk metrics (published scaling)"
            ),
            "",
        ]
        lines += [
            "Published scaling under the reference's key names:",
            "",
            "| " + " | ".join(report["pub"]) + " |",
            "|" + "---|" * len(report["pub"]),
            "| " + " | ".join(f"{v:.2f}" for v in report["pub"].values()) + " |",
            "",
            "Raw averages:",
            "",
            "| key | value |",
            "|---|---|",
        ]
        lines += [f"| {k} | {v:.6g} |" for k, v in report["metrics"].items()]
    return "\n".join(lines) + "\n"


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
    resolve_checkpoint(p["checkpoint"], CHECKPOINT_HINT)  # fail before any work
    out.mkdir(parents=True, exist_ok=True)
    if live:
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
    np.save(pred_path, pred)
    report = build_report(inputs, run, p, pred, unfilled, metrics, note, metrics_seed)
    report["predictions"] = str(pred_path)
    if plot and len(pred):
        report["plot"] = str(
            plot_motion(
                pred, inputs.gt, out / "motion.png", f"{inputs.name} ({run.mode}, {run.model_id})"
            )
        )
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(markdown(report))
    return report
