"""The watch-cost benchmark's quick path runs end to end: a controller process watching a
namespace where unrelated ConfigMaps and Secrets churn, its CPU measured per phase; then
referenced ones changed under churn each start their Rollout. The Rollouts' interval is five
minutes, so only the watch can start them within the benchmark's wait."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark_support import run_benchmark


def test_watch_cost_benchmark_runs_and_every_referenced_change_starts_a_rollout(
    tmp_path: Path,
) -> None:
    out = tmp_path / "watch.json"
    run = run_benchmark(
        "watch_cost.py",
        *("--rollouts", "3", "--objects", "4", "--duration", "2", "--sizes", "1,8"),
        *("--triggers", "2", "--interval", "300", "--settle", "1"),
        *("--no-write", "--json", str(out)),
        timeout=240,
    )
    assert "The cost of watching ConfigMaps and Secrets" in run.stdout
    (result,) = json.loads(out.read_text())["results"]
    phases = {p["name"]: p for p in result["phases"]}
    assert list(phases) == [
        "no churn",
        "churn, 1 KiB objects",
        "churn, 8 KiB objects",
        "churn, 8 KiB objects, unwatched namespace",
    ]
    assert phases["no churn"]["writes"] == 0
    assert all(p["writes"] > 0 for name, p in phases.items() if name != "no churn")
    assert all(p["rss_mib"] > 0 for p in phases.values())
    assert result["triggers_missed"] == 0
    assert len(result["trigger_seconds"]) == 2
