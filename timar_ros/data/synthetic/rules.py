"""The motion rules: FLAME-layout head motion of both speakers from their two audio tracks.

Each rule makes one thing the model must learn matter by construction (each has its parameters
in :mod:`timar_ros.data.synthetic.config` and a measured effect in
test/data/test_data_synthetic.py):

- **own speech** -> jaw opening and mouth coefficients follow the speaker's own envelope;
- **own prosody** -> while speaking, a small downward nod on each accent, the head raised with the
  phrase's loudness, a slow turn of the head that settles on a new direction at each phrase;
- **the partner's pauses** -> the listener reacts a few hundred ms after the partner stops (the
  reaction often starts in the next 1-s turn): the reaction's timing is in the partner's audio;
- **the conversation's mood** (warm or reserved, one per conversation) -> what the listener does
  (nod or tilt) and how much both smile while speaking; it is visible only in the partner's
  motion while the partner speaks, so a listener must remember earlier turns to know it;
- **mimicry** -> the listener's smile follows the partner's speaking smile of ``lag_s`` earlier,
  decaying: the partner's motion of earlier turns drives the agent's expression now;
- **engagement** -> reactions grow with the number of partner turns heard so far;
- idle motion: smooth Ornstein-Uhlenbeck noise on head and face, blinks.

Everything is smooth (kernels and filters with time constants of 0.3 s or more; only blinks are
fast), so the targets have the frame-to-frame smoothness of real motion.
"""

from __future__ import annotations

import numpy as np

from timar_ros.data.synthetic.config import MotionConfig, ReactionConfig, SyntheticConfig
from timar_ros.data.synthetic.signals import frame_rms, ou_noise, runs, smooth, uniform
from timar_ros.motion import EXP_DIM, FPS, MOTION_DIM, SAMPLES_PER_FRAME

JAW_OPEN = 50  # model-vector index of the jaw opening (jaw axis-angle x)
ROT_PITCH, ROT_YAW, ROT_ROLL = 53, 54, 55
MOODS = ("warm", "reserved")


def engagement_after(n_turns: int, e0: float, rate: float) -> float:
    """Engagement after ``n_turns`` completed partner turns: ``1 - (1-e0)(1-rate)^n``."""
    return float(1.0 - (1.0 - e0) * (1.0 - rate) ** max(0, n_turns))


def engagement_gain(e: float, floor: float) -> float:
    return floor + (1.0 - floor) * e


def speech_envelope(x: np.ndarray, n_frames: int, mc: MotionConfig) -> np.ndarray:
    """Speech envelope [n_frames] in [0, 1] at 25 fps: frame RMS in dB, 0 at ``range_db`` below
    the track's 95th percentile, 1 at it, causally smoothed."""
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


def partner_pauses(act: np.ndarray, rc: ReactionConfig) -> list[tuple[int, int]]:
    """(pause start frame, pause length in frames) after >= ``min_speech_s`` of activity."""
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


def accents(env: np.ndarray, mc: MotionConfig) -> list[tuple[int, float]]:
    """(frame, prominence) of the accents of a speech envelope [T]: local maxima that stand
    ``accent_prominence`` above the 0.4-s moving average, at least ``accent_min_gap_s`` apart."""
    avg = np.convolve(env, np.ones(10) / 10, mode="same")
    prom = env - avg
    gap = int(round(mc.accent_min_gap_s * FPS))
    out: list[tuple[int, float]] = []
    for f in range(1, len(env) - 1):
        if prom[f] >= mc.accent_prominence and env[f] >= env[f - 1] and env[f] > env[f + 1]:
            if out and f - out[-1][0] < gap:
                if prom[f] > out[-1][1]:
                    out[-1] = (f, float(prom[f]))
                continue
            out.append((f, float(prom[f])))
    return out


def _bump(n: int) -> np.ndarray:
    """A smooth 0 -> 1 -> 0 bump of n frames (raised cosine)."""
    return np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2


def _add(track: np.ndarray, start: int, shape: np.ndarray) -> None:
    seg = slice(max(0, start), min(len(track), start + len(shape)))
    if seg.stop > seg.start:
        track[seg] += shape[seg.start - start : seg.stop - start]


def _settle(targets: np.ndarray, tau_s: float) -> np.ndarray:
    """A piecewise-constant target [T] approached smoothly (two one-pole stages: no corners)."""
    return smooth(smooth(targets, tau_s / 2), tau_s / 2)


