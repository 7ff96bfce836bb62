"""Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for.

Columns are Name, the resource's own (a CRD's `additionalPrinterColumns`, READY/UP-TO-DATE/
AVAILABLE for Deployments) and Age. JSONPaths are plain field paths with list indices
(`.status.phase`, `.spec.hosts[0]`); filter expressions print nothing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from canary.testing.resources import ResourceType

Json = dict[str, Any]

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def human_age(stamp: str | None) -> str:
    if not stamp:
        return "<unknown>"
    then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    s = max(0, int((datetime.now(UTC) - then).total_seconds()))
    m, h, d = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if h < 3:
        return f"{m}m"
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    return f"{d}d" if d < 730 else f"{d // 365}y"


def _lookup(obj: Json, path: str) -> Any:
    if "?" in path or "*" in path:
        return None
    node: Any = obj
    for name, index in _STEP.findall(path.lstrip(".")):
        if name:
            node = node.get(name) if isinstance(node, dict) else None
        else:
            node = node[int(index)] if isinstance(node, list) and int(index) < len(node) else None
        if node is None:
            return None
    return node


def _cell(obj: Json, column: Json, zero: Any) -> Any:
    path = column.get("jsonPath", "")
    if path == "@ready":
        status = obj.get("status") or {}
        return f"{status.get('readyReplicas', 0)}/{(obj.get('spec') or {}).get('replicas', 0)}"
    value = _lookup(obj, path)
    if column.get("type") == "date":
        return human_age(value) if isinstance(value, str) else None
    if value is None:
        return zero if column.get("type") == "integer" else None
    if column.get("type") in ("integer", "number", "boolean") or isinstance(value, str):
        return value
    return str(value)


def _columns(rt: ResourceType) -> list[Json]:
    columns = list(rt.columns) or [
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]
    return [
        {"name": "Name", "type": "string", "format": "name", "jsonPath": ".metadata.name"},
        *columns,
    ]


def _partial(obj: Json, include: str) -> Json | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def table(rt: ResourceType, objs: list[Json], rv: str | None, include: str = "Metadata") -> Json:
    columns = _columns(rt)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv} if rv else {},
        "columnDefinitions": [
            {
                "name": c["name"],
                "type": "string" if c.get("type") == "date" else c.get("type", "string"),
                "format": c.get("format", ""),
                "description": c.get("description", c["name"]),
                "priority": c.get("priority", 0),
            }
            for c in columns
        ],
        "rows": [
            {
                "cells": [_cell(o, c, None if rt.custom else 0) for c in columns],
                "object": _partial(o, include),
            }
            for o in objs
        ],
    }
