"""`timar bench` machinery on the tiny preset (numbers are not asserted; shapes and keys are)."""

from helpers.model import one_thread_module, tiny_model  # noqa: F401
from timar_ros.perf.bench import format_table, measure_flops, summarise, time_policy
from timar_ros.runtime.torch_policy import TorchStreamingPolicy


def test_time_policy_buckets_and_row():
    pol = TorchStreamingPolicy(tiny_model(), seed=0)
    t = time_policy(pol, repeats=1, n_turns=9, warmup=0)
    assert set(t) == {str(h) for h in range(8)}
    row = summarise("x", t, 1.0)
    assert row["p99_ms_turn"] >= row["p50_ms_turn"] > 0 and "flatness_h7_over_h0" in row
    fl = measure_flops(pol)
    assert fl and fl > 1e6
    assert "h7" in format_table([row])


# The `timar bench` CLI and its JSON are tested in test_bench_suite.py.
