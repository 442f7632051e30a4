"""``timar demo [--out DIR]``: the main job, the whole ROS 2 pipeline on the bundled conversation
(:mod:`timar_ros.demo`)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default="demo_output", help="output folder, replaced (default: %(default)s)"
    )
    parser.add_argument(
        "--checkpoint",
        default="",
        help="checkpoint folder (default: the bundled checkpoints/robot)",
    )
    parser.add_argument(
        "--conversation",
        default="",
        help="folder with demo_speaker1.wav (partner) and demo_speaker2.wav (robot) "
        "(default: the bundled data/demo_conversation)",
    )
    parser.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "torch", "onnx"],
        help="policy backend; auto = onnx when the checkpoint has an export (default: %(default)s)",
    )
    parser.add_argument(
        "--playback-rate",
        type=float,
        default=1.0,
        help="1.0 = real time (default), 2.0 = twice as fast",
    )
    parser.add_argument(
        "--sim",
        default="mujoco",
        choices=["mujoco", "none"],
        help="mujoco: the servo commands drive the head simulated in MuJoCo (sim_head), and "
        "the demo writes its video and tracking figures; none: commands only "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--tick-s",
        type=float,
        default=None,
        help="conversation_policy's tick_s: a block of motion every TICK_S seconds (a multiple "
        "of 0.04; 1 = the 1-s mode; default: config/timar.yaml's)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="conversation_policy's seed (the diffusion sampling noise): another seed, another "
        "draw of the same behaviour (default: config/timar.yaml's)",
    )
    parser.add_argument(
        "--live-audio",
        action="store_true",
        help="play the conversation through a sound server (PulseAudio null sinks) and the real "
        "microphone and voice_player nodes, as on a robot (real time)",
    )


def run(args: argparse.Namespace) -> int:
    from timar_ros.demo.pipeline import run_demo

    s = run_demo(
        args.out,
        args.checkpoint,
        args.conversation,
        args.backend,
        args.playback_rate,
        live_audio=args.live_audio,
        sim=args.sim,
        tick_s=args.tick_s,
        seed=args.seed,
    )
    print(
        f"turns {s['turns']} in {s['motion_blocks']} blocks (a block every {s['tick_s']:g} s, "
        f"shown {s['display_delay_s']:.2f} s after its audio; tick p50 {s['tick_ms_p50']:.1f} ms "
        f"/ p99 {s['tick_ms_p99']:.1f} ms), policy latency per turn p50 "
        f"{s['latency_ms_p50']:.1f} ms / "
        f"p99 {s['latency_ms_p99']:.1f} ms ({s['backend']}), end-to-end p99 "
        f"{s['e2e_ms_p99']:.1f} ms, padded audio {s['padded_audio_s']:.2f} s, "
        f"joint limits respected: {s['joint_limits_respected']}"
    )
    rl = s.get("reaction_latency") or {}
    if rl.get("median_s") is not None:
        print(
            f"reaction latency (partner pause -> nod onset on the servo command, display delay "
            f"included): median {rl['median_s']:.2f} s over {len(rl['latencies_s'])} pauses "
            f"(min {rl['min_s']:.2f}, max {rl['max_s']:.2f})"
        )
    else:
        print(
            f"reaction latency: no servo reaction after the partner's {rl.get('pauses', 0)} pauses"
        )
    rules = rl.get("rules")
    if rules:
        lags = ", ".join(f"{x:.2f}" for x in rules["latencies_s"]) or "none"
        print(
            f"  the rules' own targets react to {len(rules['latencies_s'])} of the "
            f"{rules['pauses']} pauses (s after the pause: {lags})"
        )
    sim = s.get("sim")
    if sim:
        tr = sim["tracking"]["joints"]
        worst = sim["tracking"]["max_rms"]
        print(
            f"simulated head (MuJoCo, physics at {sim['physics_real_time_factor']:g}x real time): "
            f"tracking RMS {min(f['rms_rad'] for f in tr.values()) * 1e3:.1f}-"
            f"{tr[worst]['rms_rad'] * 1e3:.1f} mrad (worst joint {worst}), lag "
            f"{min(f['lag_s'] for f in tr.values()) * 1e3:.0f}-"
            f"{max(f['lag_s'] for f in tr.values()) * 1e3:.0f} ms; video {sim['video']}"
        )
    print("wrote:")
    for f in s["files"]:
        print(f"  {f}")
    print(f"look at: {s['preview']}" + (f" and {s['side_by_side']}" if "side_by_side" in s else ""))
    return 0
