"""`timar bench` machinery on the tiny preset (numbers are not asserted; shapes and keys are)."""
import json
import subprocess
import sys

from helpers.model import one_thread_module, tiny_model  # noqa: F401
from timar_ros.bench import format_table, measure_flops, summarise, time_policy
from timar_ros.runtime.policy import TorchStreamingPolicy


def test_time_policy_buckets_and_row():
    pol = TorchStreamingPolicy(tiny_model(), seed=0)
    t = time_policy(pol, repeats=1, n_turns=9, warmup=0)
    assert set(t) == {str(h) for h in range(8)}
    row = summarise("x", t, 1.0)
    assert row["p99_ms_turn"] >= row["p50_ms_turn"] > 0 and "flatness_h7_over_h0" in row
    fl = measure_flops(pol)
    assert fl and fl > 1e6
    assert "h7" in format_table([row])


def test_bench_cli_json(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "timar_ros.cli", "bench", "--preset", "tiny",
                        "--repeats", "1", "--reencode-repeats", "1", "--threads", "1",
                        "--json", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    for k in ("p50_ms_turn", "p99_ms_turn", "flatness_h7_over_h0", "speedup_cache_vs_reencode_h7",
              "rtf", "flops_per_turn_cache_h7", "rows"):
        assert k in rep
    assert [r["name"] for r in rep["rows"]] == ["torch+cache", "torch+reencode"]
    assert "20+" in rep["rows"][0]["per_history"]
    assert "torch+cache" in r.stdout
