"""What the controller's tests share: the cluster (the test API server), a stand-in for the
kubelet, the mesh telemetry behind one long-lived Prometheus, objects, waiting."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, config
from prometheus_client import CONTENT_TYPE_LATEST

from canary.analysis.prometheus import PrometheusProvider, PrometheusSettings, RetrySettings
from canary.analysis.provider import MetricsProvider
from canary.controller import Controller, ControllerSettings, LeaseSettings
from canary.testing import ApiError, ApiServer
from canary.testing.telemetry import MESHES, Behaviour, MeshTelemetry, Split, Workloads
from canary.testing.telemetry_routes import split_of_objects

Json = dict[str, Any]
T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
CANARY_CRDS = ROOT / "charts" / "canary" / "crds"
MESH_CRDS = ROOT / "tests" / "data" / "mesh-crds"
ROLLOUTS = "canary.dev/v1alpha1"


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 45.0, every: float = 0.05
) -> T:
    """The first truthy value ``probe`` returns; fails saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def mesh_crds() -> list[Path]:
    files = sorted(MESH_CRDS.glob("*.yaml"))
    if not files:
        raise AssertionError(
            f"the meshes' CRDs are missing: expected them in {MESH_CRDS} (see its README.md); "
            "the end-to-end tests apply them to the test API server"
        )
    return files


def deployment(name: str, namespace: str, image: str = "podinfo:6.7.0", replicas: int = 2) -> Json:
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
                            "name": name,
                            "image": image,
                            "ports": [{"name": "http", "containerPort": 9898}],
                        }
                    ]
                },
            },
        },
    }


PROVIDERS: dict[str, Json] = {
    "istio": {"name": "istio"},
    "linkerd": {"name": "linkerd"},
    "linkerd-smi": {"name": "linkerd", "linkerd": {"api": "smi"}},
    "gateway-api": {
        "name": "gateway-api",
        "gatewayApi": {"parentRefs": [{"name": "eg", "namespace": "envoy-gateway-system"}]},
    },
}
"""``spec.provider`` by flavour: Linkerd with SMI, Gateway API on Envoy Gateway's Gateway."""

