"""Fixtures of the analysis tests: one real Prometheus, loaded with known series, per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_support import LoadedPrometheus, start_loaded_prometheus


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedPrometheus]:
    """A running Prometheus holding the series of prometheus_support; stopped at the end."""
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    loaded = start_loaded_prometheus(workdir)
    try:
        yield loaded
    finally:
        loaded.process.stop()
