"""What the demo shows after the run: summary figures, plots and a render from the recorded bag."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from timar_ros import topics
from timar_ros.files import save_figure


def analyse(
    out: Path,
    live: dict,
    checkpoint: Path,
    gt_npz: Path | None,
    namespace: str = topics.DEFAULT_NAMESPACE,
) -> dict:
    """Summary, plots and a render from the recorded bag."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from timar_ros import bags
    from timar_ros.motion import EXP, JAW, ROT
    from timar_ros.robot.retarget_config import load_retarget_config
    from timar_ros.robot.rotations import flame_to_ypr

    bag = out / "bag"
    name = lambda rel: topics.resolve(rel, namespace)  # noqa: E731
    with bags.BagReader(bag) as r:
        motion_recs = r.records(name(topics.HEAD_MOTION))
        states = [
            bags.conversation_state_to_dict(m)
            for _, _, _, m in r.messages([name(topics.CONVERSATION_STATE)])
        ]
        joints = r.records(name(topics.JOINT_STATES))
    motion, period, motion_start = bags.concat_motion(motion_recs, path=bag)
    lat = np.array(live["policy_latencies_ms"] or [np.nan])
    e2e = np.array(live["e2e_latencies_ms"] or [np.nan])
    cfg = load_retarget_config()
    pos = np.array([j.position for j in joints])
    t_js = np.array([j.stamp_ns for j in joints]) * 1e-9
    lo, hi = cfg.limits()["min"], cfg.limits()["max"]
    vel = np.diff(pos, axis=0) / np.diff(t_js)[:, None] if len(pos) > 1 else np.zeros((0, len(lo)))
    vmax = cfg.limits()["max_velocity"]
    neutral_err = (
        float(np.max(np.abs(pos[-1] - cfg.limits()["neutral"]))) if len(pos) else float("nan")
    )
    summary = {
        "turns": len(states),
        "motion_blocks": len(motion_recs),
        "tick_s": live.get("tick_s"),
        "seed": live.get("seed"),
        "display_delay_s": live.get("display_delay_s"),
        "tick_ms_p50": float(np.percentile(live.get("tick_latencies_ms") or [np.nan], 50)),
        "tick_ms_p99": float(np.percentile(live.get("tick_latencies_ms") or [np.nan], 99)),
        "frames": int(len(motion)),
        "latency_ms_p50": float(np.percentile(lat, 50)),
        "latency_ms_p99": float(np.percentile(lat, 99)),
        "e2e_ms_p50": float(np.percentile(e2e, 50)),
        "e2e_ms_p99": float(np.percentile(e2e, 99)),
        "deadline_misses": int(sum(s["deadline_missed"] for s in states)),
        "padded_audio_s": float(sum(s["user_padded_s"] + s["agent_padded_s"] for s in states)),
        "dropped_audio_s": float(states[-1]["dropped_audio_s"]) if states else 0.0,
        "skipped_turns": live["skipped_turns"],
        "backend": live["backend"],
        "checkpoint": str(checkpoint),
        "model_id": live["model_id"],
        "servo_commands": int(len(pos)),
        "joint_limits_respected": bool(
            len(pos) == 0 or ((pos >= lo - 1e-9) & (pos <= hi + 1e-9)).all()
        ),
        "max_speed_over_limit_rad_s": float(np.max(np.abs(vel) - vmax)) if len(vel) else 0.0,
        "final_distance_from_neutral_rad": neutral_err,
        "watchdog_trips": live["player"]["watchdog_trips"],
        # what reached head_retargeter after its first frame was due (frames skipped): the
        # display delay did not cover the audio's arrival and the policy's step
        "blocks_late_at_head": live["player"]["deadline_misses"],
        "blocks_at_head": live["player"]["blocks"],
        "frames_late_at_head": live["player"]["late_frames"],
        "frames_at_head": live["player"]["frames"],
        "recorded_messages": live["recorded"],
    }
    if gt_npz is not None and gt_npz.is_file() and len(motion) > 1:
        from timar_ros.data.dualtalk_files import load_motion, partner_stem
        from timar_ros.eval.metrics import file_metrics

        gt = load_motion(gt_npz)
        anchor = load_motion(gt_npz.with_name(partner_stem(gt_npz.stem) + ".npz"))
        m = file_metrics(motion, gt, anchor, name=gt_npz.stem)
        summary["metrics_vs_rule_targets"] = {
            k: m[k] for k in ("fid_exp", "fid_jaw", "fid_pose", "mse_exp", "mse_jaw", "mse_pose")
        }
        summary["side_by_side"] = str(_side_by_side(out, motion, gt, gt_npz, live["model_id"]))
    from timar_ros.eval.attention_figures import attention_figures
    from timar_ros.eval.reaction_latency import servo_reaction_latency

    # the head turned to the partner (scripted_partner's position in the bag)
    summary["attention"] = attention_figures(bag, namespace)

    # The partner's pause -> the robot's nod onset on the servo command, display delay included.
    # Live, agent/audio is stamped when the voice is heard; the plain demo plays no voice, and a
    # robot's voice_player would play it the display delay after its stamps, with the lips.
    heard_after = 0.0 if "live_audio" in live else float(live.get("display_delay_s") or 0.0)
    summary["reaction_latency"] = servo_reaction_latency(
        bag, namespace, agent_heard_after_s=heard_after
    )
    summary["reaction_latency"]["agent_heard_after_s"] = heard_after
    if gt_npz is not None and gt_npz.is_file():
        from timar_ros.data.dualtalk_files import partner_stem
        from timar_ros.eval.reaction_latency import rules_reaction_latency

        # what the rules themselves do after the same pauses, with the same detector
        summary["reaction_latency"]["rules"] = rules_reaction_latency(
            gt_npz.with_name(partner_stem(gt_npz.stem) + ".wav"), gt_npz.with_suffix(".wav"), gt_npz
        )

    # Plots: generated motion, servo commands, who speaks.
    t_m = np.arange(len(motion)) * period
    ypr = flame_to_ypr(motion[:, ROT].astype(np.float64)) if len(motion) else np.zeros((0, 3))
    fig, axes = plt.subplots(3, 1, figsize=(11, 7), sharex=True)
    axes[0].plot(t_m, motion[:, JAW][:, 0], label="jaw opening (rad)")
    for k, lab in enumerate(("yaw", "pitch", "roll")):
        axes[1].plot(t_m, ypr[:, k], label=f"head {lab} (rad, REP-103)")
    for k in range(3):
        axes[2].plot(t_m, motion[:, EXP][:, k], label=f"expression {k}")
    for ax in axes:
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time since the first turn was shown (s)")
    fig.suptitle(f"Generated head motion ({summary['turns']} turns, {live['model_id']})")
    fig.tight_layout()
    save_figure(fig, out / "motion.png", dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(11, 5))
    if len(pos):
        for j, jn in enumerate(cfg.joint_names):
            ax.plot(t_js - t_js[0], pos[:, j], label=jn, lw=1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("commanded position (rad)")
    ax.set_title(
        "Servo commands (joint_states, 100 Hz) within limits; neutral after the audio ends"
    )
    ax.legend(ncol=5, fontsize=7, loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out / "servos.png", dpi=90)
    plt.close(fig)
    return summary


def _side_by_side(out: Path, motion, gt, gt_npz: Path, model_id: str) -> Path:
    """The rules' targets next to the generated motion (turn k's motion is for audio turn k,
    so frame i of both is the same moment of the conversation)."""
    import json

    from timar_ros.data.audio import load_wav
    from timar_ros.data.dualtalk_files import partner_stem
    from timar_ros.viz.side_by_side import side_by_side

    conv = gt_npz.parent
    stem = gt_npz.stem
    partner = partner_stem(stem)
    onsets = []
    meta = conv / "conversation.json"
    if meta.is_file():
        k = int(stem[-1]) - 1
        onsets = [
            e["frame"]
            for e in json.loads(meta.read_text()).get("listener_reactions", [])
            if e["speaker"] == k
        ]
    return side_by_side(
        gt,
        motion,
        out / "side_by_side.png",
        user_audio=load_wav(conv / f"{partner}.wav"),
        agent_audio=load_wav(conv / f"{stem}.wav"),
        onsets=onsets,
        title=f"{model_id} on {conv.name}: rule targets vs generated (robot = {stem})",
    )


def render_preview(out: Path, log=print) -> Path:
    """An MP4 of the generated motion (a PNG contact sheet when ffmpeg is absent)."""
    from timar_ros.viz import render

    return render.render_file(
        render.load_bag(out / "bag"),
        out / "render.mp4",
        fps=12.5,
        log=lambda text: log(f"  {text}"),
    )
