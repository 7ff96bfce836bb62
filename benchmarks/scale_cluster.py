"""The cluster side of the scale benchmark (benchmarks/scale.py), in the benchmark's process.

- `start_cluster`: the test API server (canary.testing.ApiServer) with canary's CRDs and
  minimal CRDs for Istio's VirtualService and DestinationRule (any object accepted: the
  meshes' real schemas (tests/data/mesh-crds) are not needed, and the API server does not
  spend its time validating them);
- `Kubelet`: what the Deployment controller and the kubelets do, as in the controller's
  tests (`ApiServer.set_deployment_ready`), ``ready_delay`` seconds after a Deployment's spec
  changes; it hears the changes from the store directly (no polling, no HTTP);
- `RouteWeights`: each rollout's canary weight as its VirtualService holds it now, written
  into a file of one byte per rollout that the Prometheus stand-in reads
  (benchmarks/scale_prometheus.py), so the canary's request counts follow the route;
- `RolloutWatch`: each rollout's phase and weight as its status says; when one ends
  (Succeeded or Failed) while ``rebump`` is on, its Deployment gets a new image, so every
  rollout keeps progressing for as long as the benchmark runs.

The helpers talk to the store, not over HTTP, so the API server's request log holds the
controller's requests only.
"""

from __future__ import annotations

import contextlib
import heapq
import mmap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from canary.testing import ApiError, ApiServer
from canary.testing.storage import Event

Json = dict[str, Any]

ROOT = Path(__file__).resolve().parents[1]
CANARY_CRDS = ROOT / "charts" / "canary" / "crds"
ROLLOUTS = "canary.dev/v1alpha1"
ISTIO = "networking.istio.io"


def name_of(index: int) -> str:
    return f"app-{index:05d}"


def index_of(name: str) -> int | None:
    digits = name.rpartition("-")[2]
    return int(digits) if digits.isdigit() else None


def mesh_crd(plural: str, kind: str) -> Json:
    """A CRD of Istio's group that accepts any object (a stand-in for the real schema)."""
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{ISTIO}"},
        "spec": {
            "group": ISTIO,
            "scope": "Namespaced",
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "listKind": f"{kind}List",
            },
            "versions": [
                {"name": v, "served": True, "storage": v == "v1", "schema": schema}
                for v in ("v1", "v1beta1", "v1alpha3")
            ],
        },
    }


def deployment(name: str, namespace: str, image: str, replicas: int = 2) -> Json:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "ports": [{"name": "http", "containerPort": 9898}],
                        }
                    ]
                },
            },
        },
    }


def rollout(
    name: str, namespace: str, interval: float, weights: list[int], judge: str | None
) -> Json:
    analysis: Json = {"interval": f"{interval:g}s"}
    if interval > 600:  # the default inconclusiveDeadline (10m) must hold one interval at least
        analysis["inconclusiveDeadline"] = f"{interval:g}s"
    if judge:
        analysis["judge"] = judge
    return {
        "apiVersion": ROLLOUTS,
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "targetRef": {"name": name},
            "service": {"port": 9898},
            "provider": {"name": "istio"},
            "strategy": {"canary": {"weights": weights}},
            "analysis": analysis,
        },
    }


def without_cel(node: Any) -> Any:
    """``node`` without its ``x-kubernetes-validations`` rules, at any depth."""
    if isinstance(node, dict):
        return {k: without_cel(v) for k, v in node.items() if k != "x-kubernetes-validations"}
    if isinstance(node, list):
        return [without_cel(v) for v in node]
    return node


