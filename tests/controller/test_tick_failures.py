"""A failed tick's record (its failures, its ``canary_reconcile_errors_total`` series, its
Warning Event) against the real API server stand-in: kept while the Rollout exists, dropped when
the Rollout is gone by the time the failure is reported (deleted as it ticked: its status write
answered 404), so that deleted names leave nothing behind in a long-running controller."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from controller_support import CANARY_CRDS, deployment, rollout
from kubernetes import config

from canary.controller.failures import TickFailures
from canary.controller.kube import Kube, NotFoundError
from canary.controller.metrics import ControllerMetrics
from canary.testing import ApiServer

NS = "failures"
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with ApiServer() as server:
        server.create_namespace(NS)
        server.apply_file(*sorted(CANARY_CRDS.glob("*.yaml")))
        yield server


@pytest.fixture
def failures(api: ApiServer, tmp_path: Path) -> TickFailures:
    path = api.kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    kube = Kube(config.new_client_from_config(config_file=str(path)))
    return TickFailures(kube, ControllerMetrics(), "canary-test", lambda: NOW)


def series_of(failures: TickFailures, name: str) -> list[str]:
    text = failures.metrics.exposition().decode()
    return [line for line in text.splitlines() if f'name="{name}"' in line]


def gone(name: str) -> NotFoundError:
    return NotFoundError(404, "NotFound", f'rollouts.canary.dev "{name}" not found')


def test_a_failure_of_an_existing_rollout_is_kept_and_told(
    api: ApiServer, failures: TickFailures
) -> None:
    api.apply(deployment("web", NS))
    api.apply(rollout("web", NS))

    delay, _ = failures.failed(NS, "web", OSError("connection refused"))
    again, _ = failures.failed(NS, "web", OSError("connection refused"))

    assert (delay, again) == (0.5, 1.0)  # the backoff counts the failures in a row
    assert len(series_of(failures, "web")) == 2  # the counter's _total and _created
    events = [e for e in api.list("v1", "Event", NS) if e.get("reason") == "ReconcileError"]
    assert [e["message"] for e in events] == ["connection refused"]  # once per problem


def test_a_failure_of_a_rollout_deleted_meanwhile_leaves_nothing(
    api: ApiServer, failures: TickFailures
) -> None:
    api.apply(deployment("web", NS))
    api.apply(rollout("web", NS))
    failures.failed(NS, "web", OSError("connection refused"))
    assert series_of(failures, "web")

    api.delete("canary.dev/v1alpha1", "Rollout", "web", NS)
    failures.metrics.forget(NS, "web")  # the deletion's watch event, before the tick ends
    for name in [f"gone-{i}" for i in range(50)]:  # ticks of Rollouts deleted as they ran
        failures.failed(NS, name, gone(name))
    failures.failed(NS, "web", gone("web"))

    assert series_of(failures, "web") == []
    assert not any("gone-" in line for line in failures.metrics.exposition().decode().split("\n"))
    delay, _ = failures.failed(NS, "gone-0", gone("gone-0"))
    assert delay == 0.5  # its count of failures in a row went with it
    assert not [e for e in api.list("v1", "Event", NS) if "gone-" in str(e.get("message"))]
