"""The patch formats: JSON merge patch, JSON patch, and a strategic merge patch for simple cases.

The strategic merge patch knows no Go struct tags: lists of objects are merged by a key chosen
from the list's field name (`containers` by `name`, `ports` by `containerPort` or `port`, ...),
lists of strings listed in `_MERGED_STRINGS` are unions, every other list is replaced. The
`$patch`, `$retainKeys`, `$setElementOrder/` and `$deleteFromPrimitiveList/` directives that
kubectl writes are honoured.
"""

from __future__ import annotations

import json
from typing import Any, cast

import jsonpatch

from canary.testing.errors import ApiError
from canary.testing.jsontree import clone

Json = dict[str, Any]

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"

# Lists of objects merged item by item, by the field that names an item.
_MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "volumes": ("name",),
    "env": ("name",),
    "imagePullSecrets": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "ports": ("containerPort", "port"),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey",),
}
_MERGED_STRINGS = frozenset({"finalizers"})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return clone(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: Json, operations: Any) -> Json:
    """RFC 6902 through the `jsonpatch` package; a failed operation is 422, as on the server."""
    if not isinstance(operations, list):
        raise ApiError(400, "json patch must be a list of operations")
    try:
        result = jsonpatch.JsonPatch(operations).apply(clone(target))
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError) as exc:
        raise ApiError(
            422, f"the server rejected our request due to an error in our request: {exc}"
        ) from exc
    if not isinstance(result, dict):
        raise ApiError(422, "json patch must leave an object")
    return cast(Json, result)


def _merge_key(name: str, items: list[Any]) -> str | None:
    for key in _MERGE_KEYS.get(name, ()):
        if all(isinstance(i, dict) and key in i for i in items):
            return key
    return None


def _merge_list(
    name: str, current: list[Any], patch: list[Any], order: list[Any] | None
) -> list[Any]:
    if name in _MERGED_STRINGS and all(not isinstance(i, dict | list) for i in patch):
        merged = list(current) + [v for v in patch if v not in current]
    else:
        key = _merge_key(name, [*current, *patch])
        if key is None:
            return [strategic_merge_patch({}, i) if isinstance(i, dict) else i for i in patch]
        merged = [clone(i) for i in current]
        for item in patch:
            found = next((n for n, c in enumerate(merged) if c.get(key) == item.get(key)), None)
            if item.get("$patch") == "delete":
                if found is not None:
                    merged.pop(found)
            elif item.get("$patch") == "replace" or found is None:
                clean = {k: v for k, v in item.items() if k != "$patch"}
                if found is None:
                    merged.append(strategic_merge_patch({}, clean))
                else:
                    merged[found] = strategic_merge_patch({}, clean)
            else:
                merged[found] = strategic_merge_patch(merged[found], item)
        if order is not None:
            rank = {
                json.dumps(o.get(key) if isinstance(o, dict) else o): n for n, o in enumerate(order)
            }
            merged.sort(key=lambda i: rank.get(json.dumps(i.get(key)), len(rank)))
        return merged
    if order is not None:
        rank = {json.dumps(o): n for n, o in enumerate(order)}
        merged.sort(key=lambda v: rank.get(json.dumps(v), len(rank)))
    return merged


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Kubernetes' strategic merge patch for the cases kubectl produces on the kinds served here."""
    if not isinstance(patch, dict):
        return clone(patch)
    if patch.get("$patch") == "replace":
        return strategic_merge_patch({}, {k: v for k, v in patch.items() if k != "$patch"})
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    orders = {k.split("/", 1)[1]: v for k, v in patch.items() if k.startswith("$setElementOrder/")}
    for key, value in patch.items():
        if key.startswith("$"):
            if key.startswith("$deleteFromPrimitiveList/"):
                field = key.split("/", 1)[1]
                result[field] = [v for v in result.get(field) or [] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            current = result.get(key)
            result[key] = _merge_list(
                key, current if isinstance(current, list) else [], value, orders.get(key)
            )
        else:
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    for key, order in orders.items():
        if key not in patch and isinstance(result.get(key), list):
            result[key] = _merge_list(key, result[key], [], order)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def apply_patch(content_type: str, target: Json, body: Any, custom: bool) -> Json:
    """The patched object; 415 for a format the resource does not take (strategic on a CR)."""
    if content_type == MERGE:
        result = merge_patch(target, body)
    elif content_type == JSON_PATCH:
        result = json_patch(target, body)
    elif content_type == STRATEGIC and not custom:
        result = strategic_merge_patch(target, body)
    elif content_type == APPLY:
        result = merge_patch(target, body)
    else:
        raise ApiError(
            415,
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{JSON_PATCH}, {MERGE}, {APPLY}" + ("" if custom else f", {STRATEGIC}"),
        )
    if not isinstance(result, dict):
        raise ApiError(422, "the patch must leave an object")
    return cast(Json, result)
