"""The sharded scale benchmark's smallest run end to end (a smoke test of the script: no
timing is asserted; what it checks of correctness must hold)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark_support import run_benchmark


def test_sharded_benchmark_runs_kills_a_replica_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "sharded.json"
    run = run_benchmark(
        "scale_sharded.py",
        *("--size", "9", "--duration", "6", "--after", "4", "--interval", "2", "--spread", "3"),
        *("--lease-duration", "3", "--renew-deadline", "2", "--retry-period", "0.5"),
        *("--no-write", "--json", str(out)),
    )
    assert "takeover" in run.stdout
    report = json.loads(out.read_text())
    assert [r["identity"] for r in report["replicas"]] == ["replica-a", "replica-b", "replica-c"]
    assert all(r["ticks"] > 0 for r in report["replicas"]), "every replica ticked its shard"
    assert sorted(s for r in report["replicas"] for s in r["shards"]) == [0, 1, 2]
    assert report["killed"] == "replica-a"
    assert report["lease_gap_seconds"] >= 3, "not taken before the dead holder's Lease ran out"
    assert report["takeover_write_seconds"] is not None
    assert report["unguarded"] == []
    assert report["audited_writes"] > 0
    assert report["step_violations"] == []
    assert report["steps"] > 0
    assert report["step_events_lost"] == 0
    assert report["step_events_owed"] == report["steps"], "one Step Event owed a step"
