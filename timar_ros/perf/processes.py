"""The benchmark's measurements in other processes (:mod:`timar_ros.perf.bench` runs them):
the torch-free runtime's peak memory in a fresh interpreter, and the end-to-end latency of the
conversation_policy node through DDS with an audio_file_player process feeding it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RSS_CHILD = r"""
import json, resource, sys, time
import numpy as np
from timar_ros.runtime import StreamingPolicy
ckpt, n, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) or None
pol = StreamingPolicy.from_checkpoint(ckpt, backend="onnx", threads=threads)
rng = np.random.default_rng(0)
spt, F = pol.samples_per_turn, pol.frames_per_turn
ms = []
for t in range(n):
    ua = (0.1 * rng.standard_normal(spt)).astype(np.float32)
    aa = (0.1 * rng.standard_normal(spt)).astype(np.float32)
    um = (0.3 * rng.standard_normal((F, 56))).astype(np.float32)
    t0 = time.perf_counter()
    out = pol.step(ua, aa, um)
    ms.append((time.perf_counter() - t0) * 1e3)
    assert np.isfinite(out).all()
hwm = None
try:  # this process's own peak (ru_maxrss also counts the forking parent's peak, see below)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024.0
except OSError:
    pass
print(json.dumps({"ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                  "vm_hwm_mb": hwm, "torch_imported": "torch" in sys.modules, "turns": n,
                  "p50_ms": float(np.percentile(ms, 50)), "backend": pol.backend}))
"""


def torch_free_rss(checkpoint: Path, turns: int = 100, threads: int | None = None) -> dict:
    """Run the onnx policy for ``turns`` turns in a fresh interpreter; -> its peak RSS in MB
    (``peak_rss_mb``), whether torch got imported, and its p50 step time.

    On Linux ``getrusage().ru_maxrss`` of an exec'd child keeps the high-water mark of the
    process it was forked from (here the benchmark, with torch loaded: ~500 MB), so the peak is
    the child's ``VmHWM`` from /proc/self/status, which starts afresh at exec; ``ru_maxrss`` is
    reported too, and used where /proc is missing."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")]
    )
    r = subprocess.run(
        [sys.executable, "-c", RSS_CHILD, str(checkpoint), str(turns), str(threads or 0)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if r.returncode != 0:
        raise RuntimeError(f"torch-free runtime subprocess failed:\n{r.stderr[-3000:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["peak_rss_mb"] = out["vm_hwm_mb"] if out.get("vm_hwm_mb") else out["ru_maxrss_mb"]
    return out


def e2e_through_dds(
    checkpoint: Path,
    backend: str,
    audio_seconds: float = 180.0,
    playback_rate: float = 6.0,
    log=print,
) -> dict:
    """End-to-end latency through DDS: this process runs the conversation_policy node; a child
    process runs audio_file_player on the bundled conversation (looped, ``playback_rate`` x real
    time, RELIABLE QoS) until ``audio_seconds`` of audio have been turned into turns. The node
    measures each turn from the arrival of the chunk that completes it to the HeadMotion
    publication (``e2e_ms``). Uses its own ROS domain on loopback; one warm-up step first (as
    a node does before its first turn matters)."""
    import random

    from timar_ros.nodes.compose import keep_dds_local

    keep_dds_local()  # this process and the player child
    env = dict(os.environ)
    domain = random.randint(120, 200)  # away from the test suite's and the Makefile's domains
    env["ROS_DOMAIN_ID"] = str(domain)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")]
    )
    env["PYTHONUNBUFFERED"] = "1"

    from timar_ros.nodes.compose import RosSession
    from timar_ros.nodes.conversation_policy import ConversationPolicy
    from timar_ros.resources import share_dir

    conv = share_dir() / "data" / "demo_conversation"
    ns = "/timar_bench"
    player = None
    try:
        with RosSession(domain_id=domain) as ros:
            node = ros.add(
                ConversationPolicy,
                namespace=ns,
                spin=False,
                checkpoint=str(checkpoint),
                backend=backend,
                audio_qos="reliable",
            )
            spt = node.policy.samples_per_turn
            z = np.zeros(spt, np.float32)
            node.policy.step(z, z)  # warm-up (allocations, first-call graph setup)
            node.policy.reset()
            ros.spin(node)
            turn_s = node.policy.frames_per_turn / 25.0
            n_turns = max(3, int(audio_seconds / turn_s))
            player = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "timar_ros.nodes.audio_file_player",
                    "--ros-args",
                    "-r",
                    f"__ns:={ns}",
                    "-p",
                    f"user_wav:={conv / 'demo_speaker1.wav'}",
                    "-p",
                    f"agent_wav:={conv / 'demo_speaker2.wav'}",
                    "-p",
                    f"playback_rate:={float(playback_rate)}",
                    "-p",
                    "loop:=true",
                    "-p",
                    "reliable:=true",
                    "-p",
                    "start_delay_s:=0.5",
                    "-p",
                    "wait_for_subscribers:=1",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            deadline = time.monotonic() + 60 + 2 * audio_seconds / playback_rate
            t0 = time.monotonic()
            while node.turns < n_turns and time.monotonic() < deadline:
                time.sleep(0.05)
                if player.poll() is not None:
                    raise RuntimeError(f"audio_file_player exited: {player.stderr.read()[-2000:]}")
            wall = time.monotonic() - t0
            ros.stop()
            e2e = np.asarray(node.e2e_ms, dtype=float)
            lat = np.asarray(node.latencies_ms, dtype=float)
            if len(e2e) == 0:
                raise RuntimeError("no turn was published within the time limit (DDS discovery?)")
            return {
                "e2e_p50_ms": float(np.percentile(e2e, 50)),
                "e2e_p99_ms": float(np.percentile(e2e, 99)),
                "e2e_max_ms": float(e2e.max()),
                "e2e_turns": int(len(e2e)),
                "e2e_audio_s": float(node.turns * turn_s),
                "e2e_policy_p50_ms": float(np.percentile(lat, 50)),
                "e2e_skipped_turns": int(node.pipeline.counters["skipped_turns"]),
                "e2e_deadline_misses": int(node.pipeline.counters["deadline_misses"]),
                "e2e_playback_rate": float(playback_rate),
                "e2e_backend": node.backend,
                "e2e_wall_s": wall,
            }
    finally:
        if player is not None and player.poll() is None:
            player.send_signal(2)
            try:
                player.wait(10)
            except subprocess.TimeoutExpired:
                player.kill()
                player.wait()
