"""`timar demo`: the main job (the whole pipeline on the bundled conversation)."""
from __future__ import annotations

import argparse
import importlib.util


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_output", help="output folder (default: %(default)s)")


# What the full demo needs, and whether it exists yet. The demo never fakes output: until every
# piece is there it reports what is missing and runs what exists.
_PIECES = [
    ("timar_ros.msg", "ROS 2 messages (AudioChunk, HeadMotion, ConversationState)"),
    ("timar_ros.runtime", "streaming TIMAR policy"),
    ("timar_ros.robot", "turn segmentation and servo retargeting"),
    ("timar_ros.nodes", "ROS 2 nodes"),
]


def run(args: argparse.Namespace) -> int:
    missing = []
    for module, what in _PIECES:
        ok = importlib.util.find_spec(module) is not None
        print(f"  [{'ok' if ok else 'missing'}] {what} ({module})")
        if not ok:
            missing.append(what)
    if missing:
        print("The full demo is not available yet; missing: " + ", ".join(missing) + ".")
        print("Nothing was written to " + args.out + ".")
        return 1
    from timar_ros.demo_pipeline import run_demo  # noqa: PLC0415 (heavy imports only when used)

    return run_demo(args)
