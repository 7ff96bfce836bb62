"""A thin, typed layer over the official `kubernetes` client: objects in and out as plain dicts.

Objects are addressed by `Kind` (API version, kind, plural) and sent to their REST paths as
JSON over the client's connection pool (`canary.controller.rest`: the generated API methods
and their model round trips are skipped); bodies are encoded and responses parsed with orjson
(several times the stdlib's json on the tick's hot path), so what the controller sees is
exactly what the API server stored.
Errors are `KubeError`s with the HTTP status: `NotFoundError`, `ConflictError` (a stale
resourceVersion or an object that already exists), `GoneError` (a watch's resourceVersion
is too old: relist).

A `Kube` built with a ``guard`` refuses every write while the guard says no (`NotLeaderError`):
the controller's writes are guarded by its leadership, so a replica that lost the Lease stops
writing at once, even in the middle of a tick.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import urllib3
from kubernetes import client

from canary.controller.kinds import DEPLOYMENT, EVENT, Kind, kind_of
from canary.controller.rest import JSON, path_of, send

log = logging.getLogger("canary.controller.kube")

Json = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
FIELD_MANAGER = "canary"
"""The field manager of canary's server-side applies: it owns exactly the fields it applies."""


class KubeError(Exception):
    """The API server refused or failed a request."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFoundError(KubeError):
    pass


class ConflictError(KubeError):
    """409: a stale resourceVersion (re-read and try again) or AlreadyExists."""


class GoneError(KubeError):
    """410: the resourceVersion a watch resumes from is too old; list again."""


class NotLeaderError(Exception):
    """A write was refused because this replica does not hold the leader Lease."""


_ERRORS: dict[int, type[KubeError]] = {404: NotFoundError, 409: ConflictError, 410: GoneError}


def error_of(status: int, body: object, fallback: str = "") -> KubeError:
    """The KubeError of a `Status` body (bytes, text or dict) answered with ``status``."""
    reason, message = fallback or "Error", fallback
    parsed: object = body
    if isinstance(body, bytes | str):
        try:
            parsed = orjson.loads(body)
        except ValueError:
            parsed = None
            message = (body.decode(errors="replace") if isinstance(body, bytes) else body)[:500]
    if isinstance(parsed, dict):
        reason = str(parsed.get("reason") or reason)
        message = str(parsed.get("message") or message)
    return _ERRORS.get(status, KubeError)(status, reason, message)


@dataclass(frozen=True)
class ObjectList:
    items: list[Json]
    resource_version: str


@dataclass(frozen=True)
class WatchEvent:
    type: str
    """ADDED, MODIFIED, DELETED or BOOKMARK (ERROR events are raised as KubeErrors)."""
    object: Json


class Kube:
    """Get, list, create, replace, patch, delete and watch objects, as dicts."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        timeout: float = 15.0,
        guard: Callable[[], bool] | None = None,
    ) -> None:
        self.api_client = api_client
        self.timeout = timeout
        self.guard = guard

    def guarded(self, guard: Callable[[], bool]) -> Kube:
        """The same connection, its writes allowed only while ``guard()`` is true."""
        return Kube(self.api_client, timeout=self.timeout, guard=guard)

    # --- reads ---------------------------------------------------------------------------------

    def get(self, kind: Kind, namespace: str, name: str) -> Json | None:
        """The object, or None when it does not exist (a `CachedKube` may answer from its
        watch caches; `read` never does)."""
        return self.read(kind, namespace, name)

    def read(self, kind: Kind, namespace: str, name: str) -> Json | None:
        """The object as the API server holds it now, or None when it does not exist: for
        re-reading after a 409, where a cached copy could be the stale one."""
        try:
            return self._request(kind, "read", namespace, name)
        except NotFoundError:
            return None

    @contextmanager
    def fresh_reads(self) -> Iterator[None]:
        """Within it, `get` on this thread reads the API server (a `CachedKube` skips its
        caches); a plain Kube always does."""
        yield

    def list(
        self, kind: Kind, namespace: str | None = None, label_selector: str | None = None
    ) -> ObjectList:
        """Every object of ``kind`` in ``namespace`` (all namespaces when None)."""
        body = self._request(kind, "list", namespace, None, labelSelector=label_selector)
        version = str((body.get("metadata") or {}).get("resourceVersion") or "")
        items = []
        for item in body.get("items") or []:
            # list items carry no apiVersion/kind on a real server: put them back
            items.append({"apiVersion": kind.api_version, "kind": kind.kind, **item})
        return ObjectList(items, version)

    def list_labelled(
        self, kind: Kind, namespace: str, labels: Mapping[str, str]
    ) -> Sequence[Json]:
        """The objects of ``kind`` in ``namespace`` carrying every one of ``labels``, of which
        the caller reads only the metadata (a `CachedKube` answers from a metadata-only watch
        cache)."""
        selector = ",".join(f"{key}={value}" for key, value in labels.items())
        return self.list(kind, namespace, selector).items

    # --- writes --------------------------------------------------------------------------------

    def create(self, obj: Json) -> Json:
        kind, namespace, _ = self._address(obj)
        return self._request(kind, "create", namespace, None, body=obj, write=True)

    def replace(self, obj: Json) -> Json:
        """PUT the object; with ``metadata.resourceVersion`` a stale one is a ConflictError."""
        kind, namespace, name = self._address(obj)
        return self._request(kind, "replace", namespace, name, body=obj, write=True)

    def replace_status(self, obj: Json) -> Json:
        """PUT through the status subresource (only ``status`` is written), conditional on
        ``metadata.resourceVersion``."""
        kind, namespace, name = self._address(obj)
        return self._request(kind, "replace_status", namespace, name, body=obj, write=True)

    def patch(self, kind: Kind, namespace: str, name: str, body: Json) -> Json:
        """A JSON merge patch (a ``metadata.resourceVersion`` in it makes it conditional)."""
        return self._request(kind, "patch", namespace, name, body=body, write=True)

    def apply(self, obj: Json) -> Json:
        """Server-side apply ``obj`` as the field manager ``canary``, forcing conflicts: the
        object is created when missing; the fields canary applied before and leaves out now
        are removed; fields other managers own are kept (those canary applies change hands)."""
        kind, namespace, name = self._address(obj)
        return self._request(
            kind,
            "apply",
            namespace,
            name,
            body=obj,
            write=True,
            fieldManager=FIELD_MANAGER,
            force=True,
        )

    def scale(self, kind: Kind, namespace: str, name: str, replicas: int) -> Json:
        """Set replicas through the scale subresource (Deployments)."""
        if kind != DEPLOYMENT:
            raise ValueError(f"scaling {kind} is not supported")
        return self._request(
            kind, "scale", namespace, name, body={"spec": {"replicas": replicas}}, write=True
        )

    def delete(self, kind: Kind, namespace: str, name: str) -> bool:
        """Delete the object; False when it was already gone."""
        return self.deleted(kind, namespace, name) is not None

    def deleted(self, kind: Kind, namespace: str, name: str) -> Json | None:
        """Delete the object; the API server's answer (the object as deleted, whose
        resourceVersion is the deletion's, or a Status), None when it was already gone."""
        try:
            return self._request(kind, "delete", namespace, name, write=True)
        except NotFoundError:
            return None

    def post_event(self, event: Json) -> Json:
        """Create a core/v1 Event (a body from canary.notify.kube_event)."""
        return self._request(
            EVENT, "create", str(event["metadata"]["namespace"]), None, body=event, write=True
        )

    # --- watch ---------------------------------------------------------------------------------

    def watch(
        self,
        kind: Kind,
        namespace: str | None,
        resource_version: str,
        timeout_seconds: int,
        stop: Callable[[], bool] = lambda: False,
        label_selector: str | None = None,
    ) -> Iterator[WatchEvent]:
        """The changes after ``resource_version``, with bookmarks, for ``timeout_seconds``
        (of the objects ``label_selector`` selects, when given: one that stops matching it
        arrives as DELETED).

        An ERROR event is raised as its KubeError (410 Gone: `GoneError`, list again)."""
        response = self._call(
            kind,
            "list",
            namespace,
            None,
            watch=True,
            resourceVersion=resource_version,
            allowWatchBookmarks=True,
            timeoutSeconds=timeout_seconds,
            labelSelector=label_selector,
            request_timeout=timeout_seconds + self.timeout,
        )
        try:
            for line in _lines(response):
                if stop():
                    return
                try:
                    event = orjson.loads(line)
                except ValueError:
                    log.warning("watch of %s: unreadable line %r", kind, line[:200])
                    continue
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    raise error_of(int(obj.get("code") or 500), obj)
                yield WatchEvent(str(event.get("type")), obj)
        finally:
            response.release_conn()
            response.close()

    # --- plumbing ------------------------------------------------------------------------------

    def _address(self, obj: Json) -> tuple[Kind, str, str]:
        meta = obj.get("metadata") or {}
        kind = kind_of(str(obj.get("apiVersion")), str(obj.get("kind")))
        return kind, str(meta.get("namespace") or ""), str(meta.get("name") or "")

    def _check_guard(self) -> None:
        if self.guard is not None and not self.guard():
            raise NotLeaderError("not the leader: writes are refused")

    def _call(
        self,
        kind: Kind,
        verb: str,
        namespace: str | None,
        name: str | None,
        *,
        body: Json | None = None,
        write: bool = False,
        request_timeout: float | None = None,
        **query: Any,
    ) -> Any:
        """Send ``verb`` (read, list, create, replace, replace_status, patch, apply, delete,
        scale) as JSON (`canary.controller.rest`); the response unread, or a KubeError."""
        if write:
            self._check_guard()
        method, subresource, content_type = _VERBS[verb]
        if verb in ("list", "create"):
            name = None
        path = path_of(kind, namespace, name, subresource)
        try:
            response = send(
                self.api_client,
                method,
                path,
                body=body,
                content_type=content_type,
                timeout=request_timeout or self.timeout,
                query=query,
            )
        except urllib3.exceptions.SSLError as exc:
            raise KubeError(0, "SSLError", str(exc)) from None
        if not 200 <= response.status <= 299:
            data = response.data
            response.release_conn()
            raise error_of(response.status, data, str(response.reason or "no answer"))
        return response

    def _request(
        self,
        kind: Kind,
        verb: str,
        namespace: str | None,
        name: str | None,
        *,
        body: Json | None = None,
        write: bool = False,
        **query: Any,
    ) -> Json:
        return _json(self._call(kind, verb, namespace, name, body=body, write=write, **query))