def canary_crds() -> list[Json]:
    """canary's CRDs as the chart ships them, but for their CEL rules: the test API server
    evaluates those with cel-python, a tree-walking interpreter that spends ~20 ms on each
    write of a Rollout (kube-apiserver runs compiled CEL programs in microseconds), and the
    benchmark would measure that instead of the controller. The schemas are still checked."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    docs = [
        d
        for path in sorted(CANARY_CRDS.glob("*.yaml"))
        for d in yaml.load_all(path.read_text(encoding="utf-8"), loader)
        if d
    ]
    return [without_cel(d) for d in docs]


def start_cluster(namespace: str, history_size: int = 20_000) -> ApiServer:
    api = ApiServer(history_size=history_size, bookmark_interval=1.0).start()
    api.create_namespace(namespace)
    api.apply_all(canary_crds())
    api.apply_all(
        [
            mesh_crd("virtualservices", "VirtualService"),
            mesh_crd("destinationrules", "DestinationRule"),
        ]
    )
    return api


class _Subscription:
    """A store subscriber (canary.testing.storage.Subscriber): ``push`` runs under the store's
    lock in whichever thread wrote, so it only looks at the event and hands work off."""

    def __init__(self, api: ApiServer, api_version: str, kind: str, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.key = api.registry.find_kind(api_version, kind).key
        first, _ = api.store.subscribe(self, None, lambda obj: True)
        for event in first:
            self.push(event)

    def close(self) -> None:
        self.api.store.unsubscribe(self)

    def push(self, event: Event) -> None:
        if (event.obj.get("metadata") or {}).get("namespace") == self.namespace:
            self.seen(event)

    def progress(self, rv: int) -> None:
        pass

    def seen(self, event: Event) -> None:
        raise NotImplementedError


class Kubelet(_Subscription):
    """Marks each Deployment with replicas ready ``ready_delay`` seconds after it changes."""

    def __init__(self, api: ApiServer, namespace: str, ready_delay: float) -> None:
        self.ready_delay = ready_delay
        self._due: list[tuple[float, str]] = []
        self._pending: set[str] = set()
        self._wake = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="bench-kubelet", daemon=True)
        self._thread.start()
        super().__init__(api, "apps/v1", "Deployment", namespace)

    def seen(self, event: Event) -> None:
        if event.type == "DELETED":
            return
        obj = event.obj
        meta, spec = obj["metadata"], obj.get("spec") or {}
        status = obj.get("status") or {}
        wanted = spec.get("replicas", 1)
        current = (
            status.get("observedGeneration") == meta.get("generation")
            and status.get("readyReplicas", 0) == wanted
        )
        if not wanted or current:
            return
        name = meta["name"]
        with self._wake:
            if name in self._pending:
                return
            self._pending.add(name)
            heapq.heappush(self._due, (time.monotonic() + self.ready_delay, name))
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stop and (not self._due or self._due[0][0] > time.monotonic()):
                    wait = self._due[0][0] - time.monotonic() if self._due else None
                    self._wake.wait(wait)
                if self._stop:
                    return
                _, name = heapq.heappop(self._due)
                self._pending.discard(name)
            with contextlib.suppress(ApiError, KeyError):  # deleted meanwhile
                self.api.set_deployment_ready(self.namespace, name)

    def close(self) -> None:
        super().close()
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join(5)


class RouteWeights(_Subscription):
    """The canary weight of each rollout's VirtualService, one byte per rollout in a file."""

    def __init__(self, api: ApiServer, namespace: str, path: Path, count: int) -> None:
        path.write_bytes(bytes(count))
        self._handle = path.open("r+b")
        self.weights = mmap.mmap(self._handle.fileno(), count)
        super().__init__(api, f"{ISTIO}/v1", "VirtualService", namespace)

    def seen(self, event: Event) -> None:
        index = index_of(event.obj["metadata"]["name"])
        if index is None or index >= len(self.weights):
            return
        weight = 0
        if event.type != "DELETED":
            for http in (event.obj.get("spec") or {}).get("http") or []:
                for route in http.get("route") or []:
                    host = (route.get("destination") or {}).get("host", "")
                    if host.endswith("-canary"):
                        weight = max(weight, int(route.get("weight") or 0))
        self.weights[index] = max(0, min(100, weight))

    def close(self) -> None:
        super().close()
        self.weights.close()
        self._handle.close()


@dataclass
class RolloutState:
    phase: str = ""
    weight: int = 0
    first_weight_at: float | None = None
    """When the canary first took traffic after the last image change."""


@dataclass
class Tally:
    succeeded: int = 0
    failed: int = 0
    steps: int = 0
    """Changes of a status' canary weight to a higher one (a step taken)."""
    bumps: int = 0


