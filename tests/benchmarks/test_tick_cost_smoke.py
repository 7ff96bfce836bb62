"""The tick-cost benchmark's quick path runs end to end: the API call measured before and after
(the writes landed, or it exits non-zero)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark_support import run_benchmark


def test_tick_cost_benchmark_measures_an_api_call_before_and_after(tmp_path: Path) -> None:
    out = tmp_path / "tick_cost.json"
    run = run_benchmark("tick_cost.py", "--quick", "--json", str(out), timeout=240)
    assert "| an API call" in run.stdout
    figures = json.loads(out.read_text())
    for lever in ("api_call",):
        assert figures[lever]["before_us"] > 0
        assert figures[lever]["after_us"] > 0
        assert figures[lever]["rounds"] == 3
