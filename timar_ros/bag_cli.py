"""`timar bag ...`: rosbag2 tools.

Subcommands are registered in SUBCOMMANDS as name -> (module, help). Each module exposes
``add_<name>_arguments(parser)`` and ``run_<name>(args) -> int`` (dashes in the name become
underscores), and only the chosen subcommand's module is imported. ``from-dualtalk`` and
``info`` are pure Python (no ROS needed); ``play``, ``record`` (rclpy nodes) and ``evaluate``
(policy + metrics) are added by registering their modules here.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "from-dualtalk": ("timar_ros.bag_cli", "convert DualTalk conversations into bags"),
    "info": ("timar_ros.bag_cli", "summarize a bag: storage, duration, topics, counts"),
    # "play": ("timar_ros.bag_play", "replay a bag onto live topics"),
    # "record": ("timar_ros.bag_record", "record the pipeline's topics to a bag"),
    # "evaluate": ("timar_ros.bag_evaluate", "score the pipeline's motion against a bag"),
}


def _fn(name: str) -> str:
    return name.replace("-", "_")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # The subcommand's own arguments are parsed in run(), so that only its module is imported.
    lines = [f"  {n:<14} {h}" for n, (_, h) in SUBCOMMANDS.items()]
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "subcommands:\n" + "\n".join(lines) + "\n\n`timar bag SUBCOMMAND --help` for its options."
    parser.add_argument("bag_command", nargs="?", choices=list(SUBCOMMANDS), metavar="SUBCOMMAND",
                        help="one of: " + ", ".join(SUBCOMMANDS))
    parser.add_argument("bag_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(_bag_parser=parser)


def build_subparser(name: str) -> argparse.ArgumentParser:
    """The parser of one `timar bag` subcommand, with its run function as default `_bag_run`."""
    module, help_text = SUBCOMMANDS[name]
    p = argparse.ArgumentParser(prog=f"timar bag {name}", description=help_text)
    mod = importlib.import_module(module)
    getattr(mod, f"add_{_fn(name)}_arguments")(p)
    p.set_defaults(_bag_run=getattr(mod, f"run_{_fn(name)}"))
    return p


def run(args: argparse.Namespace) -> int:
    if args.bag_command is None:
        args._bag_parser.print_help()
        return 2
    sub_args = build_subparser(args.bag_command).parse_args(args.bag_args)
    from timar_ros.bags import BagError

    try:
        return int(sub_args._bag_run(sub_args) or 0)
    except BagError as err:
        print(f"timar bag {args.bag_command}: error: {err}", file=sys.stderr)
        return 1


# ----------------------------------------------------------------------------- from-dualtalk

def add_from_dualtalk_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Convert a flat DualTalk folder (<clip>_speaker{1,2}.wav/.npz) into rosbag2 bags, one per "
        "(conversation, agent): OUT/<clip>_speaker<k> holds speaker k as the agent (agent audio + "
        "ground-truth head motion) and the other speaker as the user (user audio + user motion), "
        "all stamped on one clock starting at --start."
    )
    p.add_argument("src", metavar="DIR", help="DualTalk split folder (e.g. data/test)")
    p.add_argument("out", metavar="OUT", help="output folder for the bags")
    p.add_argument("--agent", choices=["speaker1", "speaker2", "both"], default="both",
                   help="which speaker is the agent; both = two bags per conversation (default)")
    p.add_argument("--clip", action="append", default=None,
                   help="convert only this clip (repeatable); default: all complete pairs")
    p.add_argument("--limit", type=int, default=None, help="convert at most N clips")
    p.add_argument("--namespace", default="timar", help="topic namespace (default: %(default)s)")
    p.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap",
                   help="rosbag2 storage (default: %(default)s)")
    p.add_argument("--chunk", type=float, default=0.1, help="audio chunk length, s (default: %(default)s)")
    p.add_argument("--turn", type=float, default=1.0,
                   help="motion block length per HeadMotion message, s (default: %(default)s)")
    p.add_argument("--start", type=float, default=1.0,
                   help="stamp of the first sample/frame, s on the bag clock (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace existing bags")


def run_from_dualtalk(args: argparse.Namespace) -> int:
    from timar_ros.bags import DualTalkBagOptions, convert_dualtalk, dualtalk_clips

    clips = args.clip
    if args.limit is not None:
        clips = (clips or dualtalk_clips(args.src))[: args.limit]
    agents = ("speaker1", "speaker2") if args.agent == "both" else (args.agent,)
    opts = DualTalkBagOptions(namespace=args.namespace, storage=args.storage, chunk_s=args.chunk,
                              turn_s=args.turn, start_s=args.start, overwrite=args.overwrite)
    paths = convert_dualtalk(args.src, args.out, agents=agents, clips=clips, opts=opts, log=print)
    print(f"{len(paths)} bag(s) written to {args.out}")
    return 0


# ----------------------------------------------------------------------------- info

def add_info_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bag", metavar="BAG", help="bag folder (or its .mcap/.db3 file)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def run_info(args: argparse.Namespace) -> int:
    from timar_ros.bags import bag_info

    info = bag_info(args.bag)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"bag:      {info['path']}")
    print(f"storage:  {info['storage']}")
    print(f"duration: {info['duration_s']:.3f} s  (start {info['start_ns'] * 1e-9:.3f} s)")
    print(f"messages: {info['message_count']}")
    width = max((len(t) for t in info["topics"]), default=0)
    for name, t in info["topics"].items():
        print(f"  {name:<{width}}  {t['count']:>7}  {t['type']}")
    for k, v in info["custom_data"].items():
        print(f"  {k} = {v}")
    return 0