ROUTE_OBJECTS = (
    ("networking.istio.io/v1", "VirtualService"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("split.smi-spec.io/v1alpha2", "TrafficSplit"),
)
"""The kinds of route object a data plane routes a Service's traffic by (named after it)."""


def rollout(name: str, namespace: str, provider: str = "istio", **spec: Any) -> Json:
    body: Json = {
        "targetRef": {"name": name},
        "service": {"port": 9898},
        "provider": copy.deepcopy(PROVIDERS.get(provider, {"name": provider})),
        "strategy": {"canary": {"weights": [20, 50]}},
        "analysis": {"interval": "2s", "judge": "threshold", "failureLimit": 2},
    }
    body.update(spec)
    return {
        "apiVersion": ROLLOUTS,
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


class FakeKubelet:
    """What the cluster's Deployment controller and kubelets do for the tests: every
    Deployment of the namespace with replicas gets the status of all its pods being ready
    (`ApiServer.set_deployment_ready`), soon after each change of its spec."""

    def __init__(self, api: ApiServer, namespace: str, every: float = 0.05) -> None:
        self.api = api
        self.namespace = namespace
        self.every = every
        self.paused: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-kubelet", daemon=True)

    def __enter__(self) -> FakeKubelet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for item in self.api.list("apps/v1", "Deployment", self.namespace):
                name = item["metadata"]["name"]
                if not deployment_ready(item) and name not in self.paused:
                    with suppress(ApiError):  # deleted meanwhile
                        self.api.set_deployment_ready(self.namespace, name)


def deployment_ready(found: Json) -> bool:
    """Every replica the Deployment wants is ready at its current generation (or it wants none)."""
    wanted = found["spec"].get("replicas", 1)
    status = found.get("status") or {}
    current = status.get("observedGeneration") == found["metadata"].get("generation")
    return not wanted or (current and status.get("readyReplicas", 0) == wanted)


def wait_rollouts_ready(cluster: Cluster, names: Iterable[str], what: str = "the pods") -> None:
    """The fake kubelet has caught up with the target and primary of each Rollout in ``names``."""
    names = list(names)

    def ready() -> bool:
        for name in names:
            for deployed in (name, f"{name}-primary"):
                found = cluster.get("apps/v1", "Deployment", deployed)
                if found is not None and not deployment_ready(found):
                    return False
        return True

    wait_for(what, ready, every=0.02)


def live_route_objects(api: ApiServer, namespace: str, name: str) -> list[Json]:
    """The route objects named ``name`` in the API server (of any mesh)."""
    found = []
    for api_version, kind in ROUTE_OBJECTS:
        with suppress(ApiError):
            found.append(api.get(api_version, kind, name, namespace))
    return found


def live_route_split(api: ApiServer, namespace: str, name: str) -> Split:
    """The split the route objects in the API server hold now, read as the mesh reads them
    (`canary.testing.telemetry_routes`, not canary's own parser): what the simulated sidecars
    route by. All on the primary while there are none (Service ``name`` selects it), and
    while they send nothing anywhere (then no request could be served at all)."""
    objects = live_route_objects(api, namespace, name)
    try:
        return split_of_objects(objects, canary=f"{name}-canary", primary=f"{name}-primary")
    except ValueError:
        return Split()


class MetricsRelay:
    """One scrape target for a Prometheus that outlives the tests: it serves the exposition of
    whichever simulated mesh the running test set (nothing when none)."""

    def __init__(self) -> None:
        self.source: MeshTelemetry | None = None
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                source = relay.source
                body = source.exposition() if source is not None else b""
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> MetricsRelay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    @contextmanager
    def serving(self, mesh: MeshTelemetry) -> Iterator[MeshTelemetry]:
        self.source = mesh
        try:
            yield mesh
        finally:
            self.source = None


@dataclass
class Cluster:
    """A test API server with canary's and the meshes' CRDs and one namespace for the test."""

    api: ApiServer
    namespace: str
    kubeconfig: Path
    prometheus_url: str = "http://127.0.0.1:1"
    controllers: list[Controller] = field(default_factory=list)
    clients: list[client.ApiClient] = field(default_factory=list)

    def api_client(self) -> client.ApiClient:
        made = config.new_client_from_config(config_file=str(self.kubeconfig))
        self.clients.append(made)
        return made

    def controller(
        self,
        identity: str = "canary-a",
        start: bool = True,
        *,
        provider: MetricsProvider | None = None,
        user_agent: str | None = None,
        **settings: Any,
    ) -> Controller:
        """A controller on this cluster, judged by ``provider`` (default: Prometheus at
        ``prometheus_url``), its requests sent as ``user_agent`` (the API server logs them by
        agent) when given."""
        options: Json = {
            "namespaces": (self.namespace,),
            "identity": identity,
            "lease": LeaseSettings(
                namespace=self.namespace, lease_duration=2.0, renew_deadline=1.5, retry_period=0.2
            ),
            "metrics_address": ("127.0.0.1", 0),
            "watch_timeout": 30,
            "notify": None,
        }
        options.update(settings)
        if provider is None:
            provider = PrometheusProvider(
                PrometheusSettings(
                    url=self.prometheus_url,
                    timeout=2.0,
                    retries=RetrySettings(attempts=2, backoff=0.1, max_backoff=0.2),
                )
            )
        api_client = self.api_client()
        if user_agent is not None:
            api_client.user_agent = user_agent
        made = Controller(api_client, ControllerSettings(**options), provider=provider)
        self.controllers.append(made)
        return made.start() if start else made

    def close(self) -> None:
        for controller in self.controllers:
            with suppress(Exception):
                controller.stop()
        for made in self.clients:
            made.close()

    # --- reading the cluster -------------------------------------------------------------------

    def get(self, api_version: str, kind: str, name: str) -> Json | None:
        try:
            return self.api.get(api_version, kind, name, self.namespace)
        except ApiError:
            return None

    def rollout(self, name: str) -> Json:
        found = self.get(ROLLOUTS, "Rollout", name)
        assert found is not None, f"Rollout {name} is gone"
        return found

    def status(self, name: str) -> Json:
        return dict(self.rollout(name).get("status") or {})

    def phase(self, name: str) -> str | None:
        return self.status(name).get("phase")

    def wait_phase(self, name: str, phase: str, timeout: float = 45.0) -> Json:
        def reached() -> Json | None:
            status = self.status(name)
            return status if status.get("phase") == phase else None

        return wait_for(f"{name} to be {phase} (now {self.phase(name)})", reached, timeout)

    def deployment(self, name: str) -> Json:
        found = self.get("apps/v1", "Deployment", name)
        assert found is not None, f"Deployment {name} is missing"
        return found

    def image_of(self, name: str) -> str:
        containers = self.deployment(name)["spec"]["template"]["spec"]["containers"]
        return str(containers[0]["image"])

    def set_image(self, name: str, image: str) -> None:
        target = copy.deepcopy(self.deployment(name))
        target["spec"]["template"]["spec"]["containers"][0]["image"] = image
        target["metadata"].pop("resourceVersion", None)
        self.api.apply(target)

    def events(self, reason: str | None = None) -> list[Json]:
        found = self.api.list("v1", "Event", self.namespace)
        return [e for e in found if reason is None or e.get("reason") == reason]

    def wait_events(self, reason: str) -> list[Json]:
        """The Events of ``reason`` (they are posted just after the status is written)."""
        return wait_for(f"a {reason} event", lambda: self.events(reason))

    def split(self, name: str) -> Split:
        return live_route_split(self.api, self.namespace, name)


# --- a rollout of 'podinfo' judged on the simulated mesh -----------------------------------

NAME = "podinfo"
HEALTHY = Behaviour(error_rate=0.0, latency_median_ms=20.0)
BAD = Behaviour(error_rate=0.5, latency_median_ms=20.0)


class WeightLog:
    """The canary weights the route objects held, in order, as the sidecars saw them, and the
    route objects as they were when each weight was first seen."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.weights: list[float] = []
        self.objects: list[list[Json]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _look(self) -> None:
        objects = live_route_objects(self.cluster.api, self.cluster.namespace, NAME)
        try:
            weight = split_of_objects(
                objects, canary=f"{NAME}-canary", primary=f"{NAME}-primary"
            ).canary_weight
        except ValueError:
            weight = 0.0
        if not self.weights or self.weights[-1] != weight:
            self.weights.append(weight)
            self.objects.append(objects)

    def held(self, weight: float) -> list[Json]:
        """The route objects when ``weight`` was first seen."""
        return self.objects[self.weights.index(weight)]

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self._look()

    def __enter__(self) -> WeightLog:
        self._look()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._look()  # the last change may have come after the last poll


MESH_OF = {"istio": "istio", "linkerd": "linkerd", "linkerd-smi": "linkerd", "gateway-api": "envoy"}
"""The telemetry each provider flavour's shipped policy reads."""


@contextmanager
def simulated_mesh(
    cluster: Cluster, relay: MetricsRelay, canary: Behaviour, meshes: tuple[str, ...] = MESHES
) -> Iterator[MeshTelemetry]:
    """The mesh's telemetry for ``podinfo``, routed by the live route objects, exporting the
    series of ``meshes`` only (so a provider's checks can only pass on its own series)."""
    mesh = MeshTelemetry(
        lambda: cluster.split(NAME),
        workloads=Workloads(namespace=cluster.namespace, canary=NAME, primary=f"{NAME}-primary"),
        rate=500.0,
        canary=canary,
        primary=HEALTHY,
        seed=7,
        meshes=meshes,
    )
    with relay.serving(mesh):
        yield mesh
