"""Requests as the controller sends them (canary.controller.rest): REST paths built from a
Kind, JSON bodies with their content types, the credentials of the client's configuration per
request (a refresh hook rotating the token is honoured), errors as KubeErrors. A real HTTP
server on 127.0.0.1 records what arrives."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from canary.controller.kinds import (
    CLUSTER_ANALYSIS_POLICY,
    CONFIGMAP,
    DEPLOYMENT,
    ROLLOUT,
    kind_of,
)
from canary.controller.kube import (
    APPLY_PATCH,
    MERGE_PATCH,
    ConflictError,
    Kube,
    NotFoundError,
    widen_connection_pool,
)
from canary.controller.rest import path_of, query_of


def test_paths_of_core_group_custom_and_cluster_scoped_kinds() -> None:
    assert path_of(CONFIGMAP, "ns", "a") == "/api/v1/namespaces/ns/configmaps/a"
    assert path_of(CONFIGMAP, None) == "/api/v1/configmaps", "all namespaces"
    assert path_of(DEPLOYMENT, "ns", "web", "scale") == (
        "/apis/apps/v1/namespaces/ns/deployments/web/scale"
    )
    assert path_of(ROLLOUT, "ns", "web", "status") == (
        "/apis/canary.dev/v1alpha1/namespaces/ns/rollouts/web/status"
    )
    assert path_of(CLUSTER_ANALYSIS_POLICY, "ignored", "p") == (
        "/apis/canary.dev/v1alpha1/clusteranalysispolicies/p"
    )
    vs = kind_of("networking.istio.io/v1", "VirtualService")
    assert path_of(vs, "ns") == "/apis/networking.istio.io/v1/namespaces/ns/virtualservices"
    assert path_of(CONFIGMAP, "ns", "a/b c") == "/api/v1/namespaces/ns/configmaps/a%2Fb%20c"
    assert query_of({"watch": True, "labelSelector": "a=b,c", "resourceVersion": ""}) == (
        "?watch=true&labelSelector=a%3Db%2Cc"
    )
    assert query_of({"labelSelector": None}) == ""


class Recorded:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.answer: bytes = b'{"metadata": {"resourceVersion": "7"}}'
        self.redirect = ""
        """Where to send every request (a 307), when set."""


@pytest.fixture
def server() -> Iterator[tuple[Recorded, str]]:
    with serving() as served:
        yield served


@contextlib.contextmanager
def serving() -> Iterator[tuple[Recorded, str]]:
    recorded = Recorded()

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            recorded.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "auth": self.headers.get("Authorization"),
                    "type": self.headers.get("Content-Type"),
                    "body": json.loads(body) if body else None,
                }
            )
            if recorded.redirect:
                self.send_response(307)
                self.send_header("Location", recorded.redirect + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(recorded.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(recorded.answer)))
            self.end_headers()
            self.wfile.write(recorded.answer)

        def do_GET(self) -> None:
            self._any()

        def do_PUT(self) -> None:
            self._any()

        def do_POST(self) -> None:
            self._any()

        def do_PATCH(self) -> None:
            self._any()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorded, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def rotating_client(host: str) -> client.ApiClient:
    """A client whose refresh hook gives a new token before each request (as the in-cluster
    configuration re-reads the ServiceAccount token)."""
    configuration = client.Configuration(host=host)
    configuration.api_key = {"BearerToken": "t0"}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    issued = iter(range(1, 100))

    def refresh(config: client.Configuration) -> None:
        config.api_key = {"BearerToken": f"t{next(issued)}"}

    configuration.refresh_api_key_hook = refresh
    return client.ApiClient(configuration)


def test_requests_carry_json_bodies_content_types_and_fresh_credentials(
    server: tuple[Recorded, str],
) -> None:
    recorded, host = server
    kube = Kube(rotating_client(host))
    assert kube.scale(DEPLOYMENT, "ns", "web", 3)["metadata"]["resourceVersion"] == "7"
    kube.patch(ROLLOUT, "ns", "web", {"metadata": {"annotations": {"a": "b"}}})
    kube.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns"}}
    )
    kube.list(ROLLOUT, "ns", label_selector="app=web")
    scale, patch, apply, listed = recorded.requests
    assert (scale["method"], scale["path"], scale["type"]) == (
        "PATCH",
        "/apis/apps/v1/namespaces/ns/deployments/web/scale",
        MERGE_PATCH,
    )
    assert scale["body"] == {"spec": {"replicas": 3}}
    assert (patch["method"], patch["type"]) == ("PATCH", MERGE_PATCH)
    assert apply["type"] == APPLY_PATCH
    assert apply["path"] == "/api/v1/namespaces/ns/configmaps/c?fieldManager=canary&force=true"
    assert listed["path"] == (
        "/apis/canary.dev/v1alpha1/namespaces/ns/rollouts?labelSelector=app%3Dweb"
    )
    assert [r["auth"] for r in recorded.requests] == [
        "Bearer t1",
        "Bearer t2",
        "Bearer t3",
        "Bearer t4",
    ], "each request asks the configuration for its credentials"


def test_refused_requests_are_kube_errors_with_the_servers_reason(
    server: tuple[Recorded, str],
) -> None:
    recorded, host = server
    kube = Kube(rotating_client(host))
    recorded.status = 404
    recorded.answer = json.dumps({"reason": "NotFound", "message": "nope"}).encode()
    assert kube.read(ROLLOUT, "ns", "web") is None
    with pytest.raises(NotFoundError):
        kube.replace_status({"apiVersion": ROLLOUT.api_version, "kind": "Rollout", "metadata": {}})
    recorded.status = 409
    recorded.answer = json.dumps({"reason": "Conflict", "message": "stale"}).encode()
    with pytest.raises(ConflictError, match="409 Conflict: stale"):
        kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "ns"}})
    assert recorded.requests[-1]["path"] == "/api/v1/namespaces/ns/configmaps"


def test_the_connection_pool_is_widened_to_the_workers_and_watches() -> None:
    api_client = client.ApiClient()
    assert widen_connection_pool(api_client, 45) == 45
    pool = api_client.rest_client.pool_manager.connection_from_url("http://127.0.0.1:1")
    assert pool.pool is not None
    assert pool.pool.maxsize == 45, "a connection a worker and a watch, kept open"
    assert widen_connection_pool(api_client, 3) == 45, "never narrowed"


def test_a_host_with_a_path_keeps_it_in_front_of_every_request(
    server: tuple[Recorded, str],
) -> None:
    recorded, host = server
    kube = Kube(rotating_client(host + "/k8s/clusters/c-1"))
    kube.read(ROLLOUT, "ns", "a b")
    kube.list(CONFIGMAP, "ns", label_selector="a=b")
    assert [r["path"] for r in recorded.requests] == [
        "/k8s/clusters/c-1/apis/canary.dev/v1alpha1/namespaces/ns/rollouts/a%20b",
        "/k8s/clusters/c-1/api/v1/namespaces/ns/configmaps?labelSelector=a%3Db",
    ]


def test_a_redirect_is_followed_to_another_host_as_the_pool_manager_does(
    server: tuple[Recorded, str],
) -> None:
    recorded, host = server
    with serving() as (elsewhere, other):
        recorded.redirect = other
        kube = Kube(rotating_client(host))
        assert kube.patch(ROLLOUT, "ns", "web", {"spec": {}})["metadata"]["resourceVersion"] == "7"
        assert kube.read(ROLLOUT, "ns", "web") is not None
    assert [(r["method"], r["path"]) for r in elsewhere.requests] == [
        ("PATCH", "/apis/canary.dev/v1alpha1/namespaces/ns/rollouts/web"),
        ("GET", "/apis/canary.dev/v1alpha1/namespaces/ns/rollouts/web"),
    ], "each request reached the host it was sent on to, with its method"
    assert elsewhere.requests[0]["body"] == {"spec": {}}
    assert elsewhere.requests[0]["type"] == MERGE_PATCH


def test_requests_go_on_after_the_pool_manager_is_cleared(server: tuple[Recorded, str]) -> None:
    recorded, host = server
    api_client = rotating_client(host)
    kube = Kube(api_client)
    kube.read(ROLLOUT, "ns", "one")
    widen_connection_pool(api_client, 20)  # closes every pool the manager held
    kube.read(ROLLOUT, "ns", "two")
    api_client.rest_client.pool_manager.clear()
    kube.read(ROLLOUT, "ns", "three")
    assert [r["path"].rpartition("/")[2] for r in recorded.requests] == ["one", "two", "three"]


def test_behind_a_proxy_requests_are_written_for_the_proxy(
    server: tuple[Recorded, str],
) -> None:
    recorded, proxy = server
    configuration = client.Configuration(host="http://kube.invalid:6443")
    configuration.proxy = proxy
    kube = Kube(client.ApiClient(configuration))
    kube.read(ROLLOUT, "ns", "web")
    assert recorded.requests[0]["path"] == (
        "http://kube.invalid:6443/apis/canary.dev/v1alpha1/namespaces/ns/rollouts/web"
    ), "the absolute form a proxy is sent"
