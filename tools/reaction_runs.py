#!/usr/bin/env python3
"""The reaction latency on the servo over several demo runs (issue 24 (d)): the partner's pause
-> the onset of a nod or tilt on the neck commands, display delay included, in `timar demo`
(`make demo`) and `timar demo --live-audio` (`make demo LIVE_AUDIO=1`), one run per sampling
seed, next to the rules' own lag after the same pauses (the demo conversation's targets, the
same detector).

    python tools/reaction_runs.py --seeds 0 1 2 3 4 --modes ticks live 1s --out /tmp/reaction_runs

Each run is a real-time demo with --sim none (~1.5 min). Prints a Markdown table and writes
runs.json. Run it with nothing else loading the CPU: the live pipeline is timed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# mode -> (label, extra `timar demo` arguments)
MODES = {
    "ticks": ("make demo (default ticks)", []),
    "live": ("make demo LIVE_AUDIO=1 (default ticks)", ["--live-audio"]),
    "1s": ("make demo, 1-s mode (tick_s 1.0)", ["--tick-s", "1.0"]),
    "1s-live": ("make demo LIVE_AUDIO=1, 1-s mode", ["--live-audio", "--tick-s", "1.0"]),
}


def run(mode: str, seed: int, out: Path) -> dict:
    dst = out / f"{mode}-seed{seed}"
    summary = dst / "summary.json"
    if not summary.is_file():
        cmd = [sys.executable, "-m", "timar_ros.cli", "demo", "--sim", "none"]
        cmd += ["--seed", str(seed), "--out", str(dst), *MODES[mode][1]]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    s = json.loads(summary.read_text())
    return {
        "mode": mode,
        "seed": seed,
        "tick_s": s["tick_s"],
        "display_delay_s": s["display_delay_s"],
        "tick_ms_p99": s["tick_ms_p99"],
        "reaction_latency": s["reaction_latency"],
    }


def _stats(lat: list[float]) -> str:
    if not lat:
        return "none"
    q = np.percentile(lat, [25, 50, 75])
    return f"{q[1]:.2f} s (IQR {q[0]:.2f}-{q[2]:.2f}, {min(lat):.2f}-{max(lat):.2f})"


def table(runs: list[dict]) -> str:
    rows = [
        "| run | runs | tick / display delay | pauses | reacted to | latency median (IQR, range) |",
        "|---|---|---|---|---|---|",
    ]
    rules = None
    for mode in MODES:
        rs = [r for r in runs if r["mode"] == mode]
        if not rs:
            continue
        lat = [x for r in rs for x in r["reaction_latency"]["latencies_s"]]
        pauses = sum(r["reaction_latency"]["pauses"] for r in rs)
        rows.append(
            f"| {MODES[mode][0]} | {len(rs)} (seeds {' '.join(str(r['seed']) for r in rs)}) | "
            f"{rs[0]['tick_s']:g} / {rs[0]['display_delay_s']:.2f} s | {pauses} | {len(lat)} | "
            f"{_stats(lat)} |"
        )
        rules = rs[0]["reaction_latency"].get("rules", rules)
    if rules:
        rows.append(
            f"| the rules' targets (same pauses, same detector) | - | - | {rules['pauses']} | "
            f"{len(rules['latencies_s'])} | {_stats(rules['latencies_s'])} |"
        )
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--modes", nargs="+", choices=list(MODES), default=["ticks", "live", "1s"])
    ap.add_argument("--out", type=Path, default=Path("/tmp/reaction_runs"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    runs = [run(m, s, a.out) for m in a.modes for s in a.seeds]
    (a.out / "runs.json").write_text(json.dumps(runs, indent=1))
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
