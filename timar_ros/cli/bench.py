"""``timar bench [--json OUT]``: the latency benchmark of the streaming policy
(:mod:`timar_ros.perf.bench`), printed as a table."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint folder (default: the bundled checkpoints/<preset>, else "
        "a random init of --preset)",
    )
    parser.add_argument("--preset", default="robot", help="preset when no checkpoint is given")
    parser.add_argument(
        "--repeats",
        type=int,
        default=10,
        help="conversations of 34 turns timed per cached backend, >= 1 (default: %(default)s)",
    )
    parser.add_argument(
        "--reencode-repeats",
        type=int,
        default=3,
        help="conversations timed without the cache, >= 1 (default: %(default)s)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument(
        "--onnx-threads",
        type=int,
        default=None,
        help="onnxruntime intra-op threads (default: the backend's)",
    )
    parser.add_argument(
        "--rss-turns",
        type=int,
        default=100,
        help="turns the torch-free RSS subprocess runs (0 = skip)",
    )
    parser.add_argument(
        "--e2e-seconds",
        type=float,
        default=None,
        help="seconds of conversation replayed through DDS (0 = skip; default: 180 at 6x real "
        "time in the 1-s mode, 60 in real time when the policy streams)",
    )
    parser.add_argument(
        "--e2e-rate",
        type=float,
        default=None,
        help="playback rate of that replay (default: 6x real time in the 1-s mode; real time "
        "when the policy streams, whose work grows with the rate: a tick every 0.02 s at 6x)",
    )
    parser.add_argument(
        "--tick-s",
        type=float,
        default=None,
        help="streaming tick measured (s; default: conversation_policy's tick_s in "
        "config/timar.yaml, or 0.12 when that is the 1-s mode)",
    )
    parser.add_argument(
        "--tick-repeats",
        type=int,
        default=3,
        help="conversations of 12 turns streamed tick by tick per backend (0 = skip)",
    )
    parser.add_argument(
        "--no-floors", action="store_true", help="skip the reaction floors (demo conversation)"
    )
    parser.add_argument("--json", default=None, metavar="OUT", help="write the report here")


def run(args: argparse.Namespace) -> int:
    from timar_ros.files import write_json
    from timar_ros.perf.bench import format_summary, format_table, run_bench

    report = run_bench(
        args.checkpoint,
        args.preset,
        args.repeats,
        args.reencode_repeats,
        args.threads,
        onnx_threads=args.onnx_threads,
        rss_turns=args.rss_turns,
        e2e_seconds=args.e2e_seconds,
        e2e_rate=args.e2e_rate,
        tick_s=args.tick_s,
        tick_repeats=args.tick_repeats,
        floors=not args.no_floors,
    )
    print(format_table(report["rows"]))
    print()
    print(format_summary(report))
    if args.json:
        print(f"wrote {write_json(args.json, report)}")
    return 0
