"""The `world` fixture: a rollout whose primary already serves rev-1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engine_harness import World, rollout


@pytest.fixture
def world() -> Iterator[World]:
    return World(ro=rollout()).initialized()