_VERBS: dict[str, tuple[str, str, str]] = {
    "read": ("GET", "", JSON),
    "list": ("GET", "", JSON),
    "create": ("POST", "", JSON),
    "replace": ("PUT", "", JSON),
    "replace_status": ("PUT", "status", JSON),
    "patch": ("PATCH", "", MERGE_PATCH),
    "apply": ("PATCH", "", APPLY_PATCH),
    "delete": ("DELETE", "", JSON),
    "scale": ("PATCH", "scale", MERGE_PATCH),
}
"""By verb: the HTTP method, the subresource and the body's content type."""


def _json(response: Any) -> Json:
    data = response.data
    response.release_conn()
    if not data:
        return {}
    parsed = orjson.loads(data)
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def _lines(response: Any) -> Iterator[str]:
    """The newline-separated lines of a streamed response body."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk if isinstance(chunk, bytes) else str(chunk).encode()
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                break
            line, buffer = buffer[:end], buffer[end + 1 :]
            if line.strip():
                yield line.decode("utf-8", errors="replace")
    if buffer.strip():
        yield buffer.decode("utf-8", errors="replace")


def drop_static_token_refresh(api_client: client.ApiClient) -> bool:
    """Remove the kubeconfig loader's per-request refresh hook when it can never refresh
    anything; True when it was removed.

    `kubernetes.config.new_client_from_config` with a bearer token installs a hook that runs
    before every request: it reloads the credentials when they carry an expiry (an exec
    plugin's ``expirationTimestamp``, a GCP token's ``expiry``) and then writes the whole
    configuration again (token, host, TLS files; setting the host scans the environment for
    proxies). Without an expiry the hook can only write back what is already there: a static
    token (``token``, ``tokenFile``, read once at load), a username and password, or an OIDC
    ``id-token`` (refreshed at load only). Only that case is dropped; the hook is kept for
    credentials with an expiry, for the in-cluster configuration (its hook re-reads the
    ServiceAccount token, which the kubelet rotates) and for any hook not recognised."""
    configuration = api_client.configuration
    hook = getattr(configuration, "refresh_api_key_hook", None)
    if hook is None:
        return False
    if (
        getattr(hook, "__module__", "") != "kubernetes.config.kube_config"
        or getattr(hook, "__qualname__", "")
        != "KubeConfigLoader._set_config.<locals>._refresh_api_key"
    ):
        return False
    from kubernetes.config.kube_config import KubeConfigLoader

    loaders = []
    for cell in getattr(hook, "__closure__", None) or ():
        try:
            contents = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if isinstance(contents, KubeConfigLoader):
            loaders.append(contents)
    if len(loaders) != 1 or "expiry" in vars(loaders[0]):
        return False
    configuration.refresh_api_key_hook = None
    return True


def widen_connection_pool(api_client: client.ApiClient, connections: int) -> int:
    """Let the client keep ``connections`` connections to the API server open; returns the
    pool's size afterwards.

    The kubernetes client's urllib3 pool keeps ``cpu_count * 5`` connections a host by default
    (10 on two cores). Each watch holds one while it streams and each worker one while its
    request runs; past the pool's size urllib3 opens a connection for the request and closes
    it afterwards (a TCP handshake, and a TLS one in a cluster, per request)."""
    manager = api_client.rest_client.pool_manager
    size = max(int(manager.connection_pool_kw.get("maxsize") or 1), connections)
    manager.connection_pool_kw["maxsize"] = size
    manager.clear()  # pools made before take the new size when made again
    api_client.configuration.connection_pool_maxsize = size
    return size
