"""Server-side apply and `metadata.managedFields`, for the cases a controller and kubectl use.

Each write records which manager set which fields (`managedFields`, in the `FieldsV1` format
a real server answers with). An *apply* (``PATCH`` with ``application/apply-patch+yaml`` and a
``fieldManager``) makes the object hold the applied configuration and makes the manager own
exactly its fields: a field it applied before and leaves out now is removed (unless another
manager owns it too), fields of other managers are kept, and changing a field another manager
owns is a 409 naming each conflict unless ``force=true`` (then the field changes hands). An
*update* (create, PUT, merge/JSON/strategic patch) gives the updater the fields it changed and
takes them from everyone else.

Simplification (written down in docs/testing.md): every list is *atomic* (owned and replaced
as a whole), as in the CRDs the project applies (Istio's, Gateway API's, SMI's top-level lists
carry no ``x-kubernetes-list-type: map``). A real server merges associative lists (a
Deployment's ``containers`` by name) item by item.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from canary.testing.errors import ApiError
from canary.testing.fields import Path, fields_of, from_fields_v1, to_fields_v1
from canary.testing.jsontree import clone

Json = dict[str, Any]
# --- who owns what -------------------------------------------------------------------------


def _entries(obj: Json | None) -> list[Json]:
    return list(((obj or {}).get("metadata") or {}).get("managedFields") or [])


def _owned(entry: Json) -> set[Path]:
    return from_fields_v1(entry.get("fieldsV1") or {})


def _entry(manager: str, operation: str, api_version: str, paths: set[Path], when: str) -> Json:
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": when,
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(paths),
    }


def _touches(owned: Path, changed: Path) -> bool:
    """A change at ``changed`` affects the owned field ``owned`` (same, inside or around)."""
    short = min(len(owned), len(changed))
    return owned[:short] == changed[:short]


def _without(entries: list[Json], changed: set[Path], keep: Json | None = None) -> list[Json]:
    """``entries`` with the ``changed`` fields taken from every entry but ``keep``."""
    out = []
    for entry in entries:
        if entry is keep:
            out.append(entry)
            continue
        owned = {p for p in _owned(entry) if not any(_touches(p, c) for c in changed)}
        if owned:
            out.append({**entry, "fieldsV1": to_fields_v1(owned)})
    return out


def record_update(
    old: Json | None, new: Json, manager: str, api_version: str, when: str, status: bool
) -> list[Json]:
    """The managedFields of ``new`` after ``manager`` wrote it with an update (not an apply)."""
    entries = _entries(old)
    before = fields_of(old or {}, with_status=not status)
    after = fields_of(new, with_status=not status)
    changed = {p for p, v in after.items() if p not in before or before[p] != v}
    removed = set(before) - set(after)
    if not changed and not removed:
        return entries
    entries = _without(entries, changed | removed)
    mine = next(
        (e for e in entries if e["manager"] == manager and e["operation"] == "Update"), None
    )
    owned = (_owned(mine) if mine else set()) | changed
    entries = [e for e in entries if e is not mine]
    entries.append(_entry(manager, "Update", api_version, owned, when))
    return entries


# --- apply ---------------------------------------------------------------------------------


def apply_config(
    live: Json | None,
    config: Json,
    manager: str,
    force: bool,
    api_version: str,
    when: str,
    status: bool,
) -> Json:
    """The object after ``manager`` applied ``config`` to ``live`` (None: it is created).

    ``status``: the kind has a status subresource (``status`` is not written by an apply of
    the main resource, and not tracked)."""
    if not manager:
        raise ApiError(
            422, "PATCH is invalid: fieldManager: Required value: is required for apply patch"
        )
    base = clone(live) if live is not None else {}
    entries = _entries(live)
    applied = fields_of(config, with_status=not status)
    current = fields_of(base, with_status=not status)
    mine = next((e for e in entries if e["manager"] == manager and e["operation"] == "Apply"), None)
    others = [e for e in entries if e is not mine]
    changed = {p for p, v in applied.items() if p in current and current[p] != v}
    conflicts = [
        (e["manager"], p) for e in others for p in _owned(e) if p in changed and p in applied
    ]
    if conflicts and not force:
        raise _conflict(conflicts)
    dropped = (_owned(mine) if mine else set()) - set(applied)
    still_owned = set().union(*(_owned(e) for e in others)) if others else set()
    result = _merge(base, config, status)
    for path in sorted(dropped, key=len, reverse=True):
        if path not in still_owned:
            _remove(result, path)
    taken = {p for p in changed if p in applied}
    entries = _without(others, taken)
    entries.append(_entry(manager, "Apply", api_version, set(applied), when))
    if mine is not None and _owned(mine) == set(applied) and result == base:
        entries = _entries(live)  # a no-op apply changes nothing, not even the time
    result.setdefault("metadata", {})["managedFields"] = entries
    return result


def _merge(base: Json, config: Json, status: bool) -> Json:
    out = clone(base)
    for key, value in config.items():
        if key == "status" and status:
            continue
        if key == "metadata":
            meta = out.setdefault("metadata", {})
            for name, sub in (value or {}).items():
                if name in ("labels", "annotations") and isinstance(sub, dict):
                    meta[name] = {**(meta.get(name) or {}), **clone(sub)}
                elif name not in ("resourceVersion", "managedFields"):
                    meta[name] = clone(sub)
        else:
            out[key] = _merge_value(out.get(key), value)
    return out


def _merge_value(have: Any, want: Any) -> Any:
    if isinstance(have, dict) and isinstance(want, dict):
        merged = dict(have)
        for key, value in want.items():
            merged[key] = _merge_value(have.get(key), value)
        return merged
    return clone(want)


def _remove(obj: Json, path: Path) -> None:
    """Remove the field at ``path``, and the objects it leaves empty on the way up."""
    trail: list[tuple[Json, str]] = []
    node: Any = obj
    for part in _keys(path):
        if not isinstance(node, dict) or part not in node:
            return
        trail.append((node, part))
        node = node[part]
    parent, key = trail.pop()
    del parent[key]
    for parent, key in reversed(trail):
        if parent[key] != {}:
            break
        del parent[key]


def _keys(path: Path) -> Iterator[str]:
    for part in path:
        yield part[2:]


def _conflict(conflicts: list[tuple[str, Path]]) -> ApiError:
    names = [(m, "." + ".".join(_keys(p))) for m, p in sorted(conflicts)]
    lines = "\n".join(f'- conflict with "{m}": {f}' for m, f in names)
    causes = [
        {"type": "FieldManagerConflict", "message": f'conflict with "{m}"', "field": f}
        for m, f in names
    ]
    count = len(names)
    return ApiError(
        409,
        f"Apply failed with {count} conflict{'s' if count > 1 else ''}:\n{lines}",
        reason="Conflict",
        details={"causes": causes},
    )
