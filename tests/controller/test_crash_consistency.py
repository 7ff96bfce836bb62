"""Crash consistency (docs/controller.md): at every write a rollout makes, in turn, the
controller dies once the API server stored it (a restarted one, with nothing in memory, takes
over; dying before a write is dying after the one before), or the write fails with a 500
(stored or not).  Each outcome must equal the run without a death: the same verdict and primary
image, the canary scaled down, no mirror, the weights and steps in the same order (none
repeated, skipped or moved backwards), no traffic on a canary without ready pods after any
tick, every Event recorded once."""

from __future__ import annotations

import pytest
from controller_support import Cluster
from crash_support import NEW, OLD, Record, fresh

from canary.gates.webhooks import WebhookCaller


def departures(record: Record, control: Record) -> list[str]:
    found = []
    if record.phase != control.phase:
        found.append(f"phase {record.phase}")
    if record.primary_image != control.primary_image:
        found.append(f"primary runs {record.primary_image}")
    if record.canary_replicas != 0:
        found.append(f"canary keeps {record.canary_replicas} replicas")
    if record.mirror:
        found.append("a mirror is left")
    if record.distinct(record.weights) != control.distinct(control.weights):
        found.append(f"weights {record.distinct(record.weights)}")
    if record.distinct(record.steps) != control.distinct(control.steps):
        found.append(f"steps {record.distinct(record.steps)}")
    if record.canary_without_pods:
        found.append(f"{record.canary_without_pods} ticks of traffic to a canary without pods")
    if record.events != control.events:
        found.append(
            f"events {dict(record.events - control.events)} more, "
            f"{dict(control.events - record.events)} fewer"
        )
    return found


@pytest.mark.parametrize(
    ("failures", "verdict", "image", "weights"),
    [(0, "Succeeded", NEW, [0, 20, 50, 0]), (250, "Failed", OLD, [0, 20, 0])],
)
@pytest.mark.parametrize("mode", ["death", "error", "lost"])
def test_a_death_or_a_failed_write_at_any_write_changes_nothing_of_the_outcome(
    cluster: Cluster, failures: int, verdict: str, image: str, weights: list[int], mode: str
) -> None:
    with WebhookCaller.create() as webhooks:
        control = fresh(cluster, "control", failures, webhooks).run(webhooks)
        assert control.phase == verdict
        assert control.distinct(control.weights) == weights
        assert control.primary_image == image
        assert control.canary_replicas == 0
        assert not control.canary_without_pods
        assert control.writes > 5
        problems = {}
        for k in range(1, control.writes + 1):
            record = fresh(cluster, f"at-{k}", failures, webhooks).run(webhooks, k, mode)
            record.events.pop("ReconcileError", None)  # (the failed write, reported)
            found = departures(record, control)
            if found:
                problems[k] = found
    assert not problems, f"of {control.writes} writes gone wrong: {problems}"
