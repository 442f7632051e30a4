"""`timar bench` as a suite: one quick run on the tiny preset (keys and finite values only;
speed targets are reported by the benchmark, never asserted)."""

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KEYS = (
    "p50_ms_turn",
    "p99_ms_turn",
    "flatness_h7_over_h0",
    "speedup_cache_vs_reencode_h7",
    "speedup_onnx_vs_torch",
    "torch_free_rss_mb",
    "e2e_p99_ms",
    "e2e_p50_ms",
    "rtf",
    "tick_p50_ms",
    "tick_p99_ms",
    "tick_p99_ms_torch",
    "tick_cpu_share",
    "reaction_floor_s",
    "reaction_floor_1s_s",
)


def test_bench_suite_json(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "timar_ros.cli",
            "bench",
            "--preset",
            "tiny",
            "--repeats",
            "1",
            "--reencode-repeats",
            "1",
            "--threads",
            "1",
            "--rss-turns",
            "5",
            "--e2e-seconds",
            "6",
            "--e2e-rate",
            "4",
            "--tick-repeats",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(out.read_text())
    for k in KEYS:
        assert isinstance(rep[k], float) and math.isfinite(rep[k]) and rep[k] > 0, k
    assert [row["name"] for row in rep["rows"]] == [
        "torch+cache",
        "torch+reencode",
        "onnx+cache",
        "onnx+crop7",
    ]
    assert rep["cost_crop7_over_stream_h7"] > 1.5  # 8 turns encoded per turn, not 1
    for row in rep["rows"]:
        assert set(row["per_history"]) == {*map(str, range(8)), "30+"}
    assert rep["torch_free_imported_torch"] is False
    assert rep["e2e"]["e2e_turns"] >= 3 and rep["e2e"]["e2e_backend"] == "onnx"
    assert set(rep["targets_met"]) <= set(rep)
    assert rep["flops_per_turn_cache_h7"] < rep["flops_per_turn_reencode_h7"]
    assert "onnx+cache" in r.stdout and "end-to-end DDS p99" in r.stdout
    assert f"cores ({rep['machine']['cpu']})" in r.stdout  # figures compare within one CPU
    # streaming inside the turn: a block every 0.12 s (config/timar.yaml, or the bench's default)
    assert rep["tick_s"] == 0.12 and abs(rep["display_delay_s"] - 0.25) < 1e-9
    assert rep["ticks"]["onnx"]["ticks_per_turn"] == 9
    assert rep["reaction_floor_s"] < 0.25 < rep["reaction_floor_1s_s"]
    assert "reaction floor, ticks" in r.stdout


def test_bench_refuses_zero_conversations_with_the_flag_to_fix():
    r = subprocess.run(
        [sys.executable, "-m", "timar_ros.cli", "bench", "--preset", "tiny"]
        + ["--reencode-repeats", "0", "--rss-turns", "0", "--e2e-seconds", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert r.returncode != 0
    assert "--reencode-repeats 0" in r.stderr and "--reencode-repeats 1" in r.stderr
    assert "Traceback" not in r.stderr


def test_the_bench_names_the_cpu_and_its_vector_extension():
    """Hosts of one kind differ (AVX-512 or only AVX2): the report says which ran it."""
    from timar_ros.perf.bench import cpu_model

    x86 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 avx512f avx512bw\n"
    assert cpu_model(x86) == "AMD EPYC (avx512)"
    assert cpu_model(x86.replace(" avx512f avx512bw", "")) == "AMD EPYC (avx2)"
    arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes\nCPU part\t: 0xd0c\n"
    assert cpu_model(arm).endswith("(asimd)")
