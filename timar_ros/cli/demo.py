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
    parser.add_argument(
        "--echo",
        action="store_true",
        help="with --live-audio: the robot's loudspeaker is heard in the room (a PulseAudio "
        "loopback) and echo_canceller takes it out of the microphone; summary.json's 'echo' "
        "has the figures, with the policy replayed on the audio with and without the echo",
    )
    parser.add_argument(
        "--echo-delay-s", type=float, default=None, help="the loopback's delay (default 0.05 s)"
    )
    parser.add_argument(
        "--echo-gain-db",
        type=float,
        default=None,
        help="the echo's level against the loudspeaker's signal (default -6 dB)",
    )
    parser.add_argument(
        "--echo-mode",
        default=None,
        choices=["aec", "half_duplex", "none"],
        help="echo_canceller's mode (default aec; none: the echo reaches the policy)",
    )


def _room_echo(args: argparse.Namespace):
    from timar_ros.demo.pipeline import RoomEcho

    given = {
        k: v
        for k, v in (
            ("delay_s", args.echo_delay_s),
            ("gain_db", args.echo_gain_db),
            ("mode", args.echo_mode),
        )
        if v is not None
    }
    if not args.echo:
        if given:
            raise SystemExit("timar demo: --echo-delay-s/--echo-gain-db/--echo-mode need --echo")
        return None
    return RoomEcho(**given)  # without --live-audio run_demo says what is missing


def run(args: argparse.Namespace) -> int:
    from timar_ros.demo.pipeline import run_demo

    echo = _room_echo(args)
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
        echo=echo,
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
    print(
        f"blocks that reached the head after their first frame was due: "
        f"{s['blocks_late_at_head']} of {s['blocks_at_head']} ({s['frames_late_at_head']} of "
        f"{s['frames_at_head']} frames skipped)"
    )
    rl = s.get("reaction_latency") or {}
    if rl.get("median_s") is not None:
        print(
            f"reaction latency (partner pause -> nod onset on the servo command, display delay "
            f"included): the robot reacts to {len(rl['latencies_s'])} of the {rl['pauses']} "
            f"pauses, median {rl['median_s']:.2f} s after them (min {rl['min_s']:.2f}, max "
            f"{rl['max_s']:.2f})"
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
    if "echo" in s:
        _print_echo(s["echo"])
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


def _count(share, turns: int) -> str:
    """How many of ``turns`` a share of them is ("-" when there were none)."""
    return "-" if share is None else str(round(share * turns))


def _print_echo(e: dict) -> None:
    path, c = e["echo_path"], e["conditions"]
    print(
        f"echo: the loudspeaker heard {path['delay_s'] * 1e3:.0f} ms after its reference stamps "
        f"at {path['level_db']:+.1f} dB; ERLE {e['erle_db']:.1f} dB (robot alone; first "
        f"seconds {e['erle_first_s_db']:.1f} dB)"
        + (
            f"; canceller CPU {e['canceller']['cpu_s_per_s']:.3f} s per s of audio"
            if (e.get("canceller") or {}).get("cpu_s_per_s") is not None
            else ""
        )
    )
    k = e["partner_kept"]
    st = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    print(
        "  the partner's voice in the output (STOI against the dry voice; the microphone's in "
        f"brackets): talking alone {st(k['partner_alone']['cancelled']['stoi'])} "
        f"({st(k['partner_alone']['echo']['stoi'])}), over the robot "
        f"{st(k['both']['cancelled']['stoi'])} ({st(k['both']['echo']['stoi'])})"
    )
    for cond, what in (
        ("no_echo", "no echo"),
        ("echo", "echo, not cancelled"),
        ("cancelled", f"echo, {e['room']['mode']}"),
    ):
        f = c[cond]
        r = f["reactions_after_pauses"]
        called = _count(f["robot_alone_called_partner"], f["robot_alone_turns"])
        heard = _count(f["partner_turns_heard"], f["partner_turns"])
        print(
            f"  {what:22s} robot-alone turns called 'partner speaking' "
            f"{called} of {f['robot_alone_turns']}, partner turns heard {heard} of "
            f"{f['partner_turns']}, reactions after {len(r['latencies_s'])} of {r['pauses']} "
            "pauses"
        )
