"""Holding a Route in the cluster: the mesh objects of the rollout's provider, applied, read
back, and repaired when someone changed them.

`canary.traffic.mesh` renders the objects (`desired_objects`) and reads a Route back from live
objects (`route_from_objects`); this module does the I/O. Every object is server-side applied
as the field manager ``canary`` (`Kube.apply`, forcing conflicts) once a tick: the API server
then holds exactly canary's fields as desired, both ways -- a field changed or added by hand in
canary's part is put back, a field canary applied before and no longer sets is removed (a
setting removed from the spec, the mirror of a blue/green rollout that is rolled back) -- and
keeps what other managers own (another team's labels, a mesh's own fields). An apply that
changes nothing writes nothing (no new resourceVersion, no watch event), so holding the same
Route twice costs one request per object and no write. Why not compare and write only on a
difference: a client cannot tell a field someone added inside one of the route's lists from a
default the server filled in there; the server can. The objects as the API server answered
the apply must hold the Route asked for.

Which Route a rollout should hold between ticks follows from its status (`expected_route`):
each tick applies it (an action's, else the one the status calls for), so a controller that
restarted is put right at its next tick. A `MeshRouter` that *trusts* what it applied before
(``trust``) sends only the objects whose desired content changed since the last tick's apply
(a step moves the VirtualService's weights; Istio's DestinationRules stay as they were): the
reconciler trusts them unless `route_signature` (the Rollout's uid and generation) changed, on
the first tick after the controller starts or gains the Lease or after a failed tick, after
the route watch saw someone else change one (`canary.controller.route_watch`: a hand edit is
put right by the tick that change wakes), and every ``ROUTE_RESYNC_SECONDS`` of its clock,
when every object is applied again: the backstop for an edit the watch did not see.
(Applying every object at every tick cost three server-side applies a tick at a thousand
Rollouts, most of a tick's requests; a 30-s resync still cost two DestinationRule applies per
Rollout every 30 s, 0.9 a tick when ticks ran late. The resync matches the Services' one, 5
minutes.)
"""

from __future__ import annotations

import json
import logging

from canary.controller.kinds import kind_of
from canary.controller.kube import Json, Kube, KubeError, NotFoundError
from canary.engine.actions import Route
from canary.engine.routes import STABLE, analysis_route
from canary.model.rollout import Rollout
from canary.model.status import Phase, RolloutStatus
from canary.traffic.gateway_api import ROUTE_KINDS, stale_routes
from canary.traffic.httproute import API_VERSION as ROUTE_API_VERSION
from canary.traffic.mesh import desired_objects, route_from_objects
from canary.traffic.objects import ROLLOUT_LABEL, Names
from canary.traffic.router import RouterError

log = logging.getLogger("canary.controller.routing")

ROUTE_RESYNC_SECONDS = 300.0
"""A Rollout's route objects are all applied again at least this often (a hand edit the route
watch did not see is put right by then); between, only an object whose desired content
changed is sent."""


