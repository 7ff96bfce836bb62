"""The simulator benchmark's quick mode runs end to end (a smoke test: no figure is asserted,
only that it finishes and reports every judge and scenario, and a profile per judge)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark_support import run_benchmark

from canary.model.analysis import JudgeName
from canary.sim import SCENARIOS


def test_simulator_benchmark_runs_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "simulator.json"
    run = run_benchmark("simulator.py", "--quick", "--no-write", "--json", str(out))
    assert "Simulated rollouts a second" in run.stdout
    report = json.loads(out.read_text())
    judges = {j.value for j in JudgeName}
    cells = {(c["judge"], c["scenario"]) for c in report["cells"]}
    assert cells == {(j, s) for j in judges for s in SCENARIOS}
    assert all(c["runs"] > 0 and c["per_second"] > 0 for c in report["cells"])
    assert set(report["overall"]) == judges
    assert {p["judge"] for p in report["profiles"]} == judges
    assert all(p["top"] and p["areas"] for p in report["profiles"])
