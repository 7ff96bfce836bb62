"""The Kubernetes routers' interface: the objects a Route needs, and the Route live objects hold.

A Kubernetes shell holds a Route by server-side applying `desired_objects(rollout, route)` as
the field manager ``canary`` (each by apiVersion, kind, namespace and name) and verifies it with
the objects the API server answers: `route_from_objects(rollout, live)` is the Route they hold.
`differences(desired, live)` lists where a live object departs from a desired one (fields the
server added are not counted).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from canary.engine.actions import Route
from canary.model.provider import ProviderName
from canary.model.rollout import Rollout
from canary.traffic import gateway_api, istio, linkerd
from canary.traffic.objects import Json, RenderError

_Desired = Callable[[Rollout, Route], list[Json]]
_Read = Callable[[Rollout, list[Json]], Route]

_RENDERERS: dict[ProviderName, tuple[_Desired, _Read]] = {
    ProviderName.ISTIO: (istio.desired_objects, istio.route_from_objects),
    ProviderName.LINKERD: (linkerd.desired_objects, linkerd.route_from_objects),
    ProviderName.GATEWAY_API: (gateway_api.desired_objects, gateway_api.route_from_objects),
}


def _renderer(rollout: Rollout) -> tuple[_Desired, _Read]:
    provider = rollout.spec.provider.name
    if provider not in _RENDERERS:
        raise RenderError(
            f"provider '{provider.value}' writes no Kubernetes objects (local mode drives "
            "HAProxy through its runtime API)"
        )
    return _RENDERERS[provider]


def desired_objects(rollout: Rollout, route: Route) -> list[Json]:
    """Every object the rollout's provider needs to hold ``route``, in apply order."""
    return _renderer(rollout)[0](rollout, route)


def route_from_objects(rollout: Rollout, objects: list[Json]) -> Route:
    """The Route the live ``objects`` hold; RouterError when they are missing or unreadable."""
    return _renderer(rollout)[1](rollout, objects)


def object_key(obj: Json) -> tuple[str, str, str, str]:
    """(apiVersion, kind, namespace, name): how the shell finds an object to apply or read."""
    meta = obj.get("metadata", {})
    return (obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])


def differences(desired: Any, live: Any, path: str = "") -> list[str]:
    """Where ``live`` departs from ``desired``: fields the API server added are not drift.

    Dicts: every desired key must be in live with the same value (extra live keys are server
    defaults, status, metadata). Lists: same length, element by element. Numbers compare by
    value (the server may write 5 as 5.0).
    """
    where = path or "."
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return [f"{where}: expected an object"]
        found: list[str] = []
        for key, value in desired.items():
            sub = f"{path}.{key}"
            if key not in live:
                found.append(f"{sub}: missing")
            else:
                found += differences(value, live[key], sub)
        return found
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return [f"{where}: expected {len(desired)} items"]
        found = []
        for index, (want, have) in enumerate(zip(desired, live, strict=True)):
            found += differences(want, have, f"{path}[{index}]")
        return found
    same = (
        desired == live
        if isinstance(desired, bool) or isinstance(live, bool)
        else (desired == live or _numbers_equal(desired, live))
    )
    return [] if same else [f"{where}: {live!r} instead of {desired!r}"]


def _numbers_equal(a: Any, b: Any) -> bool:
    return isinstance(a, int | float) and isinstance(b, int | float) and float(a) == float(b)
