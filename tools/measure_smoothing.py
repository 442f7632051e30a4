#!/usr/bin/env python3
"""Measure what makes the generated motion smooth without delaying it (issue: natural motion).

Each variant generates the test files (the first ``--files``, ``--turns`` turns each) with
several sampling seeds and is scored by :mod:`timar_ros.eval.behaviour` (jitter and variance
ratios per group, jaw correlation and lag, reaction F1):

    independent     the reference: independent noise per frame, temperature 1
    tau=<s>         sampling noise correlated over frames with time constant s
                    (``noise_tau_s``, :mod:`timar_ros.runtime.sampling_noise`)
    temp=<t>        the sampler's step noise scaled by t
    hold=<h>        that share of the expression noise held for the whole conversation
                    (``noise_hold_exp``: the face's own baseline stays put)
    ema=<s>         a causal one-pole smoother on the output (time constant s): adds delay
    mar=<k>         MAR iterative decoding with k iterations inside each turn (later frames
                    conditioned on earlier ones, left to right; the paper's num_iter), on the
                    crop of the last 7 turns; ``mar=1`` is the same crop in one pass

    python tools/measure_smoothing.py --checkpoint RUN --data TEST --out smoothing.json

Prints a markdown table (mean +- std over seeds) and writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_VARIANTS = [
    "independent",
    "temp=0.7",
    "ema=0.08",
    "ema=0.16",
    "tau=0.5",
    "tau=1.0",
    "tau=1.5",
    "hold=0.8",
    "tau=1.0,hold=0.8",
    "tau=1.5,hold=0.8",
    "tau=1.0,hold=0.8,temp=0.8",
    "mar=1",
    "mar=4",
]


def parse(variant: str) -> dict:
    out = {}
    if variant == "independent":
        return out
    for part in variant.split(","):
        k, v = part.split("=")
        out[k] = float(v) if k != "mar" else int(v)
    return out


def one_pole(x: np.ndarray, tau_s: float, fps: float = 25.0) -> np.ndarray:
    from scipy.signal import lfilter

    a = math.exp(-1.0 / (tau_s * fps))
    return lfilter([1 - a], [1, -a], x, axis=0, zi=a * x[:1].repeat(1, 0))[0].astype(np.float32)


def mar_generate(model, item, seed: int, num_iter: int, context: int = 7) -> np.ndarray:
    """MAR decoding per turn on the crop of the last ``context`` turns: ``num_iter`` backbone
    passes, each revealing the next frames (left to right, cosine schedule) with the diffusion
    head; revealed frames enter the next pass as visible agent-motion tokens of the current turn
    (history agent motion stays masked, as the reference's --mask_history_agent)."""
    import torch

    from timar_ros.runtime.sampling_noise import turn_noise

    c = model.config
    F, spt = c.frames_per_turn, c.samples_per_turn
    am_idx = model.am_idx
    out = []
    with torch.inference_mode():
        for t in range(item.turns):
            t0 = max(0, t - context)
            S = t - t0 + 1
            ua = torch.from_numpy(item.user_audio[t0 * spt : (t + 1) * spt])[None]
            aa = torch.from_numpy(item.agent_audio[t0 * spt : (t + 1) * spt])[None]
            um = torch.from_numpy(item.user_motion[t0 * F : (t + 1) * F])[None]
            x_T, sn = (torch.from_numpy(a) for a in turn_noise(seed, t, F, c.num_sampling_steps))
            known = torch.zeros(F, 56)
            revealed = torch.zeros(F, dtype=torch.bool)
            for s in range(num_iter):
                left = (
                    0
                    if s == num_iter - 1
                    else max(1, math.floor(F * math.cos(math.pi / 2 * (s + 1) / num_iter)))
                )
                todo = torch.nonzero(~revealed)[:, 0]
                idx = todo[: len(todo) - left]
                am = torch.zeros(1, S * F, 56)
                am[0, -F:] = known
                tok = model.build_tokens(ua, aa, um, am, S)
                masked = torch.zeros(1, S, tok.shape[2], dtype=torch.bool)
                masked[:, :, model.am_tok] = True
                masked[0, -1, am_idx[revealed]] = False
                h = model.backbone_parallel(model.embed(tok, masked), masked)
                z = h[0, -1]
                y = model.sample_motion(z[idx], x_T[idx], sn[:, idx], None, 1.0, c.temperature)
                known[idx] = y
                revealed[idx] = True
            out.append(known.numpy())
    return np.concatenate(out, 0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True, help="JSON output")
    p.add_argument("--files", type=int, default=12)
    p.add_argument("--turns", type=int, default=30)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS)
    a = p.parse_args()

    from timar_ros.data.dualtalk import iter_test
    from timar_ros.data.dualtalk_files import speaker_stems
    from timar_ros.eval import behaviour as B
    from timar_ros.runtime.checkpoint import load_checkpoint
    from timar_ros.runtime.torch_policy import TorchStreamingPolicy

    names = speaker_stems(a.data, require_partner=True)[: a.files]
    items = list(iter_test(a.data, names=names))
    for it in items:  # the first --turns turns
        n = min(it.turns, a.turns)
        it.turns = n
        it.user_audio, it.agent_audio = it.user_audio[: n * 16000], it.agent_audio[: n * 16000]
        it.user_motion, it.agent_motion = it.user_motion[: n * 25], it.agent_motion[: n * 25]
        it.partner_motion = it.partner_motion[: n * 25]
    files = B.load_files(items, {}, a.data)
    model, _ = load_checkpoint(a.checkpoint)
    model.eval()
    results = {
        "checkpoint": a.checkpoint,
        "data": a.data,
        "files": len(items),
        "turns": a.turns,
        "seeds": a.seeds,
    }
    rows = [("oracle (ground truth)", B.oracle(files))]
    for v in a.variants:
        opt = parse(v)
        t0 = time.perf_counter()
        per_seed = []
        kw = {
            name: opt[key]
            for key, name in (
                ("tau", "noise_tau_s"),
                ("temp", "temperature"),
                ("hold", "noise_hold_exp"),
            )
            if key in opt
        }
        for seed in a.seeds:
            preds = {}
            pol = TorchStreamingPolicy(model, seed=seed, **kw)  # run_offline keeps no state
            for it in items:
                if "mar" in opt:
                    preds[it.name] = mar_generate(model, it, seed, opt["mar"])
                    continue
                m = pol.run_offline(it.user_audio, it.agent_audio, it.user_motion)
                preds[it.name] = one_pole(m, opt["ema"]) if "ema" in opt else m
            per_seed.append(B.score(B.with_pred(files, preds)))
        agg = B.aggregate(per_seed)
        results[v] = {"aggregate": agg, "per_seed": per_seed, "wall_s": time.perf_counter() - t0}
        rows.append((v, agg))
        print(f"{v}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    md = B.markdown(
        rows, f"{Path(a.checkpoint).name}: {len(items)} files x {a.turns} turns, seeds {a.seeds}"
    )
    results["table"] = md
    Path(a.out).write_text(json.dumps(results, indent=1) + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
