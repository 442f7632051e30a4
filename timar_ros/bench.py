"""`timar bench`: per-turn latency of the streaming policy on this machine, as a table and JSON.

Rows: ``torch+cache`` (rolling KV cache) and ``torch+reencode`` (kv_cache=False: every turn
re-encodes its history from the input tokens, the reference's method) at 0..7 and 20+ history
turns, plus FLOPs per turn (torch.utils.flop_counter) and the real-time factor
(p50 compute time / turn duration). Everything runs in one process, so ratios are fair.

Reusable pieces (other backends add rows with them): :func:`time_policy` times any
:class:`~timar_ros.runtime.StreamingPolicy`; :func:`summarise` turns timings into a row;
:func:`format_table` prints rows. Importing this module has no side effects.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

HISTORIES = (0, 1, 2, 3, 4, 5, 6, 7)
LONG_FROM = 20  # bucket "20+": turns with >= 20 processed turns before them


def _inputs(policy, n_turns: int, seed: int):
    rng = np.random.default_rng(seed)
    spt, F = policy.samples_per_turn, policy.frames_per_turn
    ua = (0.1 * rng.standard_normal((n_turns, spt))).astype(np.float32)
    aa = (0.1 * rng.standard_normal((n_turns, spt))).astype(np.float32)
    um = (0.3 * rng.standard_normal((n_turns, F, 56))).astype(np.float32)
    return ua, aa, um


def time_policy(policy, repeats: int = 10, n_turns: int = LONG_FROM + 4, seed: int = 0,
                warmup: int = 2) -> dict[str, list[float]]:
    """Step ``policy`` through ``repeats`` fresh conversations of ``n_turns`` turns.

    Returns {bucket: [ms, ...]} with buckets "0".."7" (turns processed before the step) and
    "20+" (>= 20), timing ``step`` only (wall clock, perf_counter)."""
    ua, aa, um = _inputs(policy, n_turns, seed)
    for _ in range(warmup):
        policy.reset()
        for t in range(min(3, n_turns)):
            policy.step(ua[t], aa[t], um[t])
    out: dict[str, list[float]] = {}
    for _ in range(repeats):
        policy.reset()
        for t in range(n_turns):
            t0 = time.perf_counter()
            policy.step(ua[t], aa[t], um[t])
            ms = (time.perf_counter() - t0) * 1e3
            key = str(t) if t in HISTORIES else (f"{LONG_FROM}+" if t >= LONG_FROM else None)
            if key is not None:
                out.setdefault(key, []).append(ms)
    return out


def summarise(name: str, timings: dict[str, list[float]], turn_seconds: float,
              **info) -> dict:
    """A bench row: per-bucket p50/p99 and overall p50/p99 (all timed steps)."""
    allms = np.concatenate([np.asarray(v) for v in timings.values()])
    per = {k: {"p50_ms": float(np.percentile(v, 50)), "p99_ms": float(np.percentile(v, 99)),
               "n": len(v)} for k, v in timings.items()}
    p50 = float(np.percentile(allms, 50))
    row = {"name": name, "per_history": per, "p50_ms_turn": p50,
           "p99_ms_turn": float(np.percentile(allms, 99)),
           "rtf": p50 / (1e3 * turn_seconds), **info}
    if "0" in per and "7" in per:
        row["flatness_h7_over_h0"] = per["7"]["p50_ms"] / per["0"]["p50_ms"]
    return row


def measure_flops(policy, history: int = 7, seed: int = 0) -> int | None:
    """FLOPs of one torch-backend ``step`` after ``history`` turns (flop_counter; None if the
    policy is not a torch one)."""
    try:
        import torch  # noqa: F401
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return None
    if getattr(policy, "backend", None) != "torch":
        return None
    ua, aa, um = _inputs(policy, history + 1, seed)
    policy.reset()
    for t in range(history):
        policy.step(ua[t], aa[t], um[t])
    with FlopCounterMode(display=False) as fc:
        policy.step(ua[history], aa[history], um[history])
    policy.reset()
    return int(fc.get_total_flops())


def format_table(rows: list[dict]) -> str:
    buckets = list(map(str, HISTORIES)) + [f"{LONG_FROM}+"]
    head = f"{'policy':<18}" + "".join(f"{'h' + b:>14}" for b in buckets) + f"{'GFLOP/turn':>12}"
    lines = ["per-turn step latency, p50/p99 ms, by history turns", head, "-" * len(head)]
    for r in rows:
        cells = []
        for b in buckets:
            s = r["per_history"].get(b)
            cells.append(f"{s['p50_ms']:.1f}/{s['p99_ms']:.1f}" if s else "-")
        fl = r.get("flops_per_turn")
        lines.append(f"{r['name']:<18}" + "".join(f"{c:>14}" for c in cells)
                     + (f"{fl / 1e9:>12.2f}" if fl else f"{'-':>12}"))
    return "\n".join(lines)


def run_bench(checkpoint: str | None = None, preset: str = "robot", repeats: int = 10,
              reencode_repeats: int = 3, threads: int | None = None, seed: int = 0) -> dict:
    """Time the torch policy with and without the KV cache; returns the JSON-able report."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see runtime.base (before torch loads)
    import torch

    from .init_checkpoint import make_random_checkpoint
    from .runtime import StreamingPolicy

    if threads:
        torch.set_num_threads(int(threads))
    with tempfile.TemporaryDirectory() as tmp:
        if checkpoint is None:
            checkpoint = str(make_random_checkpoint(preset, Path(tmp) / f"{preset}-random"))
            source = f"random init of preset {preset!r}"
        else:
            source = str(checkpoint)
        rows = []
        for name, kv, reps in (("torch+cache", True, repeats),
                               ("torch+reencode", False, reencode_repeats)):
            pol = StreamingPolicy.from_checkpoint(checkpoint, backend="torch", seed=seed,
                                                  kv_cache=kv)
            turn_s = pol.frames_per_turn / 25.0
            timings = time_policy(pol, repeats=reps, seed=seed)
            rows.append(summarise(name, timings, turn_s, backend="torch", kv_cache=kv,
                                  flops_per_turn=measure_flops(pol)))
        cfg = pol.config
        model_id = pol.model_id
        params = pol.model.num_parameters()
    cache, reenc = rows
    report = {
        "checkpoint": source,
        "model_id": model_id,
        "preset": cfg.preset,
        "config": {k: getattr(cfg, k) for k in ("d_model", "encoder_depth", "decoder_depth",
                                                "num_heads", "frames_per_turn", "window_turns",
                                                "diffusion_width", "diffusion_depth",
                                                "num_sampling_steps", "speech_encoder")},
        "trainable_parameters": params,
        "turn_seconds": cfg.frames_per_turn / 25.0,
        "p50_ms_turn": cache["p50_ms_turn"],
        "p99_ms_turn": cache["p99_ms_turn"],
        "rtf": cache["rtf"],
        "flatness_h7_over_h0": cache.get("flatness_h7_over_h0"),
        "speedup_cache_vs_reencode_h7": (reenc["per_history"]["7"]["p50_ms"]
                                         / cache["per_history"]["7"]["p50_ms"]),
        "flops_per_turn_cache_h7": cache["flops_per_turn"],
        "flops_per_turn_reencode_h7": reenc["flops_per_turn"],
        "rows": rows,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version()},
    }
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint folder (default: a random init of --preset)")
    parser.add_argument("--preset", default="robot", help="preset when no checkpoint is given")
    parser.add_argument("--repeats", type=int, default=10,
                        help="conversations of 24 turns timed with the cache (default: %(default)s)")
    parser.add_argument("--reencode-repeats", type=int, default=3,
                        help="conversations timed without the cache (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--json", default=None, metavar="OUT", help="write the report here")


def run(args: argparse.Namespace) -> int:
    report = run_bench(args.checkpoint, args.preset, args.repeats, args.reencode_repeats,
                       args.threads)
    print(format_table(report["rows"]))
    print(f"\nmodel {report['model_id']} ({report['trainable_parameters'] / 1e6:.2f} M params), "
          f"{report['turn_seconds']:.2f} s turns, torch threads {report['machine']['torch_threads']}")
    print(f"p50 {report['p50_ms_turn']:.1f} ms  p99 {report['p99_ms_turn']:.1f} ms per turn  "
          f"RTF {report['rtf']:.3f}  flatness h7/h0 {report['flatness_h7_over_h0']:.2f}  "
          f"cache speed-up at h7 {report['speedup_cache_vs_reencode_h7']:.1f}x")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}")
    return 0
