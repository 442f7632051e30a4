"""``timar soak --minutes M --json OUT [--rate R]``: a long synthetic conversation through the
composed pipeline (:mod:`timar_ros.perf.soak`); exit 1 if any turn was lost."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--minutes",
        type=float,
        default=60.0,
        help="minutes of synthetic conversation audio (default: %(default)s)",
    )
    parser.add_argument("--json", required=True, help="write the report here")
    parser.add_argument(
        "--rate",
        type=float,
        default=20.0,
        help="simulated time runs up to this many times faster than real time "
        "(the feeder also waits for the policy; default: %(default)s)",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint folder (default: checkpoints/robot, else a random "
        "robot-preset checkpoint)",
    )
    parser.add_argument("--backend", default="torch", choices=("torch", "onnx", "auto"))
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from timar_ros.files import write_json
    from timar_ros.perf.soak import run_soak

    report = run_soak(args.minutes, args.rate, args.checkpoint, args.seed, args.backend)
    out = write_json(args.json, report)
    keys = (
        "turns",
        "expected_turns",
        "dropped_turns",
        "skipped_turns",
        "rss_growth_mb",
        "p50_ms_turn",
        "p99_ms_turn",
        "speed_x_realtime",
    )
    print(json.dumps({k: report[k] for k in keys}))
    print(f"wrote {out}")
    ok = (
        report["dropped_turns"] == 0
        and report["joint_limit_violations"] == 0
        and not report["interrupted"]
    )
    return 0 if ok else 1
