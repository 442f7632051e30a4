"""``timar import-reference TIMAR.pth --wav2vec2 DIR OUT_DIR``: the authors' released checkpoint
as a timar_ros checkpoint (:mod:`timar_ros.runtime.reference_import`)."""

from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from timar_ros.runtime.reference_import import WEIGHT_CHOICES

    parser.add_argument("checkpoint", help="the reference's checkpoint file (e.g. TIMAR.pth)")
    parser.add_argument("out_dir", help="checkpoint folder to write (model.safetensors + config)")
    parser.add_argument(
        "--wav2vec2",
        required=True,
        metavar="DIR",
        help="local wav2vec 2.0 directory in save_pretrained layout (the published model uses "
        "facebook/wav2vec2-large-960h-lv60-self); nothing is downloaded",
    )
    parser.add_argument(
        "--weights",
        choices=WEIGHT_CHOICES,
        default="ema",
        help="which weights: the EMA ones (the published evaluation's, default) or the raw model",
    )
    parser.add_argument(
        "--num-heads",
        type=int,
        default=None,
        help="attention heads, for a model that is not timar_base/large/huge",
    )
    parser.add_argument(
        "--num-sampling-steps",
        type=int,
        default=5,
        help="respaced diffusion steps at inference (default: the published %(default)s)",
    )
    parser.add_argument(
        "--copy-wav2vec2",
        action="store_true",
        help="copy the wav2vec2 directory into OUT_DIR/wav2vec2 (a self-contained folder to "
        "deploy) instead of referencing it by absolute path",
    )


def run(args: argparse.Namespace) -> int:
    from timar_ros.runtime.reference_import import import_reference

    t0 = time.monotonic()
    import_reference(
        args.checkpoint,
        args.wav2vec2,
        args.out_dir,
        weights=args.weights,
        num_heads=args.num_heads,
        num_sampling_steps=args.num_sampling_steps,
        copy_wav2vec2=args.copy_wav2vec2,
    )
    print(f"done in {time.monotonic() - t0:.0f} s")
    return 0
