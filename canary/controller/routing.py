"""Holding a Route in the cluster: the mesh objects of the rollout's provider, applied, read
back, and repaired when someone changed them.

`canary.traffic.mesh` renders the objects (`desired_objects`) and reads a Route back from live
objects (`route_from_objects`); this module does the I/O. An object is created when missing and
replaced (with the live resourceVersion) only when it departs from the desired one
(`differences`: fields the server added are not drift), so holding the same Route twice writes
nothing. After applying, the objects as the API server stored them (its answers to the writes)
must hold the Route asked for. The objects are read once a tick (`MeshRouter` keeps what it
read and wrote), not again for each route applied.

Which Route a rollout should hold between ticks follows from its status (`expected_route`), so
a controller that restarted, or a route someone edited by hand, is put right at the next tick.
"""

from __future__ import annotations

import logging

from canary.controller.kinds import kind_of
from canary.controller.kube import Json, Kube
from canary.engine.actions import Route
from canary.engine.routes import STABLE, analysis_route
from canary.model.rollout import Rollout
from canary.model.status import Phase, RolloutStatus
from canary.traffic.mesh import desired_objects, differences, route_from_objects
from canary.traffic.router import RouterError

log = logging.getLogger("canary.controller.routing")


def expected_route(rollout: Rollout, status: RolloutStatus) -> Route | None:
    """The Route the rollout holds in ``status`` (None: nothing to hold yet)."""
    phase = status.phase
    if phase is Phase.INITIALIZING:
        return None
    if phase in (Phase.PROGRESSING, Phase.PAUSED):
        if not status.pre_rollout_passed:
            return STABLE
        return analysis_route(rollout, status.step_index)
    if phase is Phase.PROMOTING:
        if status.canary_weight > 0:
            return Route(canary_weight=status.canary_weight)
        return analysis_route(rollout, status.step_index)
    return STABLE


class MeshRouter:
    """The provider's route objects for one Rollout, for one tick.

    The objects are read once a tick: what `repair` read is what `apply` compares with, and
    what a create or replace answered (the object as the API server stored it, after any
    defaulting or admission) is what is kept and checked, so holding a route costs one GET
    per object a tick and no read-back."""

    def __init__(self, kube: Kube, rollout: Rollout) -> None:
        self.kube = kube
        self.rollout = rollout
        self._seen: dict[tuple[str, str, str, str], Json | None] = {}

    def live(self, desired: list[Json]) -> list[Json | None]:
        """The live object for each desired one (None when missing), read at most once a
        tick."""
        out: list[Json | None] = []
        for obj in desired:
            key = _key(obj)
            if key not in self._seen:
                meta = obj["metadata"]
                kind = kind_of(obj["apiVersion"], obj["kind"])
                self._seen[key] = self.kube.get(kind, meta["namespace"], meta["name"])
            out.append(self._seen[key])
        return out

    def current(self) -> Route:
        """The Route the live objects hold; RouterError when they are missing or unreadable."""
        desired = desired_objects(self.rollout, STABLE)
        live = [o for o in self.live(desired) if o is not None]
        return route_from_objects(self.rollout, live)

    def apply(self, route: Route) -> list[str]:
        """Make the objects hold ``route``; returns what was written (empty: nothing to do)."""
        desired = desired_objects(self.rollout, route)
        written: list[str] = []
        held: list[Json] = []
        for want, have in zip(desired, self.live(desired), strict=True):
            name = f"{want['kind']} {want['metadata']['name']}"
            if have is None:
                have = self._stored(want, self.kube.create(want))
                written.append(f"created {name}")
            else:
                drift = differences(want, have)
                if drift:
                    body = dict(want)
                    body["metadata"] = {
                        **want["metadata"],
                        "resourceVersion": have["metadata"].get("resourceVersion"),
                    }
                    have = self._stored(want, self.kube.replace(body))
                    written.append(f"updated {name} (it differed: {'; '.join(drift[:3])})")
            held.append(have)
        holds = route_from_objects(self.rollout, held)
        if holds != route:
            raise RouterError(
                f"the route objects hold {holds.model_dump(exclude_defaults=True)} after writing "
                f"{route.model_dump(exclude_defaults=True)}"
            )
        return written

    def _stored(self, want: Json, answer: Json) -> Json:
        """What the API server answered a write with, kept as the live object."""
        stored = answer or want  # (an empty answer: the object as sent)
        self._seen[_key(want)] = stored
        return stored

    def repair(self, status: RolloutStatus) -> list[str]:
        """Put back the Route ``status`` calls for if the objects departed from it."""
        route = expected_route(self.rollout, status)
        if route is None:
            return []
        written = self.apply(route)
        if written:
            log.warning("%s: route objects drifted; repaired: %s", self.rollout.key, written)
        return written


def _key(obj: Json) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    return str(obj["apiVersion"]), str(obj["kind"]), str(meta["namespace"]), str(meta["name"])
