"""Copies of JSON trees (dicts, lists, scalars), several times faster than `copy.deepcopy`."""

from __future__ import annotations

from typing import Any, TypeVar, cast

import orjson

T = TypeVar("T")


def clone(node: T) -> T:
    """A deep copy: a dict or list through orjson (in C, about twice as fast as the walk), kept
    only when it equals the original (a tuple would come back a list, a NaN unequal); anything
    else, or what orjson cannot encode, by walking it."""
    if isinstance(node, dict | list):
        try:
            copied = orjson.loads(orjson.dumps(node))
        except orjson.JSONEncodeError:
            return cast(T, _clone(node))
        if copied == node:
            return cast(T, copied)
    return cast(T, _clone(node))


def _clone(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _clone(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_clone(v) for v in node]
    return node
