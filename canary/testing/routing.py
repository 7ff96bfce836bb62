"""The HTTP layer: Kubernetes REST paths and verbs mapped onto the store, with aiohttp."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson
import yaml
from aiohttp import web
from multidict import CIMultiDict

from canary.testing import discovery, kinds, managed, openapi, tables
from canary.testing.admission import Admission, Identities
from canary.testing.errors import ApiError, bad_request, not_found
from canary.testing.faults import Faults
from canary.testing.patch import APPLY, apply_patch
from canary.testing.resources import Registry, ResourceType
from canary.testing.selectors import selector
from canary.testing.storage import FIELD_MANAGER, Store, as_version, now
from canary.testing.watch import Watcher, line, stream

Json = dict[str, Any]
log = logging.getLogger(__name__)


@dataclass
class Settings:
    """What the handlers share, owned by `ApiServer`."""

    store: Store
    faults: Faults
    bookmark_interval: float
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    """The User-Agent of each request in ``requests``, in the same order."""
    watchers: set[Watcher] = field(default_factory=set)
    address: str = ""
    identities: Identities = field(default_factory=Identities)
    admission: Admission = field(default_factory=Admission)


@dataclass
class Target:
    rt: ResourceType
    namespace: str | None
    name: str | None
    sub: str | None
    watch: bool


def _parse(
    registry: Registry, parts: list[str], prefix_len: int, group: str, version: str
) -> Target:
    rest = parts[prefix_len:]
    watch = bool(rest) and rest[0] == "watch"
    rest = rest[1:] if watch else rest
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        with contextlib.suppress(ApiError):
            if registry.lookup(group, version, rest[2]).namespaced:
                namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        raise ApiError(404, "the server could not find the requested resource")
    rt = registry.lookup(group, version, rest[0])
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if (namespace is not None and not rt.namespaced) or (
        rt.namespaced and name and namespace is None
    ):
        raise ApiError(404, "the server could not find the requested resource")
    if sub is not None and not ((sub == "status" and rt.status) or (sub == "scale" and rt.scale)):
        raise ApiError(404, "the server could not find the requested resource")
    return Target(rt, namespace, name, sub, watch)


def _json(body: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    """A JSON answer; each warning becomes a `Warning: 299 - "..."` header, as kubectl reads."""
    headers: CIMultiDict[str] = CIMultiDict()
    for warning in warnings or []:
        quoted = warning.replace("\\", "\\\\").replace('"', '\\"')
        headers.add("Warning", f'299 - "{quoted}"')
    return web.Response(
        body=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
        headers=headers,
    )


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return {}
    if "protobuf" in request.content_type:
        raise ApiError(
            415,
            "the body of the request was in an unknown format - accepted media "
            "types include: application/json, application/yaml",
        )
    try:
        if request.content_type.endswith("yaml"):
            return _yaml_or_json(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"the body of the request could not be decoded: {exc}") from exc


def _yaml_or_json(raw: bytes) -> Any:
    """A YAML body (an apply patch): most clients send JSON, which YAML includes and the
    JSON decoder reads many times faster than PyYAML (the API server converts YAML to JSON
    too); anything the JSON decoder refuses is read as YAML."""
    if raw.lstrip()[:1] in (b"{", b"["):
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return yaml.safe_load(raw)


def _manager(request: web.Request) -> str:
    """The request's field manager: ``fieldManager``, else the User-Agent's product name (as a
    real server defaults it)."""
    given = request.query.get("fieldManager")
    if given:
        return given
    agent = request.headers.get("User-Agent", "")
    return agent.split("/", 1)[0].strip() or "unknown"


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true")


def _dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    if any(v != "All" for v in values):
        raise bad_request(f"unsupported dryRun value(s): {values}")
    return bool(values)


class Handler:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.store = settings.store
        self.registry = settings.store.registry

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        delay, fault = self.s.faults.take(request.method, request.path)
        if delay:
            await asyncio.sleep(delay)
        try:
            if fault is not None:
                raise fault
            response = await self._dispatch(request)
        except ApiError as err:
            response = _json(err.status(), err.code)
        except Exception as exc:  # a bug here must reach the client as a 500, not hang it
            log.exception("test API server: %s %s", request.method, request.path_qs)
            response = _json(ApiError(500, f"internal error: {exc!r}").status(), 500)
        self.s.agents.append(request.headers.get("User-Agent", ""))
        self.s.requests.append((request.method, request.path_qs, response.status))
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if not parts:
            return _json(discovery.root_paths(self.registry))
        head = parts[0]
        if len(parts) == 1 and head in ("healthz", "readyz", "livez"):
            return web.Response(text="ok")
        if parts == ["version"]:
            return _json(discovery.server_version())
        if parts == ["apis", "authentication.k8s.io", "v1", "selfsubjectreviews"]:
            return _json(self._whoami(request), 201)
        if parts[:2] == ["openapi", "v3"]:
            if len(parts) == 2:
                return _json(openapi.root(self.registry))
            if parts[2] == "api" and len(parts) == 4:
                return _json(openapi.group_version_doc(self.registry, "", parts[3]))
            if parts[2] == "apis" and len(parts) == 5:
                return _json(openapi.group_version_doc(self.registry, parts[3], parts[4]))
        if head == "api":
            if len(parts) == 1:
                return _json(discovery.core_versions(self.s.address))
            if len(parts) == 2:
                return _json(discovery.resource_list(self.registry, "", parts[1]))
            target = _parse(self.registry, parts, 2, "", parts[1])
        elif head == "apis":
            if len(parts) == 1:
                return _json(discovery.group_list(self.registry))
            if len(parts) == 2:
                return _json(discovery.group(self.registry, parts[1]))
            if len(parts) == 3:
                return _json(discovery.resource_list(self.registry, parts[1], parts[2]))
            target = _parse(self.registry, parts, 3, parts[1], parts[2])
        else:
            raise ApiError(404, "the server could not find the requested resource")
        kinds.FIELD_VALIDATION.set(request.query.get("fieldValidation", "Warn"))
        FIELD_MANAGER.set(_manager(request))
        return await self._resource(request, target)

    async def _resource(self, request: web.Request, t: Target) -> web.StreamResponse:
        method = request.method
        ns = t.namespace or ""
        if t.name is None:
            if method == "GET" and (t.watch or _flag(request, "watch")):
                return await self._watch(request, t)
            if method == "GET":
                return self._list(request, t)
            if method == "POST" and (t.namespace is not None or not t.rt.namespaced):
                body = await _body(request)
                self._admit(request, t, "CREATE", body, None)
                obj, warnings = self.store.create(t.rt, ns, body, _dry_run(request))
                return _json(obj, 201, warnings)
            if method == "DELETE":
                match = selector(
                    request.query.get("labelSelector"), request.query.get("fieldSelector")
                )
                items = self.store.delete_many(t.rt, t.namespace, match, _dry_run(request))
                return _json(
                    {
                        "kind": t.rt.kind + "List",
                        "apiVersion": t.rt.api_version,
                        "metadata": {},
                        "items": items,
                    }
                )
        elif t.sub == "scale":
            return await self._scale(request, t)
        elif method == "GET":
            obj = self.store.get(t.rt, ns, t.name)
            if tables.wants_table(request.headers.get("Accept", "")):
                rv = obj["metadata"].get("resourceVersion")
                return _json(
                    tables.table(t.rt, [obj], rv, request.query.get("includeObject", "Metadata"))
                )
            return _json(obj)
        elif method == "PUT":
            body = await _body(request)
            if t.sub is None:
                self._admit(request, t, "UPDATE", body, self.store.get(t.rt, ns, t.name))
            obj, warnings = self.store.update(t.rt, ns, t.name, body, t.sub, _dry_run(request))
            return _json(obj, 200, warnings)
        elif method == "PATCH":
            return await self._patch(request, t)
        elif method == "DELETE" and t.sub is None:
            return await self._delete(request, t)
        raise ApiError(
            405, f"the server does not allow this method on the requested resource ({method})"
        )

    def _whoami(self, request: web.Request) -> Json:
        user = self.s.identities.of(request.headers)
        return {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "SelfSubjectReview",
            "metadata": {"creationTimestamp": None},
            "status": {"userInfo": user.info()},
        }

    def _admit(
        self, request: web.Request, t: Target, operation: str, obj: Any, old: Json | None
    ) -> None:
        """The installed ValidatingAdmissionPolicies (canary.testing.admission); patches are
        not checked (a CRD's own rules still are)."""
        if not isinstance(obj, dict) or not self.s.admission.policies:
            return
        user = self.s.identities.of(request.headers)
        namespace = t.namespace or ""
        self.s.admission.check(t.rt.group, t.rt.plural, operation, namespace, obj, old, user)

    def _list(self, request: web.Request, t: Target) -> web.Response:
        match = selector(request.query.get("labelSelector"), request.query.get("fieldSelector"))
        items, rv = self.store.select(t.rt, t.namespace, match)
        if tables.wants_table(request.headers.get("Accept", "")):
            include = request.query.get("includeObject", "Metadata")
            return _json(tables.table(t.rt, items, str(rv), include))
        return _json(
            {
                "kind": t.rt.kind + "List",
                "apiVersion": t.rt.api_version,
                "metadata": {"resourceVersion": str(rv)},
                "items": items,
            }
        )

    async def _watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        match = selector(request.query.get("labelSelector"), request.query.get("fieldSelector"))
        rv_text = request.query.get("resourceVersion", "")
        try:
            since = int(rv_text) if rv_text not in ("", "0") else None
        except ValueError as exc:
            raise bad_request(f"invalid resourceVersion: {rv_text!r}") from exc
        timeout = (
            float(request.query["timeoutSeconds"]) if "timeoutSeconds" in request.query else None
        )
        bookmarks = self.s.bookmark_interval if _flag(request, "allowWatchBookmarks") else None
        as_table = tables.wants_table(request.headers.get("Accept", ""))
        include = request.query.get("includeObject", "Metadata")
        watcher = Watcher(asyncio.get_running_loop(), t.rt, t.namespace, match)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        self.s.watchers.add(watcher)
        try:
            initial = _flag(request, "sendInitialEvents") and bookmarks is not None
            async for event in stream(self.store, watcher, since, timeout, bookmarks, initial):
                if as_table and event["type"] != "ERROR":
                    obj = event["object"]
                    event = {**event, "object": tables.table(t.rt, [obj], None, include)}
                    if event["type"] == "BOOKMARK":
                        event["object"]["rows"] = []
                        event["object"]["metadata"] = obj["metadata"]
                await response.write(line(event))
        except ConnectionResetError:  # the client left; a cancellation goes on up
            return response
        finally:
            self.s.watchers.discard(watcher)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def _patch(self, request: web.Request, t: Target) -> web.Response:
        body = await _body(request)
        ns, name, dry = t.namespace or "", t.name or "", _dry_run(request)
        ctype = request.content_type
        with self.store.lock:
            current = self.store.find(t.rt.key, ns if t.rt.namespaced else "", name)
            if ctype == APPLY and t.sub is None:
                return self._apply(request, t, current, body)
            if current is None:
                raise not_found(t.rt.plural, t.rt.group, name)
            patched = apply_patch(ctype, as_version(current, t.rt), body, t.rt.custom)
            obj, warnings = self.store.update(t.rt, ns, name, patched, t.sub, dry)
        return _json(obj, 200, warnings)

    def _apply(
        self, request: web.Request, t: Target, current: Json | None, config: Any
    ) -> web.Response:
        """Server-side apply (`canary.testing.managed`): create, or merge and take ownership."""
        if not isinstance(config, dict):
            raise bad_request("the apply configuration must be an object")
        ns, name, dry = t.namespace or "", t.name or "", _dry_run(request)
        result = managed.apply_config(
            None if current is None else as_version(current, t.rt),
            config,
            request.query.get("fieldManager", ""),
            _flag(request, "force"),
            t.rt.api_version,
            now(),
            t.rt.status,
        )
        meta = result.setdefault("metadata", {})
        entries = meta.pop("managedFields")
        if current is None:
            meta.setdefault("name", name)
            meta.pop("resourceVersion", None)
            obj, warnings = self.store.create(t.rt, ns, result, dry, entries)
            return _json(obj, 201, warnings)
        obj, warnings = self.store.update(t.rt, ns, name, result, None, dry, entries)
        return _json(obj, 200, warnings)

    async def _delete(self, request: web.Request, t: Target) -> web.Response:
        # kubectl sends its DeleteOptions as protobuf, which this server cannot read: the
        # options then come from the query (propagationPolicy, dryRun) alone.
        protobuf = "protobuf" in request.content_type
        options = await _body(request) if request.can_read_body and not protobuf else {}
        if "propagationPolicy" in request.query:
            options["propagationPolicy"] = request.query["propagationPolicy"]
        obj = self.store.delete(t.rt, t.namespace or "", t.name or "", options, _dry_run(request))
        pending = "deletionTimestamp" in obj["metadata"]
        if t.rt.custom or pending:
            return _json(obj, 202 if pending and not t.rt.custom else 200)
        return _json(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": t.name,
                    "group": t.rt.group,
                    "kind": t.rt.plural,
                    "uid": obj["metadata"].get("uid"),
                },
            }
        )

    async def _scale(self, request: web.Request, t: Target) -> web.Response:
        ns, name, dry = t.namespace or "", t.name or "", _dry_run(request)
        body = await _body(request) if request.method in ("PUT", "PATCH") else {}
        with self.store.lock:
            current = self.store.find(t.rt.key, ns if t.rt.namespaced else "", name)
            if current is None:
                raise not_found(t.rt.plural, t.rt.group, name)
            if request.method == "GET":
                return _json(kinds.scale_of(t.rt, current))
            if request.method == "PATCH":
                body = apply_patch(request.content_type, kinds.scale_of(t.rt, current), body, False)
            elif request.method != "PUT":
                raise ApiError(405, "the server does not allow this method on scale")
            kinds.check_scale_version(current, (body.get("metadata") or {}).get("resourceVersion"))
            new = kinds.with_replicas(t.rt, current, (body.get("spec") or {}).get("replicas", 0))
            stored = self.store.replace_object(t.rt, current, new, dry)
        return _json(kinds.scale_of(t.rt, stored))


def make_app(settings: Settings) -> web.Application:
    handler = Handler(settings)

    async def handle(request: web.Request) -> web.StreamResponse:
        return await handler(request)

    app = web.Application(client_max_size=64 * 1024**2)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
