"""``timar echo bench``: the robot's echo cancelled in simulated rooms (robot/echo.py,
eval/echo_rooms.py): ERLE, the partner kept in double talk, the policy's voice activity, CPU, per
mode (none, half_duplex, aec), over rooms generated with pyroomacoustics (none shipped).
"""

from __future__ import annotations

import argparse

SUBCOMMANDS = {"bench": "the echo canceller's figures over simulated rooms (table + JSON)"}


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
    p.add_argument("--json", dest="json_out", default=None, help="write the report here")


def run(args: argparse.Namespace) -> int:
    from timar_ros.eval.echo_rooms import bench, default_rooms, delay_reach, markdown

    rooms = default_rooms(args.rooms, args.seed)
    if args.delays:
        print(f"timar echo bench --delays: {rooms[0].name}")
        rep = {"room": rooms[0].name, "delays": delay_reach(args.delays, rooms[0])}
        if args.json_out:
            from timar_ros.files import write_json

            write_json(args.json_out, rep)
        return 0
    print(f"timar echo bench: {len(rooms)} rooms, modes {', '.join(args.modes)}")
    rep = bench(rooms, args.modes)
    print(markdown(rep))
    if args.json_out:
        from timar_ros.files import write_json

        write_json(args.json_out, rep)
        print(f"wrote {args.json_out}")
    return 0