def render_motion(
    audio: list[np.ndarray],
    cfg: SyntheticConfig,
    rng: np.random.Generator,
    n_frames: int | None = None,
):
    """Motion targets [T, 56] of both speakers from their two audio tracks.

    Returns ``(motions [2][T,56] float32, info)``; ``info`` holds ``envelopes`` [2][T],
    ``activity`` [2][T], ``holding`` [2][T] (who has the floor), ``mood``, ``speaking_smile``
    [2][T] (each speaker's own smile while speaking), ``mimicry`` [2][T] (what each adds from
    the partner), ``accents`` [2] (frames), ``events`` (listener reactions: frame, speaker, kind,
    amp, side, pause_frame, engagement) and ``engagement`` [2][T].
    """
    mc, rc, md, mi = cfg.motion, cfg.reactions, cfg.mood, cfg.mimicry
    T = n_frames if n_frames is not None else min(len(a) for a in audio) // SAMPLES_PER_FRAME
    envs = [speech_envelope(a, T, mc) for a in audio]
    acts = [voice_activity(e, rc) for e in envs]
    lag = int(round(mc.lag_s * FPS))
    mood = MOODS[0] if rng.random() < md.warm_prob else MOODS[1]
    kind = rc.kind_by_mood[mood]
    holding = []
    for k in range(2):  # the floor: activity runs of at least min_speech_s
        h = np.zeros(T, bool)
        for s, e in runs(acts[k]):
            if e - s >= int(round(rc.min_speech_s * FPS)):
                h[s:e] = True
        holding.append(h)
    # Each speaker's own smile while speaking: a level per speaking run, from the mood.
    speaking_smile = []
    for k in range(2):
        target = np.zeros(T)
        for s, e in runs(holding[k]):
            target[s:e] = uniform(rng, md.speaking_smile[mood])
        speaking_smile.append(_settle(target, md.smile_rise_s))
    motions, events, engagement, mimicked, accent_frames = [], [], [], [], []
    for k in range(2):
        other = 1 - k
        m = np.zeros((T, MOTION_DIM), np.float64)
        env = np.concatenate([np.zeros(lag), envs[k]])[:T]
        # own speech: jaw and mouth
        m[:, JAW_OPEN] = mc.jaw_max_rad * env**mc.jaw_gamma
        for idx, gain in mc.mouth_exp.items():
            m[:, int(idx)] += gain * env
        # own prosody: accent nods, the head up with the phrase, a new direction per phrase
        acc = accents(env, mc)
        n_acc = max(3, int(round(mc.accent_s * FPS)))
        for f, prom in acc:
            if holding[k][f]:
                amp = mc.accent_pitch_rad[0] + (
                    mc.accent_pitch_rad[1] - mc.accent_pitch_rad[0]
                ) * min(1.0, prom / (3 * mc.accent_prominence))
                _add(m[:, ROT_PITCH], f, -amp * _bump(n_acc))
        accent_frames.append([f for f, _ in acc if holding[k][f]])
        m[:, ROT_PITCH] += mc.phrase_pitch_rad * smooth(env, 0.4) * holding[k]
        yaw_target = np.zeros(T)
        for s, e in runs(holding[k]):
            yaw_target[s:e] = rng.normal(0.0, mc.phrase_yaw_rad)
        m[:, ROT_YAW] += _settle(yaw_target, mc.phrase_settle_s)
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
        # mood and mimicry: the own speaking smile, and the partner's of lag_s earlier
        listening = smooth((~holding[k]).astype(np.float64), 0.4)
        d = int(round(mi.lag_s * FPS))
        partner = np.concatenate([np.zeros(d), speaking_smile[other]])[:T]
        mim = mi.gain * smooth(partner, mi.tau_s) * listening
        m[:, md.smile_index] += speaking_smile[k] + mim
        mimicked.append(mim.astype(np.float32))
        # listener reactions to the partner's pauses (timing: the partner's audio; what: the
        # mood; size: the engagement, i.e. the number of partner turns heard so far)
        e0 = uniform(rng, rc.engagement_init)
        n_heard = 0
        e_track = np.full(T, e0)
        for pf, plen in partner_pauses(acts[other], rc):
            e = engagement_after(n_heard, e0, rc.engagement_rate)
            if plen >= int(round(rc.turn_end_s * FPS)):
                n_heard += 1
                e_track[pf:] = engagement_after(n_heard, e0, rc.engagement_rate)
            g = engagement_gain(e, rc.engagement_floor)
            f = pf + int(round(max(0.1, rng.normal(rc.lag_mean_s, rc.lag_std_s)) * FPS))
            if f >= T or holding[k][f] or holding[k][pf]:
                continue
            if rng.random() >= rc.react_prob * g:
                continue
            if kind == "nod":
                amp = uniform(rng, rc.nod_amp_rad) * g
                n = max(3, int(round(uniform(rng, rc.nod_s) * FPS)))
                cyc = int(rng.integers(rc.nod_cycles[0], rc.nod_cycles[1] + 1))
                u = np.arange(n) / n
                shape = amp * np.sin(np.pi * cyc * u) ** 2 * (1 - 0.35 * u)
                dim, side = ROT_PITCH, 1.0
            elif kind == "tilt":
                amp = uniform(rng, rc.tilt_amp_rad) * g
                n = max(4, int(round(uniform(rng, rc.tilt_s) * FPS)))
                u = np.arange(n) / n
                r = np.clip(np.minimum(u / 0.25, (1 - u) / 0.3), 0, 1)
                shape = amp * r * r * (3 - 2 * r)  # smooth rise, hold, smooth return
                side = float(rng.choice([-1.0, 1.0]))
                dim = ROT_ROLL
            else:
                raise ValueError(f"unknown reaction kind {kind!r} (nod, tilt)")
            _add(m[:, dim], f, side * shape)
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
        m[:, JAW_OPEN] = np.clip(m[:, JAW_OPEN], 0.0, 0.3)
        m[:, 53:56] = np.clip(m[:, 53:56], -0.4, 0.4)
        motions.append(m.astype(np.float32))
        engagement.append(e_track.astype(np.float32))
    events.sort(key=lambda d: (d["frame"], d["speaker"]))
    info = {
        "envelopes": envs,
        "activity": acts,
        "holding": holding,
        "mood": mood,
        "speaking_smile": [s.astype(np.float32) for s in speaking_smile],
        "mimicry": mimicked,
        "accents": accent_frames,
        "events": events,
        "engagement": engagement,
    }
    return motions, info
