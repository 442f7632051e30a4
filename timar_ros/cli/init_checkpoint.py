"""``timar init-checkpoint --preset NAME OUT_DIR``: a randomly initialised checkpoint of a preset
(safetensors + config.json + model card), for tests and benchmarks."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from timar_ros.model.config import PRESETS

    parser.add_argument("out_dir", help="checkpoint folder to write")
    parser.add_argument(
        "--preset",
        default="robot",
        choices=sorted(PRESETS),
        help="model size preset (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed")
    parser.add_argument(
        "--perturb",
        type=float,
        default=0.02,
        help="std of the noise added to the zero-initialised head weights "
        "(0 = exact reference init; default: %(default)s)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set frames_per_turn=10",
    )


def run(args: argparse.Namespace) -> int:
    from timar_ros.cli._common import key_values
    from timar_ros.runtime.checkpoint import make_random_checkpoint, model_id

    d = make_random_checkpoint(
        args.preset, args.out_dir, args.seed, args.perturb, **key_values(args.set)
    )
    print(f"wrote {d} ({model_id(d)})")
    return 0
