"""How well the head faced its partner, from a recorded bag: the partner's position
(``attention/point``, e.g. scripted_partner's) against the head's commanded yaw (``joint_states``).
"""

from __future__ import annotations

import math

import numpy as np

from timar_ros import bags, topics


def attention_figures(bag, namespace: str = topics.DEFAULT_NAMESPACE, settled_s: float = 1.5):
    """Figures (degrees, seconds) or None when the bag has no partner position:

    - ``partner_azimuth_deg``: where the partner stood first and last;
    - ``yaw_error_deg`` p50/p95: |head yaw - partner azimuth| once the partner has stood still
      for ``settled_s`` s (the head had time to get there), within the yaw limits;
    - ``turn_s``: after the partner's last move, how long until the head was within 3 degrees.
    Targets in the base frame only (what scripted_partner publishes)."""
    from timar_ros.robot.retarget_config import load_retarget_config

    name = lambda rel: topics.resolve(rel, namespace)  # noqa: E731
    with bags.BagReader(bag) as r:
        if name(topics.ATTENTION_POINT) not in r.topics:
            return None
        pts = [
            (bags.stamp_ns(m) * 1e-9, math.atan2(m.point.y, m.point.x))
            for _, _, _, m in r.messages([name(topics.ATTENTION_POINT)])
        ]
        joints = r.records(name(topics.JOINT_STATES))
    if len(pts) < 2 or not joints:
        return None
    cfg = load_retarget_config()
    yaw_map = next(m for m in cfg.head_rotation if m.source == "yaw")
    k = cfg.joint_names.index(yaw_map.joint)
    lo, hi = cfg.limits()["min"][k], cfg.limits()["max"][k]
    t_p, az = np.array(pts).T
    t_j = np.array([j.stamp_ns for j in joints]) * 1e-9
    yaw = np.array([(j.position[k] - yaw_map.offset) * yaw_map.sign for j in joints])
    inside = (t_j >= t_p[0]) & (t_j <= t_p[-1])
    target = np.clip(
        np.interp(t_j, t_p, az), lo + cfg.gaze.yaw_headroom, hi - cfg.gaze.yaw_headroom
    )
    moving = np.abs(np.diff(az)) > 1e-6
    move_ends = t_p[1:][moving]
    last_move = move_ends[-1] if move_ends.size else t_p[0]
    # since when the partner stood still: the end of their last move (or the first point)
    ends = np.concatenate([t_p[:1], move_ends])
    still_since = ends[np.maximum(np.searchsorted(ends, t_j, side="right") - 1, 0)]
    settled = inside & (t_j - still_since >= settled_s)
    err = np.degrees(np.abs(yaw - target))
    after = inside & (t_j >= last_move)
    close = np.nonzero(after & (err < 3.0))[0]
    return {
        "partner_azimuth_deg": [round(math.degrees(az[0]), 1), round(math.degrees(az[-1]), 1)],
        "yaw_error_deg": {
            "p50": round(float(np.percentile(err[settled], 50)), 2) if settled.any() else None,
            "p95": round(float(np.percentile(err[settled], 95)), 2) if settled.any() else None,
        },
        "turn_s": round(float(t_j[close[0]] - last_move), 2) if close.size else None,
        "partner_moves": int(move_ends.size > 0),
    }
