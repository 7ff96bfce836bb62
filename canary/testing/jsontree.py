"""Copies of JSON trees (dicts, lists, scalars), several times faster than `copy.deepcopy`."""

from __future__ import annotations

from typing import Any, TypeVar, cast

T = TypeVar("T")


def clone(node: T) -> T:
    return cast(T, _clone(node))


def _clone(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _clone(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_clone(v) for v in node]
    return node
