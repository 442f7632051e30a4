"""``timar bag SUBCOMMAND ...``: rosbag2 tools. ``from-dualtalk`` and ``info`` are pure Python (no
ROS needed); ``play`` and ``record`` run the bag_player / bag_recorder nodes in this process;
``evaluate`` scores the pipeline on a bag (:mod:`timar_ros.eval.bag_eval`), offline or, with
``--live``, through the composed nodes over DDS."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from timar_ros import topics

# name -> help; each has add_<name>_arguments and run_<name> below (dashes as underscores).
SUBCOMMANDS: dict[str, str] = {
    "from-dualtalk": "convert DualTalk conversations into bags",
    "info": "summarize a bag: storage, duration, topics, counts",
    "play": "replay a bag onto live topics (optionally with /clock)",
    "record": "record the pipeline's topics to a bag",
    "evaluate": "score the pipeline's motion on a bag against its ground truth",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bag_command", metavar="SUBCOMMAND")
    for name, help_text in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        fn = name.replace("-", "_")
        globals()[f"add_{fn}_arguments"](p)
        p.set_defaults(_bag_run=globals()[f"run_{fn}"])
    parser.set_defaults(_bag_parser=parser)


def run(args: argparse.Namespace) -> int:
    if args.bag_command is None:
        args._bag_parser.print_help()
        return 2
    return int(args._bag_run(args) or 0)


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
    p.add_argument(
        "--agent",
        choices=["speaker1", "speaker2", "both"],
        default="both",
        help="which speaker is the agent; both = two bags per conversation (default)",
    )
    p.add_argument(
        "--clip",
        action="append",
        default=None,
        help="convert only this clip (repeatable); default: all complete pairs",
    )
    p.add_argument("--limit", type=int, default=None, help="convert at most N clips")
    p.add_argument(
        "--namespace",
        default=topics.DEFAULT_NAMESPACE,
        help="topic namespace (default: %(default)s)",
    )
    p.add_argument(
        "--storage",
        choices=["mcap", "sqlite3"],
        default="mcap",
        help="rosbag2 storage (default: %(default)s)",
    )
    p.add_argument(
        "--chunk", type=float, default=0.1, help="audio chunk length, s (default: %(default)s)"
    )
    p.add_argument(
        "--turn",
        type=float,
        default=1.0,
        help="motion block length per HeadMotion message, s (default: %(default)s)",
    )
    p.add_argument(
        "--start",
        type=float,
        default=1.0,
        help="stamp of the first sample/frame, s on the bag clock (default: %(default)s)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing bags")


def run_from_dualtalk(args: argparse.Namespace) -> int:
    from timar_ros.bags import DualTalkBagOptions, convert_dualtalk, dualtalk_clips

    clips = args.clip
    if args.limit is not None:
        clips = (clips or dualtalk_clips(args.src))[: args.limit]
    agents = ("speaker1", "speaker2") if args.agent == "both" else (args.agent,)
    opts = DualTalkBagOptions(
        namespace=args.namespace,
        storage=args.storage,
        chunk_s=args.chunk,
        turn_s=args.turn,
        start_s=args.start,
        overwrite=args.overwrite,
    )
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


# ----------------------------------------------------------------------------- play / record


def add_play_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Replay a bag onto live topics (its recorded wire bytes, paced by log time), "
        "like `ros2 bag play`. With --clock, /clock carries the bag's time: start the "
        "nodes with use_sim_time:=true and the recorded stamps line up with their clock."
    )
    p.add_argument("bag", metavar="BAG", help="bag folder (mcap or sqlite3)")
    p.add_argument(
        "--rate", type=float, default=1.0, help="playback rate (default: %(default)s = real time)"
    )
    p.add_argument("--clock", action="store_true", help="publish /clock with the bag's time")
    p.add_argument(
        "--clock-rate", type=float, default=100.0, help="/clock rate, Hz (default: %(default)s)"
    )
    p.add_argument(
        "--topics",
        nargs="+",
        default=None,
        metavar="TOPIC",
        help="absolute topic names to play (default: every topic)",
    )
    p.add_argument(
        "--delay",
        type=float,
        default=1.0,
        help="seconds to wait before playing, for subscribers to connect (default: %(default)s)",
    )
    p.add_argument(
        "--wait-for-subscribers",
        type=int,
        default=0,
        metavar="N",
        help="also wait until every played topic has N subscribers (default: %(default)s)",
    )


def run_play(args: argparse.Namespace) -> int:
    import time

    from timar_ros.nodes.bag_player import BagPlayer
    from timar_ros.nodes.compose import RosSession

    if not 0.01 <= args.rate <= 1000:
        raise ValueError(f"--rate must be in [0.01, 1000], got {args.rate:g}")
    with RosSession() as ros:
        player = ros.add(
            BagPlayer,
            bag=str(args.bag),
            rate=float(args.rate),
            publish_clock=bool(args.clock),
            clock_rate_hz=float(args.clock_rate),
            topics=list(args.topics or ["all"]),
            start_delay_s=float(args.delay),
            wait_for_subscribers=int(args.wait_for_subscribers),
        )
        while not player.done:
            time.sleep(0.05)
    return 0


def add_record_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Record the pipeline's topics to a rosbag2 (wire bytes as received) until "
        "Ctrl-C, like `ros2 bag record`. Topics are relative to --namespace unless absolute."
    )
    p.add_argument("out", metavar="OUT", help="bag folder to write")
    p.add_argument(
        "--topics",
        nargs="+",
        default=None,
        metavar="TOPIC",
        help="topics to record (default: the pipeline's topics, see config/timar.yaml)",
    )
    p.add_argument(
        "--namespace",
        default=topics.DEFAULT_NAMESPACE,
        help="namespace of relative topics (default: %(default)s)",
    )
    p.add_argument(
        "--storage",
        choices=["mcap", "sqlite3"],
        default="mcap",
        help="rosbag2 storage (default: %(default)s)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing bag folder")
    p.add_argument(
        "--use-sim-time",
        action="store_true",
        help="log messages on /clock's time (when a bag is replayed with --clock)",
    )


def run_record(args: argparse.Namespace) -> int:
    import time

    from timar_ros.nodes.bag_recorder import BagRecorder
    from timar_ros.nodes.compose import RosSession

    params = {
        "output": str(args.out),
        "storage": args.storage,
        "overwrite": bool(args.overwrite),
        "use_sim_time": bool(args.use_sim_time),
    }
    if args.topics:
        params["topics"] = list(args.topics)
    ns = "/" + args.namespace.strip("/") if args.namespace.strip("/") else "/"
    try:
        with RosSession() as ros:
            ros.add(BagRecorder, namespace=ns, **params)
            while True:  # until Ctrl-C; the recorder closes the bag when the session ends
                time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    print(f"wrote {args.out}")
    return 0


# ----------------------------------------------------------------------------- evaluate


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Run the pipeline on a bag's audio (and partner motion) and score the produced head motion "
        "against the bag's ground truth (<ns>/ground_truth/head_motion) with the DualTalk metrics, "
        "the partner's motion (<ns>/user/motion) as the anchor. Offline (default) feeds the bag "
        "through the node's conversation loop; --live replays it over DDS through the running "
        "nodes (conversation_policy on /clock) and records their output. Writes OUT/report.json, "
        "OUT/report.md, OUT/motion.png and OUT/predictions/<name>.npy (for `timar metrics`)."
    )
    p.add_argument("bag", metavar="BAG", help="bag folder (e.g. from `timar bag from-dualtalk`)")
    p.add_argument("--live", action="store_true", help="replay through the ROS 2 nodes over DDS")
    p.add_argument(
        "--checkpoint", default="", help="checkpoint folder (default: the bundled model)"
    )
    p.add_argument(
        "--backend",
        choices=["torch", "onnx", "auto"],
        default="torch",
        help="policy backend (default: %(default)s)",
    )
    p.add_argument(
        "--out", default=None, help="output folder (default: eval_output/bag_<bag name>)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="policy sampling seed (default: %(default)s)"
    )
    p.add_argument(
        "--metrics-seed",
        type=int,
        default=0,
        help="seed of the diversity pair sampling, as `timar metrics --seed` "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--rate", type=float, default=1.0, help="--live playback rate (default: %(default)s)"
    )
    p.add_argument(
        "--namespace", default=None, help="topic namespace in the bag (default: detected)"
    )
    p.add_argument(
        "--retargeter",
        action="store_true",
        help="--live: also run head_retargeter and record its joint_states",
    )
    p.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="a conversation_policy parameter (repeatable), e.g. -p deadline_ms:=100.0",
    )


def _params(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise ValueError(f"-p expects NAME:=VALUE, got {item!r}")
        out[name.strip()] = yaml.safe_load(value)
    return out


def run_evaluate(args: argparse.Namespace) -> int:
    from timar_ros.cli._common import key_values
    from timar_ros.eval.bag_eval import evaluate_bag
    from timar_ros.eval.tables import pub_lines

    out = (
        Path(args.out) if args.out else Path("eval_output") / f"bag_{Path(args.bag).resolve().name}"
    )
    report = evaluate_bag(
        args.bag,
        out,
        live=args.live,
        checkpoint=args.checkpoint,
        seed=args.seed,
        rate=args.rate,
        backend=args.backend,
        namespace=args.namespace,
        params=key_values(args.param, ":=", "-p"),
        metrics_seed=args.metrics_seed,
        retargeter=args.retargeter,
    )
    print(
        f"{report['name']} ({report['mode']}): {report['turns']} turns, produced "
        f"{report['produced_turns']}, skipped {report['skipped_turns']}, late "
        f"{report['late_turns']}, "
        f"padded {report['padded_turns']}; {report['wall_s']} s"
    )
    print(report["metrics_note"])
    if report["pub"]:
        print("\n".join(pub_lines(report["pub"])))
    print(
        f"wrote {out}/report.json, {out}/report.md, {report['predictions']}"
        + (f", {report['plot']}" if report.get("plot") else "")
    )
    return 0
