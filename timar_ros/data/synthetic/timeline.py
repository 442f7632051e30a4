"""The conversation timeline: who speaks when (turns, pauses, overlaps, backchannels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from timar_ros.data.synthetic.config import SyntheticConfig
from timar_ros.data.synthetic.rules import engagement_after, engagement_gain
from timar_ros.data.synthetic.signals import frame_rms, runs, uniform
from timar_ros.motion import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME


@dataclass
class Segment:
    speaker: int
    start: float  # seconds
    end: float
    kind: str  # "turn" | "backchannel"


def find_pauses(
    x: np.ndarray, min_pause_s: float, thr_rel: float = 0.05
) -> list[tuple[float, float]]:
    """Internal silences (start_s, end_s) of at least ``min_pause_s`` in a single utterance."""
    n = len(x) // SAMPLES_PER_FRAME
    if n < 3:
        return []
    rms = frame_rms(x, n)
    act = rms > thr_rel * float(np.percentile(rms, 95))
    silent = runs(~act)
    mp = int(round(min_pause_s * FPS))
    return [(s / FPS, e / FPS) for s, e in silent if e - s >= mp and s > 0 and e < n]


def plan_conversation(cfg: SyntheticConfig, sources, rng, duration_s: float | None = None):
    """Place turns and backchannels of two sources on a timeline.

    Returns ``(tracks [2][N] float32, segments list[Segment], duration_s)``.
    """
    tt, rc = cfg.turns, cfg.reactions
    dur = duration_s if duration_s is not None else uniform(rng, tt.duration_s)
    n = int(round(dur * FPS)) * SAMPLES_PER_FRAME
    tracks = [np.zeros(n, np.float32), np.zeros(n, np.float32)]
    segs: list[Segment] = []
    e0 = [uniform(rng, rc.engagement_init) for _ in range(2)]
    heard = [0, 0]
    t = uniform(rng, tt.lead_in_s)
    cur = int(rng.integers(2))

    def place(spk, x, start_s, kind):
        s0 = int(start_s * SAMPLE_RATE)
        if s0 >= n:
            return
        seg = x[: n - s0]
        tracks[spk][s0 : s0 + len(seg)] += seg
        segs.append(Segment(spk, start_s, start_s + len(seg) / SAMPLE_RATE, kind))

    while t < dur - 0.5:
        x = sources[cur].turn(uniform(rng, tt.turn_s), tt, rng)
        place(cur, x, t, "turn")
        other = 1 - cur
        g = engagement_gain(
            engagement_after(heard[other], e0[other], rc.engagement_rate), rc.engagement_floor
        )
        for ps, _ in find_pauses(x, 0.25):
            if rng.random() < tt.backchannel_prob * g:
                bc = sources[other].backchannel(uniform(rng, tt.backchannel_s), rng)
                place(other, bc, t + ps + uniform(rng, tt.backchannel_lag_s), "backchannel")
        end = t + len(x) / SAMPLE_RATE
        heard[other] += 1
        if rng.random() >= tt.keep_floor_prob:
            cur = other
            if rng.random() < tt.overlap_prob:
                gap = -min(uniform(rng, tt.overlap_s), 0.4 * len(x) / SAMPLE_RATE)
            else:
                gap = max(0.05, rng.normal(tt.gap_mean_s, tt.gap_std_s))
        else:
            gap = max(0.3, rng.normal(2 * tt.gap_mean_s + 0.3, tt.gap_std_s))
        t = end + gap
    nf = cfg.audio.noise_floor
    for k in range(2):
        tracks[k] = (tracks[k] + nf * rng.standard_normal(n)).astype(np.float32)
        np.clip(tracks[k], -1.0, 1.0, out=tracks[k])
    return tracks, segs, dur
