"""What every test shares: the programs of the virtual environment come first on PATH.

scripts/bootstrap.sh installs helm and kubectl into the venv's bin; tests that run them (and
`canary`) find them there even when the venv is not activated (`.venv/bin/pytest ...`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

_VENV_BIN = str(Path(sys.executable).parent)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _VENV_BIN:
    os.environ["PATH"] = os.pathsep.join([_VENV_BIN, os.environ.get("PATH", "")])

# The test files that take longest (pytest --durations; docs/testing.md), run first: with
# `pytest -n auto --dist loadfile` (make unit) each file goes whole to one worker in collection
# order, and a long file handed out last would keep one worker busy after the other is done.
LONG_FIRST = (
    "tests/image/test_image.py",
    "tests/local/test_demo_api.py",
    "tests/local/test_demo.py",
    "tests/packaging/test_wheel.py",
    "tests/benchmarks/test_chaos_smoke.py",
    "tests/controller/test_crash_consistency.py",
    "tests/telemetry/test_mesh_counts.py",
    "tests/benchmarks/test_scale_smoke.py",
    "tests/engine/test_properties.py",
    "tests/sim/test_real_traffic.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {path: n for n, path in enumerate(LONG_FIRST)}
    root = config.rootpath

    def where(item: pytest.Item) -> int:
        relative = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        return rank.get(relative, len(LONG_FIRST))

    items.sort(key=where)  # stable: every other file, and every file's tests, keep their order
