"""The API server's REST paths, and requests sent as JSON bytes over the official client's
connection pool.

The generated methods of the `kubernetes` client (CoreV1Api, CustomObjectsApi, ...) check
every argument, copy every body through ``sanitize_for_serialization`` (a recursive walk of
the whole object) and rebuild the URL and headers on each call: at a thousand Rollouts that
was a large share of the controller's CPU (docs/benchmarks.md, "Controller scale"). The
controller's objects are plain JSON already, so `send` builds the path itself
(`path_of`), encodes the body once with orjson, and hands it to the client's urllib3
pool, which keeps the kubeconfig's TLS settings, client certificates and proxy. Credentials
come from the client's configuration per request (``update_params_for_auth``), so a token
with a refresh hook (the in-cluster ServiceAccount token, an exec plugin's) stays fresh.

Without a proxy, a request goes straight to the API server's connection pool (`_pool_of`:
looked up once, not per request): `urllib3.PoolManager` parsed the URL, normalised a pool
key and re-encoded the headers on every call, about a third of a request's CPU in the
controller (docs/benchmarks.md, "A cheaper tick, fourth pass"). The pool is the one the
manager holds for the host, so the connections, TLS settings and retries are the same; an
answer that redirects, a closed pool (`widen_connection_pool` clears the manager) and a proxy
take the manager's path, which follows redirects across hosts as before.
"""

from __future__ import annotations

import functools
import threading
import weakref
from typing import Any
from urllib.parse import quote, urlencode

import orjson
import urllib3
from kubernetes import client
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import ClosedPoolError
from urllib3.util import parse_url

from canary.controller.kinds import Kind

JSON = "application/json"
AUTH_SETTINGS = ["BearerToken"]
"""The generated client's name for the kubeconfig's token (the only scheme it defines)."""


def path_of(
    kind: Kind, namespace: str | None, name: str | None = None, subresource: str = ""
) -> str:
    """The REST path of ``kind`` (a collection when ``name`` is None; all namespaces when a
    namespaced kind has no ``namespace``)."""
    group = "apis" if "/" in kind.api_version else "api"  # core: /api/v1
    root = f"/{group}/{kind.api_version}"
    if kind.namespaced and namespace:
        root += f"/namespaces/{quote(namespace, safe='')}"
    path = f"{root}/{kind.plural}"
    if name is not None:
        path += f"/{quote(name, safe='')}"
    if subresource:
        path += f"/{subresource}"
    return path


def query_of(params: dict[str, Any]) -> str:
    """``?a=b&...`` of the parameters that are set (booleans as Kubernetes spells them)."""
    pairs = [
        (key, str(value).lower() if isinstance(value, bool) else str(value))
        for key, value in params.items()
        if value is not None and value != ""
    ]
    return f"?{urlencode(pairs)}" if pairs else ""


def send(
    api_client: client.ApiClient,
    method: str,
    path: str,
    *,
    body: Any = None,
    content_type: str = JSON,
    timeout: float,
    query: dict[str, Any] | None = None,
) -> urllib3.BaseHTTPResponse:
    """Send one request; returns the response unread (``preload_content=False``: a watch is
    streamed), whatever its status."""
    headers: dict[str, str] = {"Accept": JSON, **api_client.default_headers}
    if api_client.cookie:
        headers["Cookie"] = api_client.cookie
    api_client.update_params_for_auth(headers, [], AUTH_SETTINGS, path, method, None)
    data: bytes | None = None
    if body is not None:
        data = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
        headers["Content-Type"] = content_type
    target = path + query_of(query or {})
    limit = _timeout(timeout)
    direct = _pool_of(api_client)
    if direct is not None:
        pool, prefix = direct
        try:
            response: urllib3.BaseHTTPResponse = pool.urlopen(
                method,
                prefix + target,
                body=data,
                headers=headers,
                timeout=limit,
                preload_content=False,
                redirect=False,
                assert_same_host=False,
            )
        except ClosedPoolError:  # cleared meanwhile: the manager makes a new one
            _forget_pool(api_client)
        else:
            if not response.get_redirect_location():
                return response
            response.drain_conn()  # the manager's path follows it, across hosts too
    response = api_client.rest_client.pool_manager.request(
        method,
        api_client.configuration.host + target,
        body=data,
        headers=headers,
        timeout=limit,
        preload_content=False,
    )
    return response


@functools.lru_cache(maxsize=64)
def _timeout(seconds: float) -> urllib3.Timeout:
    return urllib3.Timeout(total=seconds)


_POOLS: weakref.WeakKeyDictionary[urllib3.PoolManager, tuple[str, HTTPConnectionPool, str]] = (
    weakref.WeakKeyDictionary()
)
"""By pool manager: the host it was asked for, its pool for that host, the host's path."""
_POOLS_LOCK = threading.Lock()


def _pool_of(api_client: client.ApiClient) -> tuple[HTTPConnectionPool, str] | None:
    """The pool of the API server's connections and the path its host URL carries (a
    Rancher-style ``https://host/k8s/clusters/c-1``); None behind a proxy (a
    `urllib3.ProxyManager` writes requests in its own form)."""
    manager = api_client.rest_client.pool_manager
    if type(manager) is not urllib3.PoolManager:
        return None
    host = str(api_client.configuration.host)
    with _POOLS_LOCK:
        found = _POOLS.get(manager)
    if found is not None and found[0] == host and found[1].pool is not None:
        return found[1], found[2]
    pool = manager.connection_from_url(host)
    prefix = parse_url(host).path or ""
    with _POOLS_LOCK:
        _POOLS[manager] = (host, pool, prefix)
    return pool, prefix


def _forget_pool(api_client: client.ApiClient) -> None:
    with _POOLS_LOCK:
        _POOLS.pop(api_client.rest_client.pool_manager, None)
