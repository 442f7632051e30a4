"""The `timar` command.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``.
Only the chosen command's module is imported, so ``timar --help`` does not load torch or rclpy.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). The one registry of subcommands.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("timar_ros.demo", "run the whole ROS 2 pipeline on the bundled conversation"),
    "init-checkpoint": ("timar_ros.init_checkpoint",
                        "write a randomly initialised checkpoint of a model preset"),
    "bench": ("timar_ros.bench", "benchmark the streaming policy (latency table + JSON)"),
    "export": ("timar_ros.export", "export a checkpoint to ONNX graphs for the torch-free runtime"),
    "train": ("timar_ros.train", "train a TIMAR model on DualTalk-layout folders (CPU/GPU/DDP)"),
    "evaluate": ("timar_ros.evaluate",
                 "progressive-context evaluation through StreamingPolicy (table + plots)"),
    "metrics": ("timar_ros.metrics_cli", "DualTalk metrics of a prediction folder vs ground truth"),
    "synth": ("timar_ros.synth_cli", "generate synthetic two-person conversations (DualTalk layout)"),
    "bag": ("timar_ros.bag_cli", "rosbag2 tools: from-dualtalk, info (see `timar bag --help`)"),
    "render": ("timar_ros.render", "draw a motion stream (bag or .npy) as MP4 or a PNG contact sheet"),
    "soak": ("timar_ros.soak", "long synthetic conversation through the composed pipeline "
                               "(dropped turns, memory growth, latency over time)"),
}


def _build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="timar",
        description="TIMAR conversational head motion for ROS 2 robot heads.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = _build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
