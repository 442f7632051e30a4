"""The bundled demo conversation, shortened, for tests that run `timar demo` on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from timar_ros.motion import FPS
from timar_ros.resources import share_dir


def short_demo_conversation(dst: Path, seconds: float = 8.0) -> Path:
    """The first ``seconds`` of both speakers' WAV and motion targets into ``dst`` (a
    conversation folder for ``timar demo --conversation``); returns ``dst``."""
    src = share_dir() / "data" / "demo_conversation"
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("demo_speaker1", "demo_speaker2"):
        x, rate = sf.read(src / f"{name}.wav", dtype="float32")
        sf.write(dst / f"{name}.wav", x[: int(seconds * rate)], rate)
        with np.load(src / f"{name}.npz") as z:
            np.savez(dst / f"{name}.npz", **{k: z[k][: int(seconds * FPS)] for k in z.files})
    return dst


def run_demo_cli(tmp_path: Path, args: list[str], seconds: float, timeout: float = 300):
    """``timar demo ARGS`` in its own process on the first ``seconds`` of the bundled
    conversation, output in ``tmp_path/out``; asserts it exits 0 -> (the finished process,
    summary.json as a dict)."""
    from helpers.ros import ros_env

    conv = short_demo_conversation(tmp_path / "conv", seconds=seconds)
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "timar_ros.cli", "demo", *args]
        + ["--conversation", str(conv), "--out", str(out)],
        cwd=tmp_path,
        env=ros_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r, json.loads((out / "summary.json").read_text())
