"""The controller process' collector settings (canary/cli/collector.py), in a process of its own:
they are process-wide, and the test process keeps CPython's defaults."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import gc, json
from canary.cli.collector import freeze_startup_heap, tune_collector
before = gc.get_threshold()
tune_collector()
cache = [{"kind": "Rollout", "n": i} for i in range(1000)]
frozen = freeze_startup_heap()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": frozen,
                  "counts": gc.get_count()}))
"""


def test_the_controller_collects_less_often_and_freezes_its_startup_heap() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    seen = json.loads(out)
    assert seen["before"] == [700, 10, 10]
    assert seen["after"] == [10_000, 20, 100]
    # the 1,000 cached dicts (and the modules) are out of the collector's passes
    assert seen["frozen"] > 1_000
    assert seen["counts"][2] == 0
