"""The chaos benchmark's quick path runs end to end: a few Rollouts cycle while the controller
(a process of its own) is killed; every Rollout is checked afterwards. A run that found a
stuck Rollout, a wrong verdict, a lost abort or approval, traffic sent to a canary without
ready pods for longer than one tick, or a lost or duplicated terminal Event fails."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark_support import run_benchmark

ANOMALIES = (
    "stuck",
    "wrong_verdict",
    "wrong_image",
    "canary_not_scaled_down",
    "route_not_stable",
    "weights_backwards",
    "steps_skipped_or_repeated",
    "commands_lost",
    "traffic_without_pods",
    "events_lost",
    "events_duplicated",
)


def test_chaos_benchmark_runs_and_finds_nothing_wrong(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    run = run_benchmark(
        "chaos.py",
        *("--rollouts", "3", "--kills", "4", "--faults", "8", "--duration", "20"),
        *("--quiet", "60", "--modes", "1,faults", "--no-write", "--json", str(out)),
        timeout=400,
    )
    assert "Chaos: the controller killed mid-rollout" in run.stdout
    kills, faults = json.loads(out.read_text())["results"]
    for result in (kills, faults):
        assert result["cycles"] > 3, "the rollouts cycled"
        # the audit of traffic without pods saw canaries take traffic and lose their pods
        assert result["canaries_routed"] > 0
        assert result["canaries_emptied"] > 0
        assert result["approvals_sent"] > 0, "a Rollout waited for approvals and got them"
        assert {k: result[k] for k in ANOMALIES} == dict.fromkeys(ANOMALIES, 0), result["mode"]
    assert kills["restarts"] == kills["kills_random"] + kills["kills_targeted"]
    assert faults["faults"] > 0, "500s were answered to the controller's writes"
    assert faults["restarts"] == 0
