"""The chaos benchmark's audit of traffic sent to a canary without ready pods, fed by hand
with the object changes the API server would commit, on a clock the test moves."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from chaos_traffic import UnservedTraffic, has_ready_pods

Json = dict[str, Any]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def route(weight: int, mirror: float | None = None) -> Json:
    http: Json = {
        "route": [
            {"destination": {"host": "app-primary"}, "weight": 100 - weight},
            {"destination": {"host": "app-canary"}, "weight": weight},
        ]
    }
    if mirror is not None:
        http["mirror"] = {"host": "app-canary"}
        http["mirrorPercentage"] = {"value": mirror}
    return {"metadata": {"name": "app"}, "spec": {"http": [http]}}


def deployment(replicas: int, generation: int, observed: int, ready: int) -> Json:
    status = {"observedGeneration": observed, "readyReplicas": ready} if ready else {}
    status.setdefault("observedGeneration", observed)
    return {
        "metadata": {"name": "app", "generation": generation},
        "spec": {"replicas": replicas},
        "status": status,
    }


def audit() -> tuple[UnservedTraffic, Clock]:
    clock = Clock()
    traffic = UnservedTraffic(["app"], clock=clock)
    traffic.seen_deployment("app", deployment(2, 1, 1, 2))
    traffic.seen_route("app", route(0))
    return traffic, clock


def test_a_correct_rollback_leaves_no_interval() -> None:
    traffic, clock = audit()
    traffic.seen_route("app", route(20))
    clock.now += 5
    traffic.seen_route("app", route(0))  # the route first...
    clock.now += 1
    traffic.seen_deployment("app", deployment(0, 2, 1, 2))  # ...then the canary scaled down
    assert traffic.exposures() == []


def test_the_stalled_rollback_of_issue_14_is_caught() -> None:
    traffic, clock = audit()
    traffic.seen_route("app", route(20))
    traffic.seen_route("app", route(0))
    traffic.seen_deployment("app", deployment(0, 2, 1, 2))  # status stale: no pods anyway
    clock.now += 2
    traffic.seen_route("app", route(20))  # repair puts the step's weight back; no pods
    clock.now += 600
    (exposure,) = traffic.beyond(2.0)
    assert exposure.seconds == 600
    assert exposure.ongoing
    traffic.seen_route("app", route(0))
    (closed,) = traffic.exposures()
    assert not closed.ongoing
    assert (traffic.routed, traffic.emptied) == (2, 1)


def test_a_canary_scaled_up_has_no_pods_until_its_status_says_so() -> None:
    traffic, clock = audit()
    traffic.seen_deployment("app", deployment(0, 2, 1, 2))
    traffic.seen_deployment("app", deployment(2, 3, 1, 2))  # the status still the old one
    traffic.seen_route("app", route(20))
    clock.now += 0.5
    traffic.seen_deployment("app", deployment(2, 3, 3, 2))
    (exposure,) = traffic.exposures()
    assert exposure.seconds == 0.5
    assert traffic.beyond(2.0) == []


def test_mirrored_traffic_counts_and_a_rolling_update_keeps_pods() -> None:
    traffic, clock = audit()
    traffic.seen_route("app", route(0, mirror=100.0))
    traffic.seen_deployment("app", deployment(2, 2, 1, 2))  # a new template rolling out
    assert traffic.exposures() == []
    traffic.seen_deployment("app", deployment(0, 3, 1, 2))
    clock.now += 3
    (exposure,) = traffic.beyond(2.0)
    assert exposure.seconds == 3


def test_pods_follow_the_status_of_the_current_spec() -> None:
    assert has_ready_pods(deployment(2, 1, 1, 2), had=False)
    assert not has_ready_pods(deployment(2, 1, 1, 0), had=True)
    assert not has_ready_pods(deployment(0, 1, 1, 2), had=True)
    assert has_ready_pods(deployment(2, 2, 1, 0), had=True)
    assert not has_ready_pods(deployment(2, 2, 1, 2), had=False)
