"""``timar train --data DIR [DIR ...] --out RUN --steps N`` (or ``--resume RUN``): train TIMAR on
DualTalk-layout folders (:mod:`timar_ros.training.loop`). Several processes:
``torchrun --nproc_per_node=N -m timar_ros.cli train ...`` (or the ``timar`` script)."""

from __future__ import annotations

import argparse
import os

# CLI flag -> TrainConfig field; argparse defaults are None so that only given flags override
# (the run's saved config on --resume, TrainConfig's defaults otherwise).
_FLAGS = [
    "data",
    "val",
    "out",
    "preset",
    "init",
    "turns",
    "stride_turns",
    "steps",
    "epochs",
    "batch_size",
    "lr",
    "betas",
    "weight_decay",
    "grad_clip",
    "ema",
    "warmup_steps",
    "schedule",
    "min_lr",
    "amp",
    "seed",
    "device",
    "workers",
    "save_every",
    "log_every",
    "val_every",
    "val_batches",
    "threads",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from timar_ros.training.config import AMP_MODES, TrainConfig
    from timar_ros.training.schedule import SCHEDULES

    d = TrainConfig()
    p.add_argument("--data", nargs="+", metavar="DIR", help="DualTalk-layout training folder(s)")
    p.add_argument("--val", metavar="DIR", help="DualTalk-layout validation folder")
    p.add_argument("--out", metavar="RUN", help="run folder (checkpoint + state + log + plot)")
    p.add_argument("--preset", help=f"model preset (default {d.preset})")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a model config field, e.g. --set head=mlp",
    )
    p.add_argument(
        "--init",
        metavar="CKPT",
        help="fine-tune: start from this checkpoint's config, weights and motion scale "
        "(--set changes fields of its config; optimizer and schedule start fresh)",
    )
    p.add_argument(
        "--streaming",
        type=float,
        metavar="P",
        help="train for streaming inside the turn (the robot's ticks): the last turn of a share "
        "P of the windows is cut as a tick sees it (sets the model's stream_train_prob; "
        "stream_max_ahead and stream_loss_weight via --set); default 0, the 1-s mode only",
    )
    p.add_argument("--resume", metavar="RUN", help="continue a run folder (exactly)")
    p.add_argument("--turns", type=int, help="window turns S (default: the model's window_turns)")
    p.add_argument(
        "--stride-turns",
        type=int,
        help="turns between the starts of training windows (default S: no overlap)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="total optimizer steps")
    g.add_argument("--epochs", type=float, help="total epochs (reference: 400)")
    p.add_argument("--batch-size", type=int, help=f"per process (default {d.batch_size})")
    p.add_argument("--lr", type=float, help="peak learning rate (default 1e-4 x global batch/256)")
    p.add_argument("--betas", type=float, nargs=2, help="AdamW betas (default 0.9 0.95)")
    p.add_argument("--weight-decay", type=float, help=f"default {d.weight_decay}")
    p.add_argument("--grad-clip", type=float, help=f"gradient norm clip (default {d.grad_clip})")
    p.add_argument("--ema", type=float, help=f"EMA rate (default {d.ema}; short runs: 0.999)")
    p.add_argument("--warmup-steps", type=int, help="linear warmup steps (default 25%% of steps)")
    p.add_argument("--schedule", choices=SCHEDULES, help="after warmup")
    p.add_argument("--min-lr", type=float, help="cosine floor (default 0)")
    p.add_argument("--amp", choices=AMP_MODES, help="fp16 AMP (auto: CUDA only)")
    p.add_argument("--seed", type=int, help=f"default {d.seed} (+ rank)")
    p.add_argument("--device", help="auto | cpu | cuda (default auto)")
    p.add_argument("--workers", type=int, help="DataLoader worker processes (default 0)")
    p.add_argument("--save-every", type=int, help=f"steps (default {d.save_every})")
    p.add_argument("--log-every", type=int, help=f"steps (default {d.log_every})")
    p.add_argument("--val-every", type=int, help="steps (default: at every save)")
    p.add_argument("--val-batches", type=int, help=f"default {d.val_batches}")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")


def run(args: argparse.Namespace) -> int:
    from timar_ros.cli._common import key_values
    from timar_ros.training.config import resolve_config
    from timar_ros.training.loop import train

    given = {k: getattr(args, k) for k in _FLAGS if getattr(args, k, None) is not None}
    if args.no_progress:
        given["progress"] = False
    overrides = key_values(args.set)
    if args.streaming is not None:
        overrides["stream_train_prob"] = args.streaming
    cfg = resolve_config(given, overrides, args.resume)
    s = train(cfg, resume=args.resume)
    if int(os.environ.get("RANK", 0)) == 0:
        print(
            f"timar train: step {s['step']} ({s['epochs']} epochs) in {s['wall_s']:.0f} s; "
            f"final train loss {s['final_train_loss']}; checkpoint {cfg.out}"
        )
    return 0
