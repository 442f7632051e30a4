"""Do TIMAR's nods survive on top of the gaze? Offline, on the motion TIMAR generated (a bag's
head_motion, e.g. the demo's): the same frames played through the head_retargeter's player
without a target (TIMAR alone, as before attention) and with the head turned to targets, near
and past the joint limits, with the gaze kept ``headroom`` inside the limits (a shift) and
without (the sum clipped at the limit).

The head's offset from its gaze, ``ypr(R_gaze^T R_head)``, is compared with TIMAR's own rotation
(the player's neck angles without a target): per axis the correlation and the ratio of standard
deviations (1 = the motion kept whole).

    python -m timar_ros.eval.gaze_figures demo_output/bag
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np

from timar_ros import topics
from timar_ros.motion import EXP, JAW, ROT
from timar_ros.resources import share_dir

# (yaw, pitch) in degrees: ahead, to the side and up, at the yaw limit, past both limits
TARGETS_DEG = ((0.0, 0.0), (40.0, -15.0), (65.0, 0.0), (90.0, 40.0), (-90.0, -40.0))


def _play(config, motion: np.ndarray, period: float, target_deg, servo_hz: float = 100.0):
    """Neck yaw/pitch/roll [K, 3] (rad) and the gaze [K, 2] over the motion, with the head
    turned to ``target_deg`` (None: no attention at all)."""
    from timar_ros.robot.attention import SOUND, AttentionConfig
    from timar_ros.robot.retarget import MotionPlayer
    from timar_ros.robot.targets import build_gaze

    gaze = None
    if target_deg is not None:
        urdf = share_dir() / "urdf" / "expressive_head.urdf"
        gaze, _ = build_gaze(config, urdf, "base_link", "camera_link", AttentionConfig(), 1.2)
    player = MotionPlayer(config, gaze=gaze)
    player.add_block(0.0, period, motion[:, EXP], motion[:, JAW], motion[:, ROT])
    idx = [config.joint_names.index(m.joint) for m in config.head_rotation]
    ts = np.arange(0.0, len(motion) * period, 1.0 / servo_hz)
    neck, gazes = [], []
    for t in ts:
        if gaze is not None:
            gaze.attention.offer(SOUND, t, np.radians(target_deg), t)
        neck.append(player.step(t)[idx])
        gazes.append(gaze.shifter.at(t)[0] if gaze is not None else np.zeros(2))
    return ts, np.array(neck), np.array(gazes)


def nod_survival(config, motion: np.ndarray, period: float, targets=TARGETS_DEG) -> list[dict]:
    """Per target and headroom (the config's, none): correlation and std ratio of the head's
    offset from its gaze with TIMAR's own rotation, per axis (pitch = nods, roll, yaw), after
    the first 2 s (the turn to the target)."""
    from timar_ros.robot.rotations import matrix_to_ypr, ypr_to_matrix

    ts, own, _ = _play(config, motion, period, None)
    keep = ts > 2.0
    flat = dataclasses.replace(
        config, gaze=dataclasses.replace(config.gaze, yaw_headroom=0.0, pitch_headroom=0.0)
    )
    rows = []
    for target in targets:
        for name, cfg in (("shift", config), ("clip", flat)):
            _, neck, gaze = _play(cfg, motion, period, target)
            g = ypr_to_matrix(np.concatenate([gaze, np.zeros((len(gaze), 1))], 1))
            rel = matrix_to_ypr(np.swapaxes(g, -1, -2) @ ypr_to_matrix(neck))
            row = {"target_deg": list(target), "saturation": name}
            for k, axis in enumerate(("yaw", "pitch", "roll")):
                a, b = rel[keep, k], own[keep, k]
                row[axis] = {
                    "corr": round(float(np.corrcoef(a, b)[0, 1]), 3),
                    "std_ratio": round(float(np.std(a) / max(np.std(b), 1e-12)), 3),
                }
            rows.append(row)
    return rows


def main(argv=None) -> int:
    from timar_ros import bags
    from timar_ros.robot.retarget_config import load_retarget_config

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bag", help="a bag with the generated head_motion (e.g. demo_output/bag)")
    p.add_argument("--namespace", default=topics.DEFAULT_NAMESPACE)
    args = p.parse_args(argv)
    with bags.BagReader(args.bag) as r:
        recs = r.records(topics.resolve(topics.HEAD_MOTION, args.namespace))
    motion, period, _ = bags.concat_motion(recs, path=args.bag)
    rows = nod_survival(load_retarget_config(), motion, period)
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
