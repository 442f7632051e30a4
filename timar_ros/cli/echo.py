"""``timar echo bench``: the robot's echo cancelled in simulated rooms (robot/echo.py,
eval/echo_rooms.py): ERLE, the partner kept in double talk, the policy's voice activity, CPU, per
mode (none, half_duplex, aec), over rooms generated with pyroomacoustics (none shipped).

``timar echo calibrate``: the echo path of the robot itself (robot/echo_calibration.py): a test
signal on the loudspeaker, the microphone recording, the echo's delay and level, the ERLE AEC3
reaches and the reference_delay_s to set; with ``--partner-seconds``, a partner's voice
recorded after it: how far the echo is over it, and whether a partner talking over the robot
would be heard.
"""

from __future__ import annotations

import argparse

SUBCOMMANDS = {
    "bench": "the echo canceller's figures over simulated rooms (table + JSON)",
    "calibrate": "play a test signal on the loudspeaker, record the microphone: the echo's "
    "delay and level, the ERLE AEC3 reaches, the reference_delay_s to set",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="echo_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("bench", help=SUBCOMMANDS["bench"], description=SUBCOMMANDS["bench"])
    p.add_argument("--rooms", type=int, default=12, help="rooms to simulate (default 12)")
    p.add_argument("--seed", type=int, default=0, help="seed of the rooms (default 0)")
    p.add_argument(
        "--modes",
        nargs="+",
        default=["none", "half_duplex", "aec"],
        choices=["none", "half_duplex", "aec"],
        help="echo modes to measure (default: all three)",
    )
    p.add_argument(
        "--delays",
        type=float,
        nargs="+",
        default=None,
        metavar="S",
        help="instead: AEC3 with the echo this many seconds later than the reference's stamps "
        "(how far its delay estimator reaches), in the first room",
    )
    p.add_argument(
        "--echo-gain-db",
        type=float,
        default=0.0,
        metavar="DB",
        help="turn the robot's echo down by this much in every room (<= 0; a quieter or "
        "further loudspeaker, a directional microphone): where the partner is heard in double "
        "talk (default 0)",
    )
    p.add_argument("--json", dest="json_out", default=None, help="write the report here")
    c = sub.add_parser(
        "calibrate", help=SUBCOMMANDS["calibrate"], description=SUBCOMMANDS["calibrate"]
    )
    c.add_argument(
        "--output-device",
        default=None,
        help="the loudspeaker (voice_player's device; default: the system's)",
    )
    c.add_argument(
        "--input-device",
        default=None,
        help="the microphone (the microphone node's device; default: the system's)",
    )
    c.add_argument(
        "--sample-rate", type=int, default=None, help="Hz (default: the microphone node's)"
    )
    c.add_argument(
        "--chunk-s",
        type=float,
        default=None,
        help="the microphone's block (s; default: the microphone node's chunk_s: the input "
        "latency a device reports depends on it)",
    )
    c.add_argument("--seconds", type=float, default=6.0, help="test speech (default 6 s)")
    c.add_argument(
        "--level-dbfs", type=float, default=-20.0, help="test speech RMS (default -20 dBFS)"
    )
    c.add_argument(
        "--partner-seconds",
        type=float,
        default=0.0,
        metavar="S",
        help="then record S s of someone speaking to the robot from where a partner stands "
        "(1-2 m, a normal voice): how far the echo is over that voice, and whether a partner "
        "talking over the robot would be heard (default 0: skip)",
    )
    c.add_argument("--json", dest="json_out", default=None, help="write the figures here")


def _device(x):
    return int(x) if x is not None and str(x).isdigit() else x


def calibrate(args: argparse.Namespace) -> int:
    from timar_ros.resources import node_defaults
    from timar_ros.robot.echo_calibration import calibration_signal, measure, play_and_record

    mic = node_defaults("microphone")
    rate = int(args.sample_rate or mic["sample_rate"])
    chunk_s = float(args.chunk_s or mic["chunk_s"])
    signal = calibration_signal(args.seconds, rate, args.level_dbfs)
    print(
        f"timar echo calibrate: {len(signal) / rate:.1f} s of test speech at "
        f"{args.level_dbfs:g} dBFS on {args.output_device or 'the default output'}, recording "
        f"{args.input_device or 'the default input'} ..."
    )
    recorded, played = play_and_record(
        signal, rate, _device(args.output_device), _device(args.input_device), chunk_s
    )
    f = measure(recorded, played, rate)
    if f["echo_found"]:
        print(
            f"echo delay after the reference's stamps: {f['delay_s'] * 1e3:+.0f} ms (peak "
            f"prominence {f['delay_prominence']:g}); echo level {f['echo_level_db']:+.1f} dB "
            f"against the loudspeaker's signal; noise floor {f['noise_floor_dbfs']:.1f} dBFS; "
            f"clipped samples {f['clipped']}"
        )
        print(
            f"AEC3 on this recording (reference_delay_s {f['reference_delay_s']}): ERLE "
            f"{f['erle_db']:.1f} dB"
        )
    else:
        print(
            f"no echo found (peak prominence {f['delay_prominence']:g}); noise floor "
            f"{f['noise_floor_dbfs']:.1f} dBFS"
        )
    for line in f["advice"]:
        print(f"  - {line}")
    if args.partner_seconds > 0:
        f["partner"] = _partner(args, rate, f)
    if args.json_out:
        from timar_ros.files import write_json

        write_json(args.json_out, f)
        print(f"wrote {args.json_out}")
    return 0


def _partner(args: argparse.Namespace, rate: int, echo: dict) -> dict:
    from timar_ros.robot.echo_calibration import partner_figures, record

    print(
        f"partner: speak to the robot now, from where a person talks with it (1-2 m), in a "
        f"normal voice, for {args.partner_seconds:g} s ...",
        flush=True,
    )
    p = partner_figures(record(args.partner_seconds, rate, _device(args.input_device)), rate, echo)
    print(f"partner's voice at the microphone: {p['partner_dbfs']:.1f} dBFS")
    for line in p["advice"]:
        print(f"  - {line}")
    return p


def run(args: argparse.Namespace) -> int:
    if args.echo_command == "calibrate":
        if args.partner_seconds < 0:
            raise SystemExit(
                f"timar echo calibrate: --partner-seconds {args.partner_seconds:g} is negative; "
                "give the seconds to record the partner, or 0 to skip"
            )
        return calibrate(args)
    from timar_ros.eval.echo_rooms import bench, default_rooms, delay_reach, markdown

    if args.echo_gain_db > 0:
        raise SystemExit(
            f"timar echo bench: --echo-gain-db {args.echo_gain_db:g} would make the echo louder "
            "than the room makes it; give 0 or a negative gain"
        )
    if args.delays and args.echo_gain_db:
        raise SystemExit(
            "timar echo bench: --echo-gain-db applies to the rooms' table, not to --delays; "
            "give one of them"
        )
    rooms = default_rooms(args.rooms, args.seed)
    if args.delays:
        print(f"timar echo bench --delays: {rooms[0].name}")
        rep = {"room": rooms[0].name, "delays": delay_reach(args.delays, rooms[0])}
        if args.json_out:
            from timar_ros.files import write_json

            write_json(args.json_out, rep)
        return 0
    gain = f", the echo {args.echo_gain_db:+g} dB" if args.echo_gain_db else ""
    print(f"timar echo bench: {len(rooms)} rooms, modes {', '.join(args.modes)}{gain}")
    rep = bench(rooms, args.modes, echo_gain_db=args.echo_gain_db)
    over = rep["echo_over_partner_db"]
    print(
        f"the robot's echo over the partner's voice at the microphone: median {over['value']:.1f}"
        f" dB (IQR {over['q25']:.1f} to {over['q75']:.1f})"
    )
    print(markdown(rep))
    if args.json_out:
        from timar_ros.files import write_json

        write_json(args.json_out, rep)
        print(f"wrote {args.json_out}")
    return 0
