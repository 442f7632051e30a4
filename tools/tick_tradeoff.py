#!/usr/bin/env python3
"""The trade-off over tick length, lookahead and guidance (issue 24, docs/streaming.md): the
bundled checkpoint evaluated as the node runs it at several (tick_s, lookahead_s,
guidance_scale), next to the 1-s mode, with each setting's display delay and reaction floor.

    python tools/tick_tradeoff.py --work /tmp/timar_bundled --limit 16 --seeds 0 1 2

Needs the synthetic splits (`python tools/train_bundled.py --stages data`). Evaluations run
two at a time with one thread each (cheaper on 2 cores than one at a time with two); each is
cached in WORK/eval/tradeoff-<setting>-<split>/. Prints a Markdown table and writes
WORK/eval/tradeoff.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "checkpoints" / "robot"
# setting key -> (tick_s, lookahead_s, the checkpoint's guidance options); tick_s 1.0 is the
# 1-s mode. Guidance: scale, the motion it pushes ("all" / "pose"), the steps it runs in (0: all)
NO_GUIDANCE = {"guidance_scale": 1.0, "guidance_groups": "all", "guidance_steps": 0}


def _g(scale: float, groups: str = "all", steps: int = 0) -> dict:
    return {"guidance_scale": scale, "guidance_groups": groups, "guidance_steps": steps}


SETTINGS = {
    "1s": (1.0, 0.0, NO_GUIDANCE),
    "t0.08": (0.08, 0.0, NO_GUIDANCE),
    "t0.12": (0.12, 0.0, NO_GUIDANCE),
    "t0.2": (0.2, 0.0, NO_GUIDANCE),
    "t0.12-la0.08": (0.12, 0.08, NO_GUIDANCE),
    "1s-g1.5": (1.0, 0.0, _g(1.5)),
    "1s-g2": (1.0, 0.0, _g(2.0)),
    "1s-g3": (1.0, 0.0, _g(3.0)),
    "t0.12-g2": (0.12, 0.0, _g(2.0)),
    "1s-g2-pose": (1.0, 0.0, _g(2.0, "pose")),
    "1s-g2-s3": (1.0, 0.0, _g(2.0, "all", 3)),
    "1s-g2-pose-s2": (1.0, 0.0, _g(2.0, "pose", 2)),
    "1s-g2-pose-s3": (1.0, 0.0, _g(2.0, "pose", 3)),
    "1s-g3-pose-s2": (1.0, 0.0, _g(3.0, "pose", 2)),
    "1s-g3-pose-s3": (1.0, 0.0, _g(3.0, "pose", 3)),
    "t0.12-g2-pose-s3": (0.12, 0.0, _g(2.0, "pose", 3)),
}


def variant(work: Path, key: str) -> Path:
    """The bundled checkpoint with the setting's guidance options in its config (a copy in
    WORK/variants/, exported once): the options are the checkpoint's, as the node runs them."""
    import shutil

    from timar_ros.runtime.export import ensure_export

    opts = SETTINGS[key][2]
    name = "g{guidance_scale:g}-{guidance_groups}-s{guidance_steps}".format(**opts)
    d = work / "variants" / name
    config = {**json.loads((BUNDLE / "config.json").read_text()), **opts}
    if not d.is_dir() or json.loads((d / "config.json").read_text()) != config:
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(BUNDLE, d, ignore=shutil.ignore_patterns("onnx"))
        (d / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    ensure_export(d)  # once, before the jobs that would each export it at the same time
    return d


# column -> the behaviour metric (eval/behaviour.py)
COLUMNS = {
    "F1": "reaction_f1",
    "kind": "kind_acc",
    "lag s": "lag_median_s",
    "mimic r": "mimicry_peak_r",
    "r jaw": "r_jaw",
    "var pose": "var_ratio_pose",
    "jit exp": "jitter_ratio_exp",
    "jit jaw": "jitter_ratio_jaw",
    "jit pose": "jitter_ratio_pose",
}


def _out(work: Path, key: str, split: str) -> Path:
    return work / "eval" / f"tradeoff-{key}-{split}"


def _cmd(work: Path, key: str, split: str, limit: int, seeds: list[str]) -> list[str]:
    from eval_jobs import evaluate_cmd

    tick, la, _ = SETTINGS[key]
    extra = ["--tick-s", str(tick), "--lookahead-s", str(la), "--prefix", "off"] if tick < 1 else []
    data, out = work / "data" / split, _out(work, key, split)
    return evaluate_cmd(variant(work, key), data, out, seeds, limit, key, extra)


def run_evaluations(work: Path, keys, splits, limit: int, seeds: list[str]) -> None:
    from eval_jobs import run_parallel

    run_parallel(
        [
            (_cmd(work, k, s, limit, seeds), work / f"tradeoff-{k}-{s}.log")
            for k in keys
            for s in splits
            if not (_out(work, k, s) / "report.json").is_file()
        ],
        REPO,
    )


def floors(work: Path, keys) -> dict:
    from timar_ros.perf.tick_bench import reaction_floors
    from timar_ros.runtime.checkpoint import load_checkpoint_config
    from timar_ros.runtime.ticks import DEFAULT_MARGIN_S, TickSchedule

    frames = load_checkpoint_config(BUNDLE).frames_per_turn
    out = {}
    for k in keys:
        tick, la, _ = SETTINGS[k]
        sched = TickSchedule.from_seconds(frames, tick, la)
        margin = DEFAULT_MARGIN_S if tick < 1.0 else 0.25
        f = reaction_floors(variant(work, k), sched, margin)
        out[k] = f["tick"]
    return out


def _cell(b: dict, col: str) -> str:
    v = b.get(COLUMNS[col])
    if v is None:
        return "-"
    if isinstance(v, dict):  # mean and std over seeds
        return f"{v['mean']:.2f} +- {v['std']:.2f}"
    return f"{v:.2f}"


def table(work: Path, keys, splits, fl: dict) -> tuple[str, dict]:
    rows = [
        "| setting | split | display delay s | reaction floor s (mean, range) | "
        + " | ".join(COLUMNS)
        + " | turn seams exp / jaw / pose | tick seams pose |",
        "|---" * (6 + len(COLUMNS)) + "|",
    ]
    data = {}
    for k in keys:
        for s in splits:
            rep = json.loads((_out(work, k, s) / "report.json").read_text())
            c = rep["contexts"]["stream"]
            b = c["behaviour"]
            sj = c.get("seam_jitter") or {}
            turn = " / ".join(
                f"{sj[g]['turn_over_elsewhere'][0]:.2f}" if g in sj else "-"
                for g in ("exp", "jaw", "pose")
            )
            tk = sj.get("pose", {}).get("tick_over_elsewhere")
            f = fl[k]
            data[f"{k}/{s}"] = {"behaviour": b, "seam_jitter": c.get("seam_jitter"), "floor": f}
            rows.append(
                f"| {k} | {s} | {f['display_delay_s']:.2f} | {f['mean_s']:.3f} "
                f"({f['min_s']:.2f}-{f['max_s']:.2f}) | "
                + " | ".join(_cell(b, col) for col in COLUMNS)
                + f" | {turn} | {'-' if not tk else f'{tk[0]:.2f}'} |"
            )
    return "\n".join(rows), data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/timar_bundled"))
    ap.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    ap.add_argument("--splits", nargs="+", default=["test"])
    ap.add_argument("--limit", type=int, default=16, help="first N files of each split")
    ap.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    a = ap.parse_args()
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "tools"))
    run_evaluations(a.work, a.settings, a.splits, a.limit, a.seeds)
    md, data = table(a.work, a.settings, a.splits, floors(a.work, a.settings))
    (a.work / "eval" / "tradeoff.json").write_text(json.dumps(data, indent=1))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
