"""The main job: the whole ROS 2 pipeline, composed in one process, on the bundled conversation.

Nodes (the same classes `ros2 launch` starts as separate processes), in namespace /timar:
audio_file_player (the two speakers' WAV files) -> conversation_policy (bundled checkpoint) ->
head_retargeter (servo commands) and bag_recorder (every topic, MCAP). After playback the head
is left to return to neutral (watchdog), then the bag is analysed: summary.json, plots, a render.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from timar_ros import topics
from timar_ros.resources import share_dir

NAMESPACE = "timar"


def _overrides(values: dict):
    from rclpy.parameter import Parameter

    return [Parameter(k, value=v) for k, v in values.items()]


def run_pipeline(out: Path, checkpoint: Path, user_wav: Path, agent_wav: Path, backend: str,
                 playback_rate: float = 1.0, log=print) -> dict:
    """Run the composed nodes until playback ends and the head is back at neutral.

    Returns live figures the bag does not hold (policy latencies, end-to-end latencies).
    """
    from timar_ros.nodes.compose import ComposedNodes, keep_dds_local

    keep_dds_local()
    import rclpy

    from timar_ros.nodes.audio_file_player import AudioFilePlayer
    from timar_ros.nodes.bag_recorder import BagRecorder
    from timar_ros.nodes.conversation_policy import ConversationPolicy
    from timar_ros.nodes.head_retargeter import HeadRetargeter

    rclpy.init()
    nodes = []
    try:
        common = {"namespace": NAMESPACE}
        recorder = BagRecorder(**common, parameter_overrides=_overrides(
            {"output": str(out / "bag"), "overwrite": True}))
        policy = ConversationPolicy(**common, parameter_overrides=_overrides(
            {"checkpoint": str(checkpoint), "backend": backend, "audio_qos": "reliable"}))
        retargeter = HeadRetargeter(**common)
        nodes = [recorder, policy, retargeter]
        player = AudioFilePlayer(**common, parameter_overrides=_overrides(
            {"user_wav": str(user_wav), "agent_wav": str(agent_wav), "playback_rate": playback_rate,
             "start_delay_s": 0.5, "wait_for_subscribers": 2}))  # the policy and the recorder
        nodes.append(player)
        with ComposedNodes(nodes):  # stopped before the nodes are destroyed, also on Ctrl-C
            shown, done_at = 0, None
            settle = policy.pipeline.config.display_delay_s + retargeter.player.neutral_deadline_s + 0.5
            while True:
                time.sleep(0.1)
                while shown < len(policy.latencies_ms) and shown < policy.turns:
                    lat = list(policy.latencies_ms)[shown]
                    log(f"  turn {shown:3d}: policy step {lat:6.1f} ms")
                    shown += 1
                if player.done and done_at is None:
                    done_at = time.monotonic()
                    log(f"  playback finished; waiting {settle:.1f} s for the last turn and the "
                        "return to neutral")
                if done_at is not None and time.monotonic() - done_at > settle:
                    break
        live = {
            "policy_latencies_ms": list(policy.latencies_ms),
            "e2e_latencies_ms": list(policy.e2e_ms),
            "model_id": policy.policy.model_id,
            "backend": policy.backend,
            "skipped_turns": policy.pipeline.skipped_turns,
            "segmenter": policy.pipeline.segmenter.counters.as_dict(),
            "player": retargeter.player.counters.as_dict(),
            "neutral_deadline_s": retargeter.player.neutral_deadline_s,
            "recorded": dict(recorder.counts),
        }
    finally:
        for n in nodes:
            n.destroy_node()  # the recorder finishes the bag here
        rclpy.try_shutdown()
    return live


def analyse(out: Path, live: dict, checkpoint: Path, gt_npz: Path | None, log=print) -> dict:
    """Summary, plots and a render from the recorded bag."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from timar_ros import bags
    from timar_ros.motion import EXP, JAW, ROT
    from timar_ros.robot.retarget import load_config
    from timar_ros.robot.rotations import flame_to_ypr

    bag = out / "bag"
    name = lambda rel: topics.resolve(rel, NAMESPACE)  # noqa: E731
    with bags.BagReader(bag) as r:
        motion_recs = r.records(name(topics.HEAD_MOTION))
        states = [bags.conversation_state_to_dict(m) for _, _, _, m in r.messages([name(topics.CONVERSATION_STATE)])]
        joints = r.records(name(topics.JOINT_STATES))
    motion, period, motion_start = bags.concat_motion(motion_recs, path=bag)
    lat = np.array(live["policy_latencies_ms"] or [np.nan])
    e2e = np.array(live["e2e_latencies_ms"] or [np.nan])
    cfg = load_config()
    pos = np.array([j.position for j in joints])
    t_js = np.array([j.stamp_ns for j in joints]) * 1e-9
    lo, hi = cfg.limits()["min"], cfg.limits()["max"]
    vel = np.diff(pos, axis=0) / np.diff(t_js)[:, None] if len(pos) > 1 else np.zeros((0, len(lo)))
    vmax = cfg.limits()["max_velocity"]
    neutral_err = float(np.max(np.abs(pos[-1] - cfg.limits()["neutral"]))) if len(pos) else float("nan")
    summary = {
        "turns": len(motion_recs),
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
        "joint_limits_respected": bool(len(pos) == 0 or ((pos >= lo - 1e-9) & (pos <= hi + 1e-9)).all()),
        "max_speed_over_limit_rad_s": float(np.max(np.abs(vel) - vmax)) if len(vel) else 0.0,
        "final_distance_from_neutral_rad": neutral_err,
        "watchdog_trips": live["player"]["watchdog_trips"],
        "recorded_messages": live["recorded"],
    }
    if gt_npz is not None and gt_npz.is_file() and len(motion) > 1:
        from timar_ros.data.layout import load_motion, partner_stem
        from timar_ros.metrics import file_metrics

        gt = load_motion(gt_npz)
        anchor = load_motion(gt_npz.with_name(partner_stem(gt_npz.stem) + ".npz"))
        m = file_metrics(motion, gt, anchor, name=gt_npz.stem)
        summary["metrics_vs_rule_targets"] = {k: m[k] for k in ("fid_exp", "fid_jaw", "fid_pose",
                                                                "mse_exp", "mse_jaw", "mse_pose")}

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
    fig.savefig(out / "motion.png", dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(11, 5))
    if len(pos):
        for j, jn in enumerate(cfg.joint_names):
            ax.plot(t_js - t_js[0], pos[:, j], label=jn, lw=1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("commanded position (rad)")
    ax.set_title("Servo commands (joint_states, 100 Hz) within limits; neutral after the audio ends")
    ax.legend(ncol=5, fontsize=7, loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "servos.png", dpi=90)
    plt.close(fig)
    return summary


def render_preview(out: Path, log=print) -> Path | None:
    """An MP4 of the generated motion (PNG contact sheet when ffmpeg is absent)."""
    from timar_ros import render

    inp = render.load_bag(out / "bag")
    if render.find_ffmpeg():
        return render.render_mp4(inp, out / "render.mp4", fps=12.5)
    log("  ffmpeg not found: writing a PNG contact sheet instead of an MP4")
    return render.render_png(inp, out / "render.png")


def run_demo(args: argparse.Namespace) -> int:
    from timar_ros.robot.policy_setup import resolve_checkpoint

    out = Path(args.out)
    checkpoint = resolve_checkpoint(args.checkpoint or "", "pass --checkpoint")
    conv = Path(args.conversation) if args.conversation else share_dir() / "data" / "demo_conversation"
    user_wav, agent_wav = conv / "demo_speaker1.wav", conv / "demo_speaker2.wav"
    for f in (user_wav, agent_wav):
        if not f.is_file():
            raise FileNotFoundError(f"demo conversation file missing: {f}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.monotonic()
    print(f"timar demo: {conv.name} ({user_wav.name} = partner, {agent_wav.name} = robot) with "
          f"checkpoint {checkpoint}")
    backend = args.backend
    if backend == "auto":  # the faster onnxruntime backend, exported on first use
        from timar_ros.export import ensure_export

        backend = "onnx" if ensure_export(checkpoint) else "torch"
    print(f"policy backend: {backend}")
    live = run_pipeline(out, checkpoint, user_wav, agent_wav, backend=backend,
                        playback_rate=args.playback_rate)
    print("analysing the recorded bag ...")
    summary = analyse(out, live, checkpoint, conv / "demo_speaker2.npz")
    preview = render_preview(out)
    summary["wall_time_s"] = round(time.monotonic() - t0, 1)
    files = sorted(str(p) for p in out.rglob("*") if p.is_file())
    summary["files"] = files
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"turns {summary['turns']}, policy latency p50 {summary['latency_ms_p50']:.1f} ms / "
          f"p99 {summary['latency_ms_p99']:.1f} ms ({summary['backend']}), end-to-end p99 "
          f"{summary['e2e_ms_p99']:.1f} ms, padded audio {summary['padded_audio_s']:.2f} s, "
          f"joint limits respected: {summary['joint_limits_respected']}")
    print("wrote:")
    for f in files + [str(out / "summary.json")]:
        print(f"  {f}")
    if preview is not None:
        print(f"look at: {preview}")
    return 0
