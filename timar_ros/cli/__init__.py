"""The `timar` command: one module per subcommand, each only argparse and a call into the library.

A subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int``. Only the chosen
command's module is imported, so ``timar --help`` loads neither torch nor rclpy.

Exit codes, the same for every command (:mod:`timar_ros.errors`): 0 success; 2 bad arguments or
input (a missing, empty, truncated or corrupt file, a bad config or value); 1 the run failed;
130 interrupted (Ctrl-C). An error is one line on stderr, ``timar <command>: error: <message>``,
naming the file, the problem and the fix; ``--debug`` shows the traceback as well.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
import warnings

# name -> (module, one-line help). The one registry of subcommands.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("timar_ros.cli.demo", "run the whole ROS 2 pipeline on the bundled conversation"),
    "init-checkpoint": (
        "timar_ros.cli.init_checkpoint",
        "write a randomly initialised checkpoint of a model preset",
    ),
    "bench": ("timar_ros.cli.bench", "benchmark the streaming policy (latency table + JSON)"),
    "import-reference": (
        "timar_ros.cli.import_reference",
        "convert the authors' released TIMAR checkpoint (TIMAR.pth) into a timar_ros checkpoint",
    ),
    "export": (
        "timar_ros.cli.export",
        "export a checkpoint to ONNX graphs for the torch-free runtime",
    ),
    "train": (
        "timar_ros.cli.train",
        "train a TIMAR model on DualTalk-layout folders (CPU/GPU/DDP)",
    ),
    "evaluate": (
        "timar_ros.cli.evaluate",
        "progressive-context evaluation through StreamingPolicy (table + plots)",
    ),
    "metrics": ("timar_ros.cli.metrics", "DualTalk metrics of a prediction folder vs ground truth"),
    "synth": (
        "timar_ros.cli.synth",
        "generate synthetic two-person conversations (DualTalk layout)",
    ),
    "echo": (
        "timar_ros.cli.echo",
        "the robot's own voice taken out of its microphone: bench over simulated rooms",
    ),
    "bag": ("timar_ros.cli.bag", "rosbag2 tools: from-dualtalk, info, play, record, evaluate"),
    "render": (
        "timar_ros.cli.render",
        "draw a motion stream (bag or .npy) as MP4 or a PNG contact sheet",
    ),
    "soak": (
        "timar_ros.cli.soak",
        "long synthetic conversation through the composed pipeline "
        "(dropped turns, memory growth, latency over time)",
    ),
    "calibrate": (
        "timar_ros.cli.calibrate",
        "fit a robot's expression-to-actuator matrix from example pairs",
    ),
}

# Errors that mean "this input cannot be used" when they escape a command, besides InputError.
_INPUT_ERRORS = (ValueError, OSError)
# OSErrors that are the machine's trouble, not the input's (exit 1).
_RUN_ERRNOS = {errno.ENOSPC, errno.EIO, errno.ENOMEM, errno.EDQUOT}


def _message(exc: BaseException) -> str:
    """One line for an error: an OSError as 'path: reason (the fix)', anything else as is."""
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, TimeoutError):
        where = exc.filename if exc.filename is not None else ""
        hint = {
            errno.ENOSPC: "free some disk space",
            errno.EACCES: "check its permissions",
            errno.EPERM: "check its permissions",
            errno.ENOTDIR: "a part of the path is a file",
            errno.EROFS: "choose a writable place",
        }.get(exc.errno, "check the path")
        return f"{where}: {exc.strerror} ({hint})" if where else f"{exc.strerror} ({hint})"
    return str(exc)


def _build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="timar",
        description="TIMAR conversational head motion for ROS 2 robot heads.",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show the traceback of an error",
        )
        if name == command:
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from timar_ros.errors import FAILED, USAGE, TimarError, one_line

    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = _build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return USAGE
    label = " ".join(n for n in (args.command, getattr(args, "bag_command", None)) if n)
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, category, *rest: print(
            f"timar {label}: warning: {message}", file=sys.stderr
        )
        try:
            return int(args._run(args) or 0)
        except KeyboardInterrupt:
            print(f"timar {label}: interrupted", file=sys.stderr)
            return 130
        except (TimarError, *_INPUT_ERRORS) as exc:
            if getattr(args, "debug", False):
                raise
            if isinstance(exc, TimarError):
                code = exc.exit_code
            elif isinstance(exc, OSError) and exc.errno in _RUN_ERRNOS:
                code = FAILED
            else:
                code = USAGE
            print(f"timar {label}: error: {one_line(_message(exc))}", file=sys.stderr)
            return code


if __name__ == "__main__":
    sys.exit(main())
