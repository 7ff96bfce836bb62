"""The memory soak's quick path runs end to end: a ticking controller process and a watch-only
one beside it (with ``malloc_trim``), Rollouts created under new names and deleted, each
process's RSS sampled with the watch events delivered, the children's own figures (ticks,
malloc's bytes in use and free) read back."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark_support import run_benchmark


def test_memory_soak_samples_a_ticking_and_a_watching_controller(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    run = run_benchmark(
        "memory_soak.py",
        *("--mode", "tick", "--size", "6", "--minutes", "0.45", "--warmup", "0.1"),
        *("--every", "1", "--recreate", "1", "--recreated", "2", "--interval", "2"),
        *("--variants", "base,trim", "--trim-every", "5", "--json", str(out)),
        timeout=240,
    )
    assert "## Memory over a long run" in run.stdout
    result = json.loads(out.read_text())
    assert result["events"] > 0
    assert result["recreated"] >= 5
    ticking, watching = result["variants"]
    assert (ticking["role"], watching["role"]) == ("tick", "watch")
    for variant in (ticking, watching):
        rss = [s["rss_mib"] for s in variant["samples"]]
        assert len(rss) >= 15
        assert min(rss) > 0
        assert variant["synced_at"] > 0
        stats = variant["child_stats"]
        assert stats
        assert stats[-1]["malloc"]["in_use"] > 0
    assert ticking["child_stats"][-1]["ticks"] > 0
    assert watching["child_stats"][-1]["ticks"] == 0
