"""Fixtures: the target, its configuration (and unrelated objects), the Rollout."""

from __future__ import annotations

import copy

import pytest
from workload_support import (
    CONFIGMAP_NAMES,
    ROLLOUT,
    SECRET_NAMES,
    TARGET,
    Json,
    configmap,
    secret,
)

from canary.model.rollout import Rollout
from canary.workload import Owner


@pytest.fixture
def target() -> Json:
    return copy.deepcopy(TARGET)


@pytest.fixture
def configmaps() -> list[Json]:
    """The referenced ConfigMaps (not the optional 'extra') and an unrelated one."""
    names = [n for n in CONFIGMAP_NAMES if n != "extra"]
    return [configmap(n) for n in names] + [configmap("unrelated")]


@pytest.fixture
def secrets() -> list[Json]:
    """The referenced Secrets (not the optional 'api-token') and an unrelated one."""
    names = [n for n in SECRET_NAMES if n != "api-token"]
    return [secret(n) for n in names] + [secret("unrelated")]


@pytest.fixture
def rollout() -> Rollout:
    return Rollout.model_validate(copy.deepcopy(ROLLOUT))


@pytest.fixture
def owner(rollout: Rollout) -> Owner:
    return Owner.of(rollout)
