"""The scale benchmark's quick path runs end to end (a smoke test: no figure is asserted,
only that it finishes and reports every measure for every size)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark_support import run_benchmark

MEASURES = {
    "size",
    "ticks",
    "ticks_per_second",
    "lateness_p50",
    "lateness_p99",
    "reconcile_p50",
    "reconcile_p99",
    "api_calls_per_tick",
    "queries_per_tick",
    "controller_cpu_seconds",
    "peak_rss_mib",
}


def test_scale_benchmark_runs_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    run = run_benchmark(
        "scale.py",
        *("--sizes", "3", "--duration", "8", "--interval", "2", "--spread", "3"),
        *("--no-write", "--json", str(out)),
    )
    assert "Controller scale" in run.stdout
    report = json.loads(out.read_text())
    assert [r["size"] for r in report["results"]] == [3]
    result = report["results"][0]
    assert set(result) >= MEASURES
    assert result["ticks"] > 0, "the controller ticked during the window"
    assert result["api_calls_per_tick"] > 0
    assert any(why.startswith("scheduled ") for why in result["tick_reasons"]), (
        "the window's ticks by why they ran (canary_ticks_total)"
    )
    assert result["spread_seconds"] == 3.0, "the rollouts' phases spread as asked"
    assert 0 < result["busiest_second"] <= result["ticks"]
