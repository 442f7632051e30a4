"""``timar synth OUT_DIR --config config/synthetic.yaml --conversations N --seed S``.

Writes N synthetic two-person conversations in the DualTalk layout (see
:mod:`timar_ros.data.synthetic`; a test bench, not a claim about humans).
"""

from __future__ import annotations

import argparse
import sys
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out_dir", help="output folder (DualTalk layout)")
    p.add_argument(
        "--config",
        default=None,
        help="YAML config (default: the built-in defaults = config/synthetic.yaml)",
    )
    p.add_argument("--conversations", "-n", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--tts",
        choices=["off", "auto", "on"],
        default=None,
        help="override tts.mode (flite voices when installed)",
    )
    p.add_argument("--prefix", default=None, help="clip name prefix (default syn<seed>)")
    p.add_argument(
        "--duration",
        nargs=2,
        type=float,
        metavar=("MIN_S", "MAX_S"),
        default=None,
        help="override turns.duration_s: each conversation lasts a uniform draw in [MIN, MAX] s",
    )


def run(args: argparse.Namespace) -> int:
    from timar_ros.data.synthetic import SyntheticConfig, flite_available, generate_dataset
    from timar_ros.errors import InputError

    cfg = SyntheticConfig.from_yaml(args.config) if args.config else SyntheticConfig()
    if args.tts is not None:
        cfg.tts.mode = args.tts
    if args.duration is not None:
        lo, hi = args.duration
        if not 0 < lo <= hi:
            raise InputError(f"--duration needs 0 < MIN <= MAX seconds, got {lo:g} {hi:g}")
        cfg.turns.duration_s = (lo, hi)
    if cfg.tts.mode == "on" and not flite_available():
        raise InputError(
            "tts mode 'on' needs flite on PATH (apt-get install flite), or use --tts auto"
        )
    if cfg.tts.mode == "auto" and not flite_available():
        print("timar synth: flite not found; procedural audio only")
    t0 = time.perf_counter()
    stats = generate_dataset(
        args.out_dir, cfg, args.conversations, args.seed, args.prefix, progress=sys.stderr.isatty()
    )
    dt = time.perf_counter() - t0
    print(
        f"wrote {stats['conversations']} conversations ({stats['seconds']:.0f} s of audio, "
        f"{stats['tts']} with TTS, {stats['reactions']} listener reactions) to {args.out_dir} "
        f"in {dt:.1f} s"
    )
    return 0
