"""Bag evaluation's scoring and report: the turns laid out on the audio clock, the DualTalk
metrics against the bag's ground truth, the plot and the JSON/Markdown report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from timar_ros import topics
from timar_ros.eval.bag_records import BagInputs, EvalRun, TurnRecord
from timar_ros.files import save_figure
from timar_ros.motion import EXP, FPS, JAW, MOTION_DIM, ROT


def assemble(turns: list[TurnRecord], ref_start_s: float, fps: int = FPS) -> tuple[np.ndarray, int]:
    """Lay the turns' motion out on the audio clock: (prediction [T, 56], unfilled frames).

    Turn k's frames start at ``round((start_s - ref_start_s) * fps)``; frames no turn produced
    hold the nearest produced frame (before the first: the first produced frame)."""
    placed = [
        (off, t.motion)
        for t in turns
        if t.motion is not None
        and (off := int(round((t.start_s - ref_start_s) * fps))) + len(t.motion) > 0
    ]  # a turn wholly before ref_start has no frame on the grid
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
    save_figure(fig, path)
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
    checkpoint: Path,
) -> dict[str, Any]:
    from timar_ros.eval.metrics import format_for_pub

    turns = run.turns
    return {
        "bag": str(inputs.path),
        "name": inputs.name,
        "mode": run.mode,
        "namespace": inputs.namespace,
        "checkpoint": str(checkpoint),
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
