"""Run `timar evaluate` jobs two at a time with one thread each (on a 2-core machine this
finishes sooner than one job at a time with two threads). Shared by the tools that evaluate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def evaluate_cmd(
    checkpoint: Path, data: Path, out: Path, seeds, limit: int, label: str, extra=()
) -> list[str]:
    """`timar evaluate` of the streamed history on the first ``limit`` files of ``data``, onnx
    with one thread (two such jobs share a 2-core machine), no plots; ``extra``: its options
    (e.g. --tick-s)."""
    cmd = [sys.executable, "-m", "timar_ros.cli", "evaluate", "--checkpoint", str(checkpoint)]
    cmd += ["--data", str(data), "--context", "stream", "--seeds", *map(str, seeds)]
    cmd += ["--limit", str(limit), "--backend", "onnx", "--threads", "1", "--plots", "0"]
    return [*cmd, "--out", str(out), "--label", label, *extra]


def run_parallel(jobs: list[tuple[list[str], Path]], cwd: Path, width: int = 2) -> None:
    """``jobs``: (command, log file); ``width`` at a time; raises if any fails."""
    running: list[tuple[subprocess.Popen, list[str], Path]] = []
    failed = []

    def reap(entry):
        proc, cmd, log = entry
        if proc.wait() != 0:
            failed.append(f"{' '.join(cmd[:6])} ... (log {log})")

    for cmd, log in jobs:
        if len(running) == width:
            reap(running.pop(0))
        print(f"+ {' '.join(cmd)}  > {log}", flush=True)
        with open(log, "w") as f:
            running.append(
                (subprocess.Popen(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT), cmd, log)
            )
    for entry in running:
        reap(entry)
    if failed:
        raise RuntimeError("failed: " + "; ".join(failed))
