"""``timar calibrate PAIRS.npz --config IN.yaml --out OUT.yaml``: fit a robot's expression ->
facial actuator matrix by least squares from example pairs (:mod:`timar_ros.robot.calibration`)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pairs", help="npz with expression [N,50], actuators [N,J], joints [J]")
    parser.add_argument("--config", required=True, help="retarget YAML to start from")
    parser.add_argument("--out", required=True, help="where to write the calibrated YAML")
    parser.add_argument("--ridge", type=float, default=0.0, help="L2 penalty (0 = least squares)")
    parser.add_argument("--no-bias", action="store_true", help="fit without an intercept")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from timar_ros.robot.calibration import fit_expression_map, load_pairs, write_expression_map

    expression, actuators, joints = load_pairs(args.pairs)
    fit = fit_expression_map(
        expression, actuators, joints, ridge=args.ridge, fit_bias=not args.no_bias
    )
    write_expression_map(args.config, args.out, fit)
    print(
        f"wrote {args.out}: {len(fit.joints)} actuators, rank {fit.rank}, "
        f"RMS error (rad) {np.array2string(fit.rms_error, precision=4)}"
    )
    return 0
