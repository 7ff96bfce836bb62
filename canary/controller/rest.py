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
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import orjson
import urllib3
from kubernetes import client

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
    url = api_client.configuration.host + path + query_of(query or {})
    response: urllib3.BaseHTTPResponse = api_client.rest_client.pool_manager.request(
        method,
        url,
        body=data,
        headers=headers,
        timeout=urllib3.Timeout(total=timeout),
        preload_content=False,
    )
    return response
