"""The one-replica-of-three benchmark's smallest run end to end (a smoke test of the script:
no timing is asserted; what it checks of correctness must hold)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark_support import run_benchmark


def test_one_of_three_runs_with_and_without_the_mirror_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "one_of.json"
    run_benchmark(
        "scale_one_of.py",
        *("--size", "9", "--duration", "5", "--interval", "2", "--spread", "3"),
        *("--lease-duration", "3", "--renew-deadline", "2", "--retry-period", "0.5"),
        *("--no-pin", "--no-write", "--json", str(out)),
    )
    mirrored, still = json.loads(out.read_text())
    assert (mirrored["mirrored"], still["mirrored"]) == (True, False)
    for variant in (mirrored, still):
        assert variant["ticks"] > 0
        assert variant["rollouts"] > 0
        assert variant["unguarded"] == []
        assert variant["step_violations"] == []
        assert variant["audited_writes"] > 0
    assert mirrored["copies_per_second"] > 0
    assert still["copies_per_second"] == 0
    assert mirrored["watch_events_per_second"] > still["watch_events_per_second"]
    assert mirrored["other_to_own"] > 1.0, "the other two shards' events reach the replica"
    assert still["other_to_own"] == 0
