"""The motion rules: FLAME-layout head motion of both speakers from their two audio tracks."""

from __future__ import annotations

import numpy as np

from timar_ros.data.synthetic.config import MotionConfig, ReactionConfig, SyntheticConfig
from timar_ros.data.synthetic.signals import frame_rms, ou_noise, runs, smooth, uniform
from timar_ros.motion import EXP_DIM, FPS, MOTION_DIM, SAMPLES_PER_FRAME

JAW_OPEN = 50  # model-vector index of the jaw opening (jaw axis-angle x)


ROT_PITCH, ROT_YAW, ROT_ROLL = 53, 54, 55


def engagement_after(n_turns: int, e0: float, rate: float) -> float:
    """Engagement after ``n_turns`` completed partner turns: ``1 - (1-e0)(1-rate)^n``."""
    return float(1.0 - (1.0 - e0) * (1.0 - rate) ** max(0, n_turns))


def engagement_gain(e: float, floor: float) -> float:
    return floor + (1.0 - floor) * e


def speech_envelope(x: np.ndarray, n_frames: int, mc: MotionConfig) -> np.ndarray:
    """Speech envelope [n_frames] in [0, 1] at 25 fps (see the module docstring)."""
    from scipy.signal import lfilter

    rms = frame_rms(x, n_frames)
    db = 20 * np.log10(rms)
    active = db > db.max() - 45.0
    ref = float(np.percentile(db[active], 95)) if active.any() else float(db.max())
    env = np.clip(1.0 + (db - ref) / mc.range_db, 0.0, 1.0)
    a = float(np.exp(-1.0 / max(mc.smooth_s * FPS, 1e-3)))
    env = lfilter([1 - a], [1, -a], env)  # causal one-pole smoothing
    return np.clip(env, 0.0, 1.0)


def voice_activity(env: np.ndarray, rc: ReactionConfig) -> np.ndarray:
    """Boolean activity [T]: envelope above threshold, gaps shorter than ``fill_gap_s`` filled."""
    act = env > rc.vad_threshold
    fill = int(round(rc.fill_gap_s * FPS))
    for s, e in runs(~act):
        if 0 < s and e < len(act) and e - s <= fill:
            act[s:e] = True
    return act


def _partner_pauses(act: np.ndarray, rc: ReactionConfig):
    """(pause_start_frame, pause_len_frames) after >= min_speech of activity."""
    out = []
    ms, mp = int(round(rc.min_speech_s * FPS)), int(round(rc.min_pause_s * FPS))
    speech = runs(act)
    for i, (s, e) in enumerate(speech):
        if e - s < ms or e >= len(act):
            continue
        nxt = speech[i + 1][0] if i + 1 < len(speech) else len(act)
        if nxt - e >= mp:
            out.append((int(e), int(nxt - e)))
    return out


