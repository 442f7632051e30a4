"""`timar init-checkpoint --preset NAME OUT_DIR`: a randomly initialised checkpoint of a preset
(safetensors + config.json + model card), for tests and benchmarks."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def make_random_checkpoint(preset_name: str, out_dir: str | Path, seed: int = 0,
                           perturb: float = 0.02, **overrides) -> Path:
    """Build ``TIMAR(preset(preset_name, **overrides))`` with torch seed ``seed``, perturb the
    zero-initialised head weights by N(0, perturb) (so motion depends on the inputs) and save."""
    import torch

    from .model.config import preset
    from .model.timar import TIMAR, perturb_zero_init
    from .runtime.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    model = TIMAR(preset(preset_name, **overrides))
    if perturb > 0:
        perturb_zero_init(model, perturb, seed)
    card = {
        "name": Path(out_dir).name,
        "preset": preset_name,
        "trained": False,
        "description": "randomly initialised weights (tests and benchmarks only; produces "
                       "meaningless motion)",
        "seed": seed,
        "head_perturbation_std": perturb,
        "trainable_parameters": model.num_parameters(),
    }
    return save_checkpoint(model, out_dir, model_card=card)


def _value(v: str):
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .model.config import PRESETS

    parser.add_argument("out_dir", help="checkpoint folder to write")
    parser.add_argument("--preset", default="robot", choices=sorted(PRESETS),
                        help="model size preset (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed")
    parser.add_argument("--perturb", type=float, default=0.02,
                        help="std of the noise added to the zero-initialised head weights "
                             "(0 = exact reference init; default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set frames_per_turn=10")


def run(args: argparse.Namespace) -> int:
    overrides = {}
    for kv in args.set:
        if "=" not in kv:
            raise SystemExit(f"--set expects KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        overrides[k] = _value(v)
    d = make_random_checkpoint(args.preset, args.out_dir, args.seed, args.perturb, **overrides)
    from .runtime.checkpoint import model_id

    print(f"wrote {d} ({model_id(d)})")
    return 0
