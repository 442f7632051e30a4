"""Behaviour metrics that see time: does the generated listener react when it should, does it
mirror the partner, is the motion as large and as smooth as the ground truth's?

The DualTalk table (:mod:`timar_ros.eval.metrics`) compares per-file statistics and is blind to
timing. These metrics compare what happens when:

* **reactions**: listener head reactions (nods on the pitch axis, tilts on the roll axis) are
  detected in the motion (:func:`detect_reactions`) while the agent is not speaking, and matched
  to the reference onsets within +-``tolerance_s`` (0.3 s): precision, recall, F1. The reference
  is the rules' own events when the test folder was written by ``timar synth``
  (``<clip>.meta.json``), otherwise the reactions detected in the ground truth. ``kind_acc``:
  the share of matched reactions of the reference's kind (nod vs tilt; in the synthetic rules the
  kind is the conversation's mood, which only earlier turns reveal).
* **reaction lags**: onset minus the start of the partner's last pause before it (25/50/75th
  percentiles, seconds), for the prediction, the ground truth and the rules.
* **mimicry**: correlation of the agent's smile with the partner's smile ``L`` seconds earlier,
  over the frames where the agent listens, for L = 0..4 s; the peak and its lag.
* **correlation with the ground truth**: Pearson r per file of the jaw opening, the head
  pitch/yaw/roll and the smile, averaged over files.
* **jaw lag**: the shift (s, -0.4..0.4) of the prediction's jaw that correlates best with the
  ground truth's (positive: the prediction is late): a smoother or a buffer that delays the motion
  shows here.
* **variance ratio** per group (exp, jaw, pose): within-file variance of the prediction / the
  ground truth's, summed over the group's dimensions.
* **jitter ratio** per group: mean |second difference| (frame to frame change of velocity) of the
  prediction / of the ground truth.

Every metric is computed per sampling seed; :func:`aggregate` gives mean and spread (std over
seeds). The oracle is the ground truth scored as a prediction (what a perfect model gets, the
detector's own limit included).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from timar_ros.data.synthetic.signals import runs
from timar_ros.motion import FPS

GROUPS = {"exp": slice(0, 50), "jaw": slice(50, 53), "pose": slice(53, 56)}
JAW_OPEN, PITCH, YAW, ROLL = 50, 53, 54, 55
REACTION_AXES = {"nod": PITCH, "tilt": ROLL}
MIMICRY_LAGS_S = tuple(round(0.2 * k, 1) for k in range(21))  # 0 .. 4 s


@dataclass
class BehaviourConfig:
    """Detector and matching settings (seconds, radians)."""

    tolerance_s: float = 0.3  # an onset matches a reference onset this close
    threshold_rad: float = 0.025  # |deviation from the 2-s median| that makes a reaction
    baseline_s: float = 2.0  # median filter width of the slow head position
    min_s: float = 0.12  # shortest reaction above threshold
    refractory_s: float = 0.6  # one reaction per axis in this time (a double nod is one)
    max_lag_s: float = 2.0  # a reaction further than this from a partner pause has no lag
    settle_s: float = 0.5  # after the agent's own speech the head returns: not listening yet
    smile_index: int = 1  # expression coefficient of the smile (config/synthetic.yaml)


@dataclass
class FileInput:
    """One test file: motion of the agent (prediction or GT), the agent's GT, the partner's GT
    and audio activity (bool [T]) of both, and the rules' reference events (or None)."""

    name: str
    pred: np.ndarray
    gt: np.ndarray
    partner: np.ndarray
    agent_active: np.ndarray
    partner_active: np.ndarray
    rule_events: list | None = None
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- detection
def detect_reactions(
    motion: np.ndarray, listening: np.ndarray, cfg: BehaviourConfig | None = None
) -> list[tuple[int, str, float]]:
    """Listener reactions in ``motion`` [T, 56] at frames where ``listening`` [T] is True.

    A reaction is a run of at least ``min_s`` where the pitch (nod) or roll (tilt) deviates
    more than ``threshold_rad`` from its ``baseline_s`` running median; its onset is where the
    deviation starts to grow (walking back from the threshold crossing, at most 0.4 s).
    Returns (onset frame, kind, peak |deviation| rad), sorted by onset; of two reactions closer
    than ``refractory_s`` the larger is kept."""
    from scipy.ndimage import median_filter, uniform_filter1d

    cfg = cfg or BehaviourConfig()
    T = len(motion)
    listening = np.asarray(listening, bool)[:T]
    width = max(3, int(round(cfg.baseline_s * FPS)) | 1)
    min_len = max(1, int(round(cfg.min_s * FPS)))
    back = int(round(0.4 * FPS))
    found: list[tuple[int, str, float]] = []
    for kind, axis in REACTION_AXES.items():
        x = np.asarray(motion[:, axis], np.float64)
        dev = np.abs(uniform_filter1d(x - median_filter(x, width, mode="nearest"), 3))
        above = (dev > cfg.threshold_rad) & listening
        for s, e in runs(above):
            if e - s < min_len:
                continue
            on = s
            while on > max(0, s - back) and dev[on - 1] < dev[on]:
                on -= 1
            found.append((int(on), kind, float(dev[s:e].max())))
    found.sort()
    out: list[tuple[int, str, float]] = []
    gap = cfg.refractory_s * FPS
    for ev in found:
        if out and ev[0] - out[-1][0] < gap:
            if ev[2] > out[-1][2]:
                out[-1] = ev
            continue
        out.append(ev)
    return out