class RolloutWatch(_Subscription):
    """Each rollout's phase and weight; with ``rebump``, an ended rollout's target gets a new
    image at once (by a thread of its own, not under the store's lock)."""

    def __init__(self, api: ApiServer, namespace: str) -> None:
        self.states: dict[str, RolloutState] = {}
        self.tally = Tally()
        self.rebump = False
        self._lock = threading.Lock()
        self._queue: list[str] = []
        self._wake = threading.Condition(self._lock)
        self._stop = False
        self._generation: dict[str, int] = {}
        self._thread = threading.Thread(target=self._run, name="bench-bumper", daemon=True)
        self._thread.start()
        super().__init__(api, ROLLOUTS, "Rollout", namespace)

    def seen(self, event: Event) -> None:
        if event.type == "DELETED":
            return
        name = event.obj["metadata"]["name"]
        status = event.obj.get("status") or {}
        phase = str(status.get("phase") or "")
        weight = int(status.get("canaryWeight") or 0)
        with self._lock:
            state = self.states.setdefault(name, RolloutState())
            if weight > state.weight:
                self.tally.steps += 1
                if state.first_weight_at is None:
                    state.first_weight_at = time.time()
            ended = phase in ("Succeeded", "Failed") and state.phase != phase
            if ended:
                if phase == "Succeeded":
                    self.tally.succeeded += 1
                else:
                    self.tally.failed += 1
                if self.rebump:
                    self._queue.append(name)
                    self._wake.notify()
            state.phase, state.weight = phase, weight

    def count(self, phase: str) -> int:
        with self._lock:
            return sum(1 for s in self.states.values() if s.phase == phase)

    def taking_traffic(self) -> int:
        """Rollouts whose canary took traffic since their last image change."""
        with self._lock:
            return sum(1 for s in self.states.values() if s.first_weight_at is not None)

    def last_first_weight(self) -> float | None:
        with self._lock:
            times = [s.first_weight_at for s in self.states.values()]
        return None if not times or None in times else max(t for t in times if t is not None)

    def bump(self, name: str) -> None:
        """A new image for the Deployment ``name``: a new revision to roll out."""
        with self._lock:
            generation = self._generation.get(name, 1) + 1
            self._generation[name] = generation
            state = self.states.setdefault(name, RolloutState())
            state.first_weight_at = None
            self.tally.bumps += 1
        target = self.api.get("apps/v1", "Deployment", name, self.namespace)
        target["spec"]["template"]["spec"]["containers"][0]["image"] = f"podinfo:bench-{generation}"
        target["metadata"].pop("resourceVersion", None)
        self.api.apply(target)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stop and not self._queue:
                    self._wake.wait()
                if self._stop:
                    return
                name = self._queue.pop(0)
            with contextlib.suppress(ApiError, KeyError):
                self.bump(name)

    def close(self) -> None:
        super().close()
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join(5)


@dataclass
class Cluster:
    """The API server and the helpers of one run."""

    api: ApiServer
    namespace: str
    kubelet: Kubelet
    weights: RouteWeights
    rollouts: RolloutWatch
    names: list[str] = field(default_factory=list)

    def close(self) -> None:
        for part in (self.rollouts, self.weights, self.kubelet):
            with contextlib.suppress(Exception):
                part.close()
        self.api.stop()


def make_cluster(
    namespace: str,
    count: int,
    weights_file: Path,
    *,
    interval: float,
    weights: list[int],
    judge: str | None,
    ready_delay: float,
) -> Cluster:
    """The API server with ``count`` Deployments (ready) and their Rollouts."""
    api = start_cluster(namespace)
    try:
        kubelet = Kubelet(api, namespace, ready_delay)
        route_weights = RouteWeights(api, namespace, weights_file, count)
        watch = RolloutWatch(api, namespace)
        names = [name_of(i) for i in range(count)]
        for name in names:
            api.create(deployment(name, namespace, "podinfo:bench-1"))
            api.set_deployment_ready(namespace, name)
            api.create(rollout(name, namespace, interval, weights, judge))
    except BaseException:
        api.stop()
        raise
    return Cluster(api, namespace, kubelet, route_weights, watch, names)
