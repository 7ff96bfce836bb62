"""A skeleton of /openapi/v3: paths and operations, no schemas.

kubectl reads it to learn that the server validates fields itself (the `fieldValidation`
parameter on each kind's PATCH and POST); it then sends `fieldValidation=Strict` and skips
its own schema validation, which would need the full schemas. `kubectl explain` does not work.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from canary.testing.errors import ApiError
from canary.testing.resources import Registry, ResourceType

Json = dict[str, Any]

_PARAMS = [
    {"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    for n in ("dryRun", "fieldManager", "fieldValidation")
]


def _prefix(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _operations(rt: ResourceType, verbs: tuple[str, ...]) -> Json:
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    return {
        verb: {
            "operationId": f"{verb}{rt.kind}",
            "parameters": _PARAMS,
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": {"post": "post", "put": "put", "patch": "patch"}[verb],
            "x-kubernetes-group-version-kind": gvk,
        }
        for verb in verbs
    }


def group_version_doc(registry: Registry, group: str, version: str) -> Json:
    types = [rt for rt in registry.all() if (rt.group, rt.version) == (group, version)]
    if not types:
        raise ApiError(404, "the server could not find the requested resource")
    paths: Json = {}
    for rt in types:
        base = "/" + _prefix(group, version)
        collection = (
            f"{base}/namespaces/{{namespace}}/{rt.plural}"
            if rt.namespaced
            else (f"{base}/{rt.plural}")
        )
        paths[collection] = _operations(rt, ("post",))
        paths[collection + "/{name}"] = _operations(rt, ("put", "patch"))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def root(registry: Registry) -> Json:
    paths = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            doc = json.dumps(group_version_doc(registry, group, version), sort_keys=True)
            digest = hashlib.sha256(doc.encode()).hexdigest()[:16].upper()
            prefix = _prefix(group, version)
            paths[prefix] = {"serverRelativeURL": f"/openapi/v3/{prefix}?hash={digest}"}
    return {"paths": paths}
