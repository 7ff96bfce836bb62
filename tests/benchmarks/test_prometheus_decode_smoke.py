"""The metric-side benchmark's quick path runs end to end: every lever measured before and
after on the same input (and the before and after looks counted alike, or it exits non-zero)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark_support import run_benchmark


def test_prometheus_decode_benchmark_measures_every_lever(tmp_path: Path) -> None:
    out = tmp_path / "levers.json"
    run = run_benchmark("prometheus_decode.py", "--quick", "--json", str(out), timeout=240)
    assert "| look |" in run.stdout
    figures = json.loads(out.read_text())
    for lever in ("decode", "parse", "render", "look"):
        assert figures[lever]["before_us"] > 0
        assert figures[lever]["after_us"] > 0
    look = figures["look"]
    # after the first round every look of the reusing provider read only its own seconds
    assert look["reused"] == look["looks"] - 40
