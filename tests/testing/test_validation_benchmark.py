"""benchmarks/apiserver_validation.py's quick mode runs end to end (it exits non-zero when the
fast path changes a result or refuses a realistic status write). A smoke test: no timing is
asserted, only that every variant was measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_apiserver_validation_benchmark_measures_before_and_after(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    script = ROOT / "benchmarks/apiserver_validation.py"
    run = subprocess.run(
        [sys.executable, str(script), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    figures = json.loads(out.read_text())
    assert figures["writes_per_round"] == 200
    assert set(figures["median_us_per_write"]) == {"before", "after", "refused"}
    assert all(value > 0 for value in figures["median_us_per_write"].values())
