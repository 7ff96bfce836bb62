"""Field sets in the spelling of `metadata.managedFields` (FieldsV1), as server-side apply
counts them: which leaf fields an object sets, and which ones a manager owns.

Lists are leaves (atomic): the route objects canary applies have only atomic lists at the
levels it writes. A real server spells an associative list's items (``k:{...}``), a set's
values (``v:...``) and a map it owns itself (``.``); `from_fields_v1` reads those as the list
or map that holds them, so a real server's answer and the test API server's compare alike.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]
Path = tuple[str, ...]
"""A field's path in FieldsV1 spelling: ("f:spec", "f:http")."""

_TRACKED_META = ("labels", "annotations", "ownerReferences", "finalizers")
_SKIPPED_TOP = ("apiVersion", "kind", "metadata")


def fields_of(obj: Json, with_status: bool = True) -> dict[Path, Any]:
    """Every leaf field ``obj`` sets (a scalar, a list, an empty object), with its value."""
    out: dict[Path, Any] = {}
    meta = obj.get("metadata") or {}
    for key in _TRACKED_META:
        if key in meta:
            _walk(meta[key], ("f:metadata", f"f:{key}"), out)
    for key, value in obj.items():
        if key in _SKIPPED_TOP or (key == "status" and not with_status):
            continue
        _walk(value, (f"f:{key}",), out)
    return out


def _walk(value: Any, path: Path, out: dict[Path, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            _walk(sub, (*path, f"f:{key}"), out)
    else:
        out[path] = value


def to_fields_v1(paths: set[Path]) -> Json:
    tree: Json = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(part, {})
    return tree


def from_fields_v1(tree: Json, prefix: Path = ()) -> set[Path]:
    """The leaf fields of a FieldsV1 tree (list items and sets read as their list)."""
    out: set[Path] = set()
    for part, sub in tree.items():
        if part == ".":
            continue
        if not part.startswith("f:"):  # k:{...}, v:..., i:N: an item of the list ``prefix``
            out.add(prefix)
        elif isinstance(sub, dict) and set(sub) - {"."}:
            out |= from_fields_v1(sub, (*prefix, part))
        else:
            out.add((*prefix, part))
    return out