def route_signature(rollout: Rollout) -> str:
    """What the route objects are rendered from besides the Route: the Rollout's uid and
    generation (its spec)."""
    return json.dumps([rollout.metadata.uid, rollout.metadata.generation])


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

    Each object is applied at most once a tick with the same content (`repair` then an
    action's `apply` of the same Route costs one request per object); the API server's
    answer is kept and checked. ``versions`` (shared by the ticks) remembers each object's
    last resourceVersion, so a write that changed something is told from a no-op."""

    def __init__(
        self,
        kube: Kube,
        rollout: Rollout,
        versions: dict[tuple[str, str, str, str], str] | None = None,
        held: dict[tuple[str, str, str, str], tuple[Json, Json]] | None = None,
        *,
        trust: bool = False,
    ) -> None:
        """``held`` (shared by the ticks): each object as last applied and as answered;
        ``trust``: an object whose desired content is the one held is not applied again."""
        self.kube = kube
        self.rollout = rollout
        self.versions = versions if versions is not None else {}
        self.held = held if held is not None else {}
        self.trust = trust
        self._applied: dict[tuple[str, str, str, str], tuple[Json, Json]] = {}

    def current(self) -> Route:
        """The Route the live objects hold; RouterError when they are missing or unreadable."""
        live = []
        for obj in desired_objects(self.rollout, STABLE):
            meta = obj["metadata"]
            found = self.kube.get(
                kind_of(obj["apiVersion"], obj["kind"]), meta["namespace"], meta["name"]
            )
            if found is not None:
                live.append(found)
        return route_from_objects(self.rollout, live)

    def apply(self, route: Route) -> list[str]:
        """Make the objects hold ``route``; returns what changed (empty: nothing did)."""
        written: list[str] = []
        held: list[Json] = []
        desired = desired_objects(self.rollout, route)
        for want in desired:
            key = _key(want)
            done = self._applied.get(key) or (self.held.get(key) if self.trust else None)
            if done is not None and done[0] == want:
                held.append(done[1])
                continue
            stored = self.kube.apply(want) or want  # (an empty answer: the object as sent)
            self._applied[key] = self.held[key] = (want, stored)
            version = str((stored.get("metadata") or {}).get("resourceVersion") or "")
            before = self.versions.get(key)
            if version and version != before:
                self.versions[key] = version
                if before is not None:
                    written.append(f"wrote {want['kind']} {want['metadata']['name']}")
            held.append(stored)
        keys = {_key(want) for want in desired}
        gone = [applied for key, (applied, _) in self.held.items() if key not in keys]
        if gone:  # a route the rollout no longer lists (canary.traffic.gateway_api)
            written += self._delete_stale(gone)
        holds = route_from_objects(self.rollout, held)
        if holds != route:
            raise RouterError(
                f"the route objects hold {holds.model_dump(exclude_defaults=True)} after writing "
                f"{route.model_dump(exclude_defaults=True)}"
            )
        return written

    def repair(self, status: RolloutStatus, unknown: bool = False) -> list[str]:
        """Put back the Route ``status`` calls for if the objects departed from it.

        ``unknown``: the objects' versions are not known here (the first tick since this
        replica started or led): they are read first, so a put-back is reported as one."""
        route = expected_route(self.rollout, status)
        if route is None:
            return []
        if unknown:
            self._read_versions(desired_objects(self.rollout, route))
            self._delete_stale(self._labelled_routes())
        written = self.apply(route)
        if written:
            log.warning("%s: route objects drifted; repaired: %s", self.rollout.key, written)
        return written

    def _delete_stale(self, candidates: list[Json]) -> list[str]:
        """Delete the Gateway API routes among ``candidates`` that the rollout no longer lists
        (`canary.traffic.gateway_api.stale_routes`); no request when there are none."""
        deleted: list[str] = []
        for obj in stale_routes(self.rollout, candidates):
            meta = obj["metadata"]
            kind = kind_of(obj["apiVersion"], obj["kind"])
            self.kube.delete(kind, meta["namespace"], meta["name"])
            self.held.pop(_key(obj), None)
            self.versions.pop(_key(obj), None)
            deleted.append(f"deleted {obj['kind']} {meta['name']}")
        return deleted

    def _labelled_routes(self) -> list[Json]:
        """The Gateway API routes labelled as this rollout's (only for that provider: one list
        request a kind, on the first tick since the replica started or led)."""
        if self.rollout.spec.provider.gateway_api is None:
            return []
        namespace = Names.of(self.rollout).namespace
        found: list[Json] = []
        for kind in ROUTE_KINDS:
            try:
                listed = self.kube.list(
                    kind_of(ROUTE_API_VERSION, kind),
                    namespace,
                    label_selector=f"{ROLLOUT_LABEL}={self.rollout.metadata.name}",
                )
            except NotFoundError:
                continue  # the cluster does not serve the kind: none of it to delete
            except KubeError as exc:
                if exc.status != 403:
                    raise
                log.warning(
                    "%s: may not list %ss (%s): a route removed from the Rollout while the "
                    "controller was down is not deleted; grant 'list' (docs/controller.md)",
                    self.rollout.key,
                    kind,
                    exc.message,
                )
                continue
            found += listed.items
        return found

    def _read_versions(self, objects: list[Json]) -> None:
        for obj in objects:
            meta = obj["metadata"]
            kind = kind_of(obj["apiVersion"], obj["kind"])
            live = self.kube.read(kind, meta["namespace"], meta["name"])
            version = (live or {}).get("metadata", {}).get("resourceVersion")
            self.versions[_key(obj)] = str(version) if version else "absent"


def _key(obj: Json) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    return str(obj["apiVersion"]), str(obj["kind"]), str(meta["namespace"]), str(meta["name"])
