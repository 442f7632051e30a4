"""``timar metrics PRED_DIR GT_DIR [--json OUT]``: the DualTalk metrics of a prediction folder
(:mod:`timar_ros.eval.metrics`).

PRED_DIR holds ``<name>.npy`` [T, 56] (exp | jaw | rotation); GT_DIR holds the DualTalk layout
(``<name>.npz`` is the ground truth, its partner ``.npz`` the anchor). Prints the raw averages
under the reference's key names and the published scaling; ``--json`` writes both, plus the
per-file values.
"""

from __future__ import annotations

import argparse
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pred_dir", help="folder of <name>.npy predictions [T, 56]")
    p.add_argument("gt_dir", help="DualTalk-layout folder with <name>.npz and partner .npz")
    p.add_argument("--json", dest="json_out", default=None, help="write the report here")
    p.add_argument("--seed", type=int, default=0, help="seed of the diversity pair sampling")
    p.add_argument("--jobs", type=int, default=1, help="parallel worker processes (joblib)")
    p.add_argument(
        "--expect",
        type=int,
        default=None,
        help="fail unless exactly this many valid predictions (e.g. 1066 or 754)",
    )


def run(args: argparse.Namespace) -> int:
    from timar_ros.eval.metrics import evaluate_dirs
    from timar_ros.eval.tables import exclusion_note, pub_lines
    from timar_ros.files import write_json

    t0 = time.perf_counter()
    rep = evaluate_dirs(
        args.pred_dir, args.gt_dir, seed=args.seed, jobs=args.jobs, expect=args.expect
    )
    rep["seconds"] = round(time.perf_counter() - t0, 3)
    for name, why in rep["skipped"].items():
        print(f"skipped {name}: {why}")
    print(f"files: {rep['files']} of {rep['predictions']} predictions  ({rep['seconds']} s)")
    if rep["excluded_files"]:
        print(f"excluded: {exclusion_note(rep)}")
    print("=== raw averages ===")
    for k, v in rep["metrics"].items():
        print(f"{k:22s} {v:.6g}")
    print("\n".join(pub_lines(rep["pub"])))
    if args.json_out:
        print(f"wrote {write_json(args.json_out, rep)}")
    return 0
