"""`timar demo`: the main job (the whole ROS 2 pipeline on the bundled conversation)."""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_output", help="output folder, replaced (default: %(default)s)")
    parser.add_argument("--checkpoint", default="",
                        help="checkpoint folder (default: the bundled checkpoints/robot)")
    parser.add_argument("--conversation", default="",
                        help="folder with demo_speaker1.wav (partner) and demo_speaker2.wav (robot) "
                             "(default: the bundled data/demo_conversation)")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"],
                        help="policy backend; auto = onnx when the checkpoint has an export (default: %(default)s)")
    parser.add_argument("--playback-rate", type=float, default=1.0,
                        help="1.0 = real time (default), 2.0 = twice as fast")


def run(args: argparse.Namespace) -> int:
    from timar_ros.demo_pipeline import run_demo

    try:
        return run_demo(args)
    except FileNotFoundError as exc:
        print(f"timar demo: {exc}", file=sys.stderr)
        return 1
