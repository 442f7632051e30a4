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

import time
from pathlib import Path

from timar_ros.eval.bag_records import (
    BagInputs,
    EvalRun,
    TurnRecord,
    read_inputs,
)
from timar_ros.eval.bag_report import assemble, build_report, markdown, plot_motion, score
from timar_ros.files import save_array, write_json, write_text_atomic
from timar_ros.robot.conversation import PipelineConfig
from timar_ros.robot.policy_setup import load_policy, resolve_checkpoint

NODE = "conversation_policy"


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


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