def render_motion(
    audio: list[np.ndarray],
    cfg: SyntheticConfig,
    rng: np.random.Generator,
    n_frames: int | None = None,
):
    """Motion targets [T, 56] of both speakers from their two audio tracks.

    Returns ``(motions [2][T,56] float32, info)``; ``info`` holds ``envelopes`` [2][T],
    ``activity`` [2][T], ``events`` (list of dicts: frame, speaker, kind, amp, pause_frame,
    engagement) and ``engagement`` [2][T].
    """
    mc, rc = cfg.motion, cfg.reactions
    T = n_frames if n_frames is not None else min(len(a) for a in audio) // SAMPLES_PER_FRAME
    envs = [speech_envelope(a, T, mc) for a in audio]
    acts = [voice_activity(e, rc) for e in envs]
    lag = int(round(mc.lag_s * FPS))
    motions, events, engagement = [], [], []
    holding = []
    for k in range(2):  # the floor: activity runs of at least min_speech_s
        h = np.zeros(T, bool)
        for s, e in runs(acts[k]):
            if e - s >= int(round(rc.min_speech_s * FPS)):
                h[s:e] = True
        holding.append(h)
    for k in range(2):
        other = 1 - k
        m = np.zeros((T, MOTION_DIM), np.float64)
        env = np.concatenate([np.zeros(lag), envs[k]])[:T]
        # speaker rules
        m[:, JAW_OPEN] = mc.jaw_max_rad * env**mc.jaw_gamma
        for idx, gain in mc.mouth_exp.items():
            m[:, int(idx)] += gain * env
        m[:, ROT_PITCH] += mc.speak_pitch_gain_rad * env
        m[:, ROT_YAW] += ou_noise(rng, T, mc.speak_yaw_std_rad, 1.5)[:, 0] * holding[k]
        # idle
        dscale = 1.0 / (1.0 + np.arange(EXP_DIM) / 8.0)
        m[:, :EXP_DIM] += rng.normal(0, mc.identity_exp_std, EXP_DIM) * dscale
        m[:, :EXP_DIM] += ou_noise(rng, T, mc.idle_exp_std * dscale, mc.idle_tau_s, dims=EXP_DIM)
        m[:, 53:56] += ou_noise(rng, T, mc.idle_rot_std_rad, mc.idle_tau_s, dims=3)
        m[:, 50:53] += ou_noise(rng, T, mc.idle_jaw_std_rad, 0.5, dims=3)
        nb = rng.poisson(mc.blink_rate_hz * T / FPS)
        bl = max(2, int(round(mc.blink_s * FPS)))
        for f in rng.integers(0, max(1, T - bl), nb):
            m[f : f + bl, mc.blink_index] += mc.blink_amp * np.hanning(bl + 2)[1:-1]
        # listener rules
        e0 = uniform(rng, rc.engagement_init)
        n_heard = 0
        e_track = np.full(T, e0)
        pauses = _partner_pauses(acts[other], rc)
        names = list(rc.choice_weights)
        w = np.asarray([rc.choice_weights[c] for c in names], np.float64)
        w = w / w.sum()
        for pf, plen in pauses:
            e = engagement_after(n_heard, e0, rc.engagement_rate)
            if plen >= int(round(rc.turn_end_s * FPS)):
                n_heard += 1
                e_track[pf:] = engagement_after(n_heard, e0, rc.engagement_rate)
            g = engagement_gain(e, rc.engagement_floor)
            lagf = int(round(max(0.1, rng.normal(rc.lag_mean_s, rc.lag_std_s)) * FPS))
            f = pf + lagf
            if f >= T or holding[k][f] or holding[k][pf]:
                continue
            if rng.random() >= rc.react_prob * g:
                continue
            kind = str(names[rng.choice(len(names), p=w)])
            if kind == "nod":
                amp = uniform(rng, rc.nod_amp_rad) * g
                L = max(3, int(round(uniform(rng, rc.nod_s) * FPS)))
                cyc = int(rng.integers(rc.nod_cycles[0], rc.nod_cycles[1] + 1))
                u = np.arange(L) / L
                shape = amp * np.sin(np.pi * cyc * u) ** 2 * (1 - 0.35 * u)
                dim, side = ROT_PITCH, 1.0
            elif kind == "tilt":
                amp = uniform(rng, rc.tilt_amp_rad) * g
                L = max(4, int(round(uniform(rng, rc.tilt_s) * FPS)))
                u = np.arange(L) / L
                r = np.clip(np.minimum(u / 0.25, (1 - u) / 0.3), 0, 1)
                shape = amp * r * r * (3 - 2 * r)  # smooth rise, hold, smooth return
                side = float(rng.choice([-1.0, 1.0]))
                dim = ROT_ROLL
            else:
                raise ValueError(f"unknown reaction kind {kind!r} (nod, tilt)")
            seg = slice(f, min(T, f + L))
            m[seg, dim] += side * shape[: seg.stop - seg.start]
            events.append(
                {
                    "frame": int(f),
                    "speaker": k,
                    "kind": kind,
                    "amp": float(amp),
                    "side": side,
                    "pause_frame": int(pf),
                    "engagement": float(e),
                }
            )
        listening = (~holding[k]).astype(np.float64)
        m[:, rc.smile_index] += rc.smile_gain * e_track * smooth(listening, 0.5)
        m[:, JAW_OPEN] = np.clip(m[:, JAW_OPEN], 0.0, 0.3)
        m[:, 53:56] = np.clip(m[:, 53:56], -0.4, 0.4)
        motions.append(m.astype(np.float32))
        engagement.append(e_track.astype(np.float32))
    events.sort(key=lambda d: (d["frame"], d["speaker"]))
    info = {
        "envelopes": envs,
        "activity": acts,
        "holding": holding,
        "events": events,
        "engagement": engagement,
    }
    return motions, info