SILENCE_DBFS = -50.0  # frames quieter than this are silent, whatever the track's own level


def speech_activity(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """[n_frames] bool voice activity of 16-kHz ``audio`` at 25 fps: the synthetic rules'
    detector (envelope relative to the track's loud frames, short gaps filled), and never on
    frames below ``SILENCE_DBFS`` (a track with no speech at all has none)."""
    from timar_ros.data.synthetic.config import MotionConfig, ReactionConfig
    from timar_ros.data.synthetic.rules import speech_envelope, voice_activity
    from timar_ros.data.synthetic.signals import frame_rms

    env = speech_envelope(audio, n_frames, MotionConfig())
    env[20 * np.log10(frame_rms(audio, n_frames)) <= SILENCE_DBFS] = 0.0  # before gap filling
    return voice_activity(env, ReactionConfig())


def listening_mask(
    agent_active: np.ndarray, settle_s: float = 0.5, min_speech_s: float = 0.7
) -> np.ndarray:
    """[T] bool: the agent does not hold the floor (speech runs of at least ``min_speech_s``;
    a short backchannel is listening) and has not for ``settle_s`` (a speaker's head returning
    to rest after speech is not a listener reaction)."""
    act = np.zeros(len(agent_active), bool)
    for s, e in runs(agent_active):
        if e - s >= int(round(min_speech_s * FPS)):
            act[s:e] = True
    k = int(round(settle_s * FPS))
    busy = act.copy()
    for d in range(1, k + 1):
        busy[d:] |= act[:-d]
    return ~busy


def match_onsets(ref: list[int], pred: list[int], tol_frames: float) -> list[tuple[int, int]]:
    """Greedy one-to-one matching (closest pairs first) of onsets within ``tol_frames``;
    returns (ref index, pred index) pairs."""
    pairs = sorted(
        (abs(r - p), i, j)
        for i, r in enumerate(ref)
        for j, p in enumerate(pred)
        if abs(r - p) <= tol_frames
    )
    used_r, used_p, out = set(), set(), []
    for _, i, j in pairs:
        if i not in used_r and j not in used_p:
            used_r.add(i)
            used_p.add(j)
            out.append((i, j))
    return out


def pause_starts(partner_active: np.ndarray, min_speech_s: float = 0.7) -> np.ndarray:
    """Frames where the partner stops after at least ``min_speech_s`` of speech."""
    ms = int(round(min_speech_s * FPS))
    return np.asarray(
        [e for s, e in runs(partner_active) if e - s >= ms and e < len(partner_active)]
    )


def _lags(onsets, pauses, max_lag_s: float) -> list[float]:
    out = []
    for f in onsets:
        before = pauses[pauses <= f] if len(pauses) else pauses
        if len(before) and (f - before[-1]) <= max_lag_s * FPS:
            out.append((f - before[-1]) / FPS)
    return out


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r; 0 when either side is constant (to float precision)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a - a.mean()
    b = b - b.mean()
    if a.std() < 1e-6 * (1 + np.abs(a).max()) or b.std() < 1e-6 * (1 + np.abs(b).max()):
        return 0.0
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def _jitter(m: np.ndarray) -> np.ndarray:
    """mean |second difference| per dimension [56]."""
    return np.abs(np.diff(m, 2, axis=0)).mean(0) if len(m) > 2 else np.zeros(m.shape[1])


# ----------------------------------------------------------------------------- one seed
def score(files: list[FileInput], cfg: BehaviourConfig | None = None) -> dict:
    """All metrics of one set of predictions (one seed) over ``files``."""
    cfg = cfg or BehaviourConfig()
    tol = cfg.tolerance_s * FPS
    tp = fp = fn = 0
    kind_ok = kind_n = 0
    lags_pred: list[float] = []
    r = {k: [] for k in ("jaw", "pitch", "yaw", "roll", "smile")}
    var_p = {g: 0.0 for g in GROUPS}
    var_g = {g: 0.0 for g in GROUPS}
    jit_p = {g: 0.0 for g in GROUPS}
    jit_g = {g: 0.0 for g in GROUPS}
    mim = {lag: ([], []) for lag in MIMICRY_LAGS_S}
    shifts = range(-int(0.4 * FPS), int(0.4 * FPS) + 1)
    jaw_xc = {k: ([], []) for k in shifts}
    for f in files:
        T = min(len(f.pred), len(f.gt), len(f.partner), len(f.agent_active))
        pred, gt, partner = f.pred[:T], f.gt[:T], f.partner[:T]
        listening = listening_mask(f.agent_active[:T], cfg.settle_s)
        if f.rule_events is not None:
            ref = [(e["frame"], e["kind"]) for e in f.rule_events if e["frame"] < T]
        else:
            ref = [(o, k) for o, k, _ in detect_reactions(gt, listening, cfg)]
        det = detect_reactions(pred, listening, cfg)
        pairs = match_onsets([o for o, _ in ref], [o for o, _, _ in det], tol)
        tp += len(pairs)
        fp += len(det) - len(pairs)
        fn += len(ref) - len(pairs)
        for i, j in pairs:
            kind_n += 1
            kind_ok += int(ref[i][1] == det[j][1])
        pauses = pause_starts(np.asarray(f.partner_active[:T], bool))
        lags_pred += _lags([o for o, _, _ in det], pauses, cfg.max_lag_s)
        for name, d in (("jaw", JAW_OPEN), ("pitch", PITCH), ("yaw", YAW), ("roll", ROLL)):
            r[name].append(_pearson(pred[:, d], gt[:, d]))
        r["smile"].append(_pearson(pred[:, cfg.smile_index], gt[:, cfg.smile_index]))
        vp, vg = pred.var(0), gt.var(0)
        jp, jg = _jitter(pred), _jitter(gt)
        for g, sl in GROUPS.items():
            var_p[g] += float(vp[sl].sum())
            var_g[g] += float(vg[sl].sum())
            jit_p[g] += float(jp[sl].sum())
            jit_g[g] += float(jg[sl].sum())
        for k in shifts:  # pred[t + k] against gt[t]: k > 0 = the prediction is late
            a = pred[max(0, k) : T + min(0, k), JAW_OPEN]
            b = gt[max(0, -k) : T - max(0, k), JAW_OPEN]
            jaw_xc[k][0].append(a - a.mean())
            jaw_xc[k][1].append(b - b.mean())
        own, other = pred[:, cfg.smile_index], partner[:, cfg.smile_index]
        for lag in MIMICRY_LAGS_S:
            k = int(round(lag * FPS))
            idx = np.flatnonzero(listening[k:]) + k
            if len(idx) > 2:  # centred per file: the files' smile levels differ
                mim[lag][0].append(own[idx] - own[idx].mean())
                mim[lag][1].append(other[idx - k] - other[idx - k].mean())
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    curve = {
        lag: _pearson(np.concatenate(a), np.concatenate(b)) if a and sum(map(len, a)) > 2 else 0.0
        for lag, (a, b) in mim.items()
    }
    peak = max(curve, key=lambda k: curve[k])
    xc = {k: _pearson(np.concatenate(a), np.concatenate(b)) for k, (a, b) in jaw_xc.items() if a}
    jaw_lag = max(xc, key=lambda k: xc[k]) / FPS if xc and max(xc.values()) > 0 else None
    q = np.percentile(lags_pred, [25, 50, 75]).tolist() if lags_pred else [None] * 3
    out = {
        "reaction_precision": prec,
        "reaction_recall": rec,
        "reaction_f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
        "reactions_detected": tp + fp,
        "reactions_reference": tp + fn,
        "kind_acc": kind_ok / kind_n if kind_n else 0.0,
        "lag_p25_s": q[0],
        "lag_median_s": q[1],
        "lag_p75_s": q[2],
        "mimicry_peak_r": curve[peak],
        "mimicry_peak_lag_s": peak,
        "mimicry_curve": {str(k): round(v, 4) for k, v in curve.items()},
        **{f"r_{k}": float(np.mean(v)) if v else 0.0 for k, v in r.items()},
        "jaw_lag_s": jaw_lag,
        "r_pose": float(np.mean(r["pitch"] + r["yaw"] + r["roll"])) if r["pitch"] else 0.0,
        **{f"var_ratio_{g}": var_p[g] / var_g[g] if var_g[g] else 0.0 for g in GROUPS},
        **{f"jitter_ratio_{g}": jit_p[g] / jit_g[g] if jit_g[g] else 0.0 for g in GROUPS},
    }
    return out


def rule_lags(files: list[FileInput]) -> dict:
    """Percentiles (s) of the rules' reaction lags (onset - the partner's last pause start)."""
    lags = []
    for f in files:
        if f.rule_events is None:
            continue
        pauses = pause_starts(np.asarray(f.partner_active, bool))
        lags += _lags([e["frame"] for e in f.rule_events], pauses, BehaviourConfig().max_lag_s)
    if not lags:
        return {}
    q = np.percentile(lags, [25, 50, 75])
    return {"lag_p25_s": float(q[0]), "lag_median_s": float(q[1]), "lag_p75_s": float(q[2])}


# ----------------------------------------------------------------------------- seeds
SCALARS = (
    "reaction_f1",
    "reaction_precision",
    "reaction_recall",
    "kind_acc",
    "lag_median_s",
    "mimicry_peak_r",
    "mimicry_peak_lag_s",
    "r_jaw",
    "jaw_lag_s",
    "r_pose",
    "r_pitch",
    "r_smile",
    "var_ratio_exp",
    "var_ratio_jaw",
    "var_ratio_pose",
    "jitter_ratio_exp",
    "jitter_ratio_jaw",
    "jitter_ratio_pose",
)


def aggregate(per_seed: list[dict]) -> dict:
    """{metric: {"mean", "std", "values"}} over seeds (std 0 for one seed; None values
    skipped)."""
    out = {}
    for k in SCALARS:
        vals = [s[k] for s in per_seed if s.get(k) is not None]
        if not vals:
            continue
        a = np.asarray(vals, np.float64)
        out[k] = {
            "mean": float(a.mean()),
            "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "values": [round(float(v), 4) for v in a],
        }
    return out


# ----------------------------------------------------------------------------- test folders
def load_files(items, preds: dict[str, np.ndarray], data_dir: str | Path) -> list[FileInput]:
    """:class:`FileInput` per test item (:func:`timar_ros.data.dualtalk.iter_test`) with its
    prediction ``preds[item.name]``; speech activity from the audio, the rules' events from
    ``<clip>.meta.json`` when the folder has them."""
    data_dir = Path(data_dir)
    out = []
    for it in items:
        T = len(it.agent_motion)
        act = [speech_activity(a, T) for a in (it.agent_audio, it.user_audio)]
        clip, _, spk = it.name.rpartition("_speaker")
        meta = data_dir / f"{clip}.meta.json"
        events = None
        if meta.is_file():
            k = int(spk) - 1
            events = [e for e in json.loads(meta.read_text())["events"] if e["speaker"] == k]
        out.append(
            FileInput(
                name=it.name,
                pred=preds[it.name] if it.name in preds else it.agent_motion,
                gt=it.agent_motion,
                partner=it.partner_motion,
                agent_active=act[0],
                partner_active=act[1],
                rule_events=events,
            )
        )
    return out


def with_pred(files: list[FileInput], preds: dict[str, np.ndarray]) -> list[FileInput]:
    """The same files with other predictions (another seed or context)."""
    return [dataclasses.replace(f, pred=preds[f.name]) for f in files]


def oracle(files: list[FileInput], cfg: BehaviourConfig | None = None) -> dict:
    """The ground truth scored as the prediction."""
    return score(with_pred(files, {f.name: f.gt for f in files}), cfg)


# ----------------------------------------------------------------------------- table
COLUMNS = [
    ("F1", "reaction_f1", "{:.2f}"),
    ("P", "reaction_precision", "{:.2f}"),
    ("R", "reaction_recall", "{:.2f}"),
    ("kind", "kind_acc", "{:.2f}"),
    ("lag s", "lag_median_s", "{:.2f}"),
    ("mimic r", "mimicry_peak_r", "{:.2f}"),
    ("@ s", "mimicry_peak_lag_s", "{:.1f}"),
    ("r jaw", "r_jaw", "{:.2f}"),
    ("jaw lag s", "jaw_lag_s", "{:.2f}"),
    ("r pose", "r_pose", "{:.2f}"),
    ("r smile", "r_smile", "{:.2f}"),
    ("var exp", "var_ratio_exp", "{:.2f}"),
    ("var jaw", "var_ratio_jaw", "{:.2f}"),
    ("var pose", "var_ratio_pose", "{:.2f}"),
    ("jit exp", "jitter_ratio_exp", "{:.2f}"),
    ("jit jaw", "jitter_ratio_jaw", "{:.2f}"),
    ("jit pose", "jitter_ratio_pose", "{:.2f}"),
]


def markdown(rows: list[tuple[str, dict]], title: str = "") -> str:
    """Rows of (label, :func:`aggregate` output or a one-seed :func:`score`) as a markdown
    table: mean +- std over seeds."""
    head = "| | " + " | ".join(c for c, _, _ in COLUMNS) + " |"
    lines = ([f"**{title}**", ""] if title else []) + [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for label, m in rows:
        cells = []
        for _, key, fmt in COLUMNS:
            v = m.get(key)
            if v is None:
                cells.append("-")
            elif isinstance(v, dict):
                s = fmt.format(v["mean"])
                if v["std"] > 0:
                    s += " ± " + fmt.format(v["std"])
                cells.append(s)
            else:
                cells.append(fmt.format(v))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
