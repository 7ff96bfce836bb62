"""Rollouts driven tick by tick with the controller dying, or a write failing, at a chosen
write: the record of what the cluster held after every tick, to compare with a run that had
no fault (docs/controller.md, "Crash consistency")."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from controller_support import Cluster, deployment, rollout, wait_for, wait_rollouts_ready
from tick_support import Judged

from canary.controller.kube import Kube, KubeError
from canary.controller.metrics import ControllerMetrics
from canary.controller.reconcile import Reconciler
from canary.gates.webhooks import WebhookCaller
from canary.testing.telemetry_routes import split_of_objects

Json = dict[str, Any]
TICK = timedelta(seconds=61)
TERMINAL = ("Succeeded", "Failed")
OLD, NEW = "podinfo:6.7.0", "podinfo:7.0.0"


class Crash(BaseException):
    """The controller process died: nothing after it runs."""


class FailingKube(Kube):
    """A Kube whose ``fail_at``-th write (1 = the first) goes wrong, as ``mode`` says:

    - ``death``: the process dies once the API server stored the write, before its answer
      (nothing after it runs; a restarted controller takes over);
    - ``error``: the API server answers 500 without storing it;
    - ``lost``: the API server stores it but the answer is lost (a 500 after the fact: a
      timeout).
    """

    def __init__(self, base: Kube, fail_at: int | None, mode: str = "death") -> None:
        super().__init__(base.api_client, timeout=base.timeout)
        self.fail_at = fail_at
        self.mode = mode
        self.writes = 0
        self.dead = False

    def _write(self, send: Callable[[], Any]) -> Any:
        if self.dead:
            raise Crash
        self.writes += 1
        if self.fail_at is None or self.writes != self.fail_at:
            return send()
        if self.mode == "error":
            raise KubeError(500, "InternalError", "injected: not stored")
        send()
        if self.mode == "lost":
            raise KubeError(500, "InternalError", "injected: stored, answer lost")
        self.dead = True
        raise Crash

    def _call(self, kind: Any, verb: str, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("write"):
            if self.dead:
                raise Crash
            return super()._call(kind, verb, *args, **kwargs)
        return self._write(lambda: super(FailingKube, self)._call(kind, verb, *args, **kwargs))

    def scale(self, kind: Any, namespace: str, name: str, replicas: int) -> Json:
        return self._write(  # type: ignore[no-any-return]
            lambda: super(FailingKube, self).scale(kind, namespace, name, replicas)
        )


@dataclass
class Record:
    """What one rollout left: after every tick, and at the end."""

    phase: str = ""
    weights: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    canary_without_pods: int = 0
    """Ticks after which traffic went to a canary with no ready pods."""
    primary_image: str = ""
    canary_replicas: int = -1
    mirror: float = 0.0
    events: Counter[str] = field(default_factory=Counter)
    writes: int = 0
    ticks: int = 0

    def distinct(self, values: list[Any]) -> list[Any]:
        return [v for n, v in enumerate(values) if n == 0 or values[n - 1] != v]


@dataclass
class Driver:
    """One Rollout, ``name``, in ``cluster``: set up, then a new revision driven to its end."""

    cluster: Cluster
    name: str
    failures: int
    at: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    def now(self) -> datetime:
        return self.at

    def reconciler(self, kube: Kube, webhooks: WebhookCaller) -> Reconciler:
        return Reconciler(
            kube, Judged(self.failures), webhooks, ControllerMetrics(), clock=self.now
        )

    def setup(self, webhooks: WebhookCaller) -> None:
        ns = self.cluster.namespace
        self.cluster.api.apply(deployment(self.name, ns, image=OLD))
        body = rollout(self.name, ns)
        body["spec"]["analysis"] = {"interval": "1m", "judge": "threshold", "failureLimit": 1}
        body["spec"]["progressDeadlineSeconds"] = 86400
        self.cluster.api.apply(body)
        reconciler = self.reconciler(Kube(self.cluster.api_client()), webhooks)
        wait_for(
            "Initialized",
            lambda: self._tick(reconciler) and self.status().get("phase") == "Initialized",
        )
        self.settle()

    def status(self) -> Json:
        return self.cluster.status(self.name)

    def settle(self) -> None:
        """The fake kubelet has caught up with every Deployment of this rollout."""
        wait_rollouts_ready(self.cluster, [self.name], f"{self.name}'s pods")

    def _tick(self, reconciler: Reconciler) -> bool:
        self.at += TICK
        reconciler.tick(f"{self.cluster.namespace}/{self.name}")
        return True

    def run(
        self,
        webhooks: WebhookCaller,
        fail_at: int | None = None,
        mode: str = "death",
        limit: int = 40,
    ) -> Record:
        """A new revision, ticked to its end; write ``fail_at`` goes wrong as ``mode`` says
        (`FailingKube`; after a death a new controller, with nothing in memory, takes over)."""
        record = Record()
        self.cluster.set_image(self.name, NEW)
        self.settle()
        kube = FailingKube(Kube(self.cluster.api_client()), fail_at, mode)
        reconciler = self.reconciler(kube, webhooks)
        for _ in range(limit):
            try:
                self._tick(reconciler)
            except Crash:
                record.writes += kube.writes
                kube = FailingKube(Kube(self.cluster.api_client()), None)
                reconciler = self.reconciler(kube, webhooks)  # a restarted controller
            record.ticks += 1
            self.settle()
            self._look(record)
            status = self.status()
            if (
                status.get("phase") in TERMINAL
                and status.get("canaryRevision")
                and not status.get("outbox")
            ):
                break
        record.writes += kube.writes
        self._finish(record)
        return record

    def _look(self, record: Record) -> None:
        objects = [
            o
            for kind in (("networking.istio.io/v1", "VirtualService"),)
            if (o := self.cluster.get(*kind, self.name)) is not None
        ]
        split = split_of_objects(objects, canary=f"{self.name}-canary", primary=self.primary)
        record.weights.append(split.canary_weight)
        record.mirror = split.mirror_percent
        record.steps.append(int(self.status().get("stepIndex", 0)))
        canary = self.cluster.deployment(self.name)
        ready = (canary.get("status") or {}).get("readyReplicas", 0)
        if split.canary_weight > 0 and (not canary["spec"].get("replicas") or not ready):
            record.canary_without_pods += 1

    @property
    def primary(self) -> str:
        return f"{self.name}-primary"

    def _finish(self, record: Record) -> None:
        record.phase = str(self.status().get("phase"))
        record.primary_image = self.cluster.image_of(self.primary)
        record.canary_replicas = int(self.cluster.deployment(self.name)["spec"]["replicas"])
        for event in self.cluster.events():
            if event["involvedObject"]["name"] == self.name:
                record.events[event["reason"]] += 1


def fresh(cluster: Cluster, name: str, failures: int, webhooks: WebhookCaller) -> Driver:
    driver = Driver(cluster, name, failures)
    driver.setup(webhooks)
    return driver
