"""Run `timar evaluate` jobs two at a time with one thread each (on a 2-core machine this
finishes sooner than one job at a time with two threads). Shared by the tools that evaluate."""

from __future__ import annotations

import subprocess
from pathlib import Path


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
