"""How much a live controller holds: the size of every dict, set, list and deque reachable
from it through canary's (and prometheus-client's) objects, by attribute path. A container that
grows with the Rollouts a controller has seen, rather than the Rollouts that exist, is a leak
(a tenant creating and deleting Rollouts under new names could grow it without bound)."""

from __future__ import annotations

from collections import deque
from typing import Any

WALKED_MODULES = ("canary.", "prometheus_client.")
CONTAINERS = (dict, set, frozenset, list, deque)


def _walked(value: Any) -> bool:
    module = type(value).__module__ or ""
    return module.startswith(WALKED_MODULES) and hasattr(value, "__dict__")


def state_sizes(root: Any, depth: int = 8) -> dict[str, int]:
    """``{"reads._fences": 0, "wakes._rollouts_of": 42, ...}``: each container's length, at
    the first path it is reached by (breadth first, so the shortest)."""
    sizes: dict[str, int] = {}
    seen: set[int] = {id(root)}
    level: list[tuple[str, Any]] = [("", root)]
    for _ in range(depth):
        following: list[tuple[str, Any]] = []
        for path, obj in level:
            for name, value in sorted(vars(obj).items()):
                where = f"{path}.{name}" if path else name
                if id(value) in seen:
                    continue
                seen.add(id(value))
                if isinstance(value, CONTAINERS):
                    sizes[where] = len(value)
                    members = value.values() if isinstance(value, dict) else value
                    following += [
                        (f"{where}[]", item)
                        for item in list(members)[:50]
                        if _walked(item) and id(item) not in seen
                    ]
                elif _walked(value):
                    following.append((where, value))
        level = following
    return sizes


def grown(before: dict[str, int], after: dict[str, int], by: int) -> dict[str, tuple[int, int]]:
    """The containers at least ``by`` longer in ``after`` than in ``before``."""
    return {
        path: (before.get(path, 0), size)
        for path, size in after.items()
        if size - before.get(path, 0) >= by
    }
