"""``timar evaluate --checkpoint CKPT --data TEST_DIR [--context 0 1 3 7] [--out EVAL]``: the
progressive-context protocol (:mod:`timar_ros.eval.progressive`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from timar_ros.model.config import AUDIO_NORMS

    p.add_argument(
        "--checkpoint", required=True, help="checkpoint folder (model.safetensors + config.json)"
    )
    p.add_argument("--data", required=True, help="DualTalk-layout test folder")
    p.add_argument(
        "--context",
        nargs="+",
        default=["0", "1", "3", "7"],
        help="previous turns the policy sees, n (the reference's crop), or 'stream' (the full "
        "streamed history, as the robot runs; default: 0 1 3 7)",
    )
    p.add_argument("--out", default=None, help="output folder (default eval_output/<checkpoint>)")
    p.add_argument("--limit", type=int, default=None, help="only the first N test files")
    p.add_argument(
        "--offline",
        action="store_true",
        help="run_offline (parallel forward; same numbers) instead of stepping",
    )
    p.add_argument("--seed", type=int, default=0, help="policy noise seed (every file)")
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="several noise seeds: behaviour metrics as mean +- std over them (the DualTalk "
        "table uses the first; default: --seed)",
    )
    p.add_argument(
        "--backend",
        default="torch",
        choices=["torch", "onnx"],
        help="StreamingPolicy backend (default: %(default)s)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--audio-norm",
        default=None,
        choices=AUDIO_NORMS,
        help="waveform normalisation before the speech encoder (default: the checkpoint's; "
        "'file' = the reference's whole-file statistics, 'running' = causal, as a robot runs)",
    )
    p.add_argument(
        "--no-user-motion",
        action="store_true",
        help="do not give the user's motion (a robot without a camera)",
    )
    p.add_argument(
        "--tick-s",
        type=float,
        default=None,
        help="stream inside the turn: the 'stream' context emits a block every TICK_S seconds "
        "(a multiple of 0.04), as the robot's conversation_policy with tick_s (default: the "
        "1-s mode, one block per turn)",
    )
    p.add_argument(
        "--lookahead-s",
        type=float,
        default=0.0,
        help="with --tick-s: partner audio heard beyond each block (s, multiple of 0.04)",
    )
    p.add_argument(
        "--prefix",
        choices=["on", "off"],
        default=None,
        help="with --tick-s: show the model the frames of the turn already emitted, or not "
        "(default: the checkpoint's show_prefix)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads of the policy (default: the backend's; 1 lets two evaluations share "
        "a 2-core machine with less waste than two threads each)",
    )
    p.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="classifier-free guidance scale (default: the checkpoint's guidance_scale; 1 = off)",
    )
    p.add_argument(
        "--guidance-every",
        type=int,
        default=None,
        help="with guidance and --tick-s: the pass without the partner at every k-th tick of a "
        "turn, reused between (default: the checkpoint's guidance_every; 1 = every tick)",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="sampling temperature (default: the checkpoint's)",
    )
    p.add_argument("--plots", type=int, default=3, help="files to plot (default 3)")
    p.add_argument("--jobs", type=int, default=1, help="metric worker processes")
    p.add_argument("--label", default="", help="row label prefix in table.md")


def run(args: argparse.Namespace) -> int:
    from timar_ros.eval.progressive import evaluate, parse_contexts

    out = args.out or str(Path("eval_output") / Path(args.checkpoint).name)
    rep = evaluate(
        args.checkpoint,
        args.data,
        parse_contexts(args.context),
        out,
        offline=args.offline,
        limit=args.limit,
        seed=args.seed,
        seeds=args.seeds,
        backend=args.backend,
        device=args.device,
        user_motion=not args.no_user_motion,
        plot_files=args.plots,
        jobs=args.jobs,
        progress=sys.stderr.isatty(),
        label=args.label,
        policy_options={
            **({"audio_norm": args.audio_norm} if args.audio_norm else {}),
            **({"show_prefix": args.prefix == "on"} if args.prefix else {}),
            **({"threads": args.threads} if args.threads else {}),
            **({"guidance_scale": args.guidance} if args.guidance is not None else {}),
            **({"guidance_every": args.guidance_every} if args.guidance_every else {}),
            **({"temperature": args.temperature} if args.temperature is not None else {}),
        }
        or None,
        tick_s=args.tick_s,
        lookahead_s=args.lookahead_s,
    )
    print((Path(out) / "table.md").read_text(), end="")
    for n, c in rep["contexts"].items():
        print(f"n = {n}: {c['files']} files, {c['ms_per_turn']} ms/turn ({rep['mode']})")
    print(
        f"wrote {out}/report.json, {out}/table.md, {out}/plots/, predictions in {out}/context_<n>/"
    )
    return 0
