"""A tick's copy of a cached object (canary.controller.cached._copy) is a deep copy equal to
it, whichever way it is made: through orjson for what the API server sent, by deepcopy for
anything JSON cannot hold."""

from __future__ import annotations

import copy
import math
from typing import Any

from canary.controller.cached import _copy


def _disjoint(a: Any, b: Any) -> bool:
    """No dict or list of ``a`` is shared with ``b``."""
    if isinstance(a, dict):
        return a is not b and all(_disjoint(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return a is not b and all(_disjoint(x, y) for x, y in zip(a, b, strict=True))
    return True


def test_a_copy_of_an_api_object_equals_it_and_shares_nothing() -> None:
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "generation": 3},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "env": []}]}}},
        "status": {"conditions": [{"type": "Available", "status": "True"}], "ratio": 0.5},
        "unicode": "naïve ✓",
        "flag": True,
        "nothing": None,
    }
    copied = _copy(obj)
    assert copied == obj
    assert _disjoint(obj, copied)
    assert type(copied["flag"]) is bool
    assert type(copied["metadata"]["generation"]) is int
    copied["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "X"})
    assert obj["spec"]["template"]["spec"]["containers"][0]["env"] == []


def test_what_json_cannot_hold_is_copied_by_deepcopy() -> None:
    obj: dict[str, Any] = {"metadata": {"name": "web"}, "big": 2**70, "pair": (1, 2)}
    copied = _copy(obj)
    assert copied == copy.deepcopy(obj)
    assert copied["pair"] == (1, 2)
    assert copied["metadata"] is not obj["metadata"]
    assert _copy({"pair": (1, 2)}) == {"pair": (1, 2)}  # not made a list
    assert math.isnan(_copy({"value": math.nan})["value"])  # not made null


def test_the_api_server_stand_ins_copies_are_exact_too() -> None:
    """canary.testing.jsontree.clone, the stand-in's copy of what it stores: the same rule."""
    from canary.testing.jsontree import clone

    obj: dict[str, Any] = {"metadata": {"name": "web"}, "items": [{"a": 1}, {"b": [1.5, None]}]}
    copied = clone(obj)
    assert copied == obj
    assert _disjoint(obj, copied)
    assert clone({"pair": (1, 2)}) == {"pair": (1, 2)}
    assert math.isnan(clone([math.nan])[0])
    assert clone({"big": 2**70}) == {"big": 2**70}
    assert clone("text") == "text"
