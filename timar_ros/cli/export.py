"""``timar export CHECKPOINT [OUT_DIR]``: ONNX graphs of a checkpoint for the torch-free runtime
(:mod:`timar_ros.runtime.export`)."""

from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from timar_ros.runtime.onnx_format import OPSET

    parser.add_argument("checkpoint", help="checkpoint folder (model.safetensors + config.json)")
    parser.add_argument(
        "out_dir",
        nargs="?",
        default=None,
        help="export folder (default: CHECKPOINT/onnx, where backend=auto finds it)",
    )
    parser.add_argument(
        "--num-sampling-steps",
        type=int,
        default=None,
        help="diffusion sampling steps baked into sample.onnx (default: the checkpoint's)",
    )
    parser.add_argument(
        "--opset", type=int, default=OPSET, help="ONNX opset (default: %(default)s)"
    )


def run(args: argparse.Namespace) -> int:
    from timar_ros.runtime.export import export_checkpoint
    from timar_ros.runtime.onnx_format import read_manifest

    t0 = time.monotonic()
    out = export_checkpoint(args.checkpoint, args.out_dir, args.num_sampling_steps, args.opset)
    m = read_manifest(out)
    size = sum(g["bytes"] for g in m["graphs"].values())
    print(
        f"wrote {out} ({len(m['graphs'])} graphs, {size / 1e6:.1f} MB, model {m['model_id']}) "
        f"in {time.monotonic() - t0:.0f} s"
    )
    return 0
