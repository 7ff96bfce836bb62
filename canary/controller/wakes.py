"""Which Rollouts tick, and which tick early: the controller's watch-to-scheduler wiring.

`Wakes.enqueue` is the one place a Rollout is handed to the scheduler ("this Rollout should be
ticked", at once when early); every listener below goes through it, as does gaining the
Lease. A new Rollout gets a job that ticks at once; a deleted one loses its job. Early ticks
come from:

- a change of a Rollout's spec (its generation) or its deletion; not a status write;
- a new RolloutCommand naming it;
- a ConfigMap or Secret its target references (a new revision starts at once);
- a change or deletion of one of its route objects by someone else (`canary.controller.
  route_watch`, which also marks it so that the tick applies every route object; the echoes
  of canary's own writes wake nobody);
- a change of its target or primary Deployment *in what a tick reads* (`tick_view`): the
  spec's generation and replicas, the revision canary recorded on a primary, whether its
  replicas are all ready (one wake when they become ready, not one per replica counted), a
  progress deadline; not a status heartbeat, and not the echo of the controller's own write
  (``own_write``: the tick that wrote it acted on it already; the next change of readiness it
  caused wakes the Rollout). An event that comes while the Rollout ticks, before that tick
  has recorded its write's answer, is asked again when the tick ends
  (`canary.controller.scheduling`: ``echo``).

Each wake names its reason (``rollout``, ``command``, ``config``, ``deployment``; the route
watch's ``route``) for ``canary_wakes_total`` and ``canary_ticks_total``.

The Rollouts of a Deployment are found by an index (target and primary by namespace and name),
and the Deployments that reference a ConfigMap or Secret by another (kept from the Deployment
events): neither scans the Rollouts.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from typing import Protocol

from canary.controller.kinds import CONFIGMAP, DEPLOYMENT, ROLLOUT, ROLLOUT_COMMAND, SECRET
from canary.controller.kube import Json
from canary.controller.watches import Cache, version_of
from canary.workload import referenced_configs, revision_on
from canary.workload.readiness import why_not_ready

DeploymentKey = tuple[str, str]
"""(namespace, name)."""
ConfigKey = tuple[str, str]
"""(kind, name) of a ConfigMap or Secret."""


class Scheduler(Protocol):
    """What the wiring needs of `canary.controller.scheduling.TickScheduler`."""

    def ensure(self, key: str, delay: float = 0.0) -> None: ...

    def trigger(
        self, key: str, reason: str = ..., echo: Callable[[], bool] | None = ...
    ) -> None: ...

    def remove(self, key: str) -> None: ...


class Wakes:
    """Listens to the caches and enqueues Rollouts on the scheduler (see the module)."""

    def __init__(
        self,
        scheduler: Callable[[], Scheduler],
        caches: Mapping[str, Cache],
        *,
        leading: Callable[[], bool],
        forget: Callable[[str, str], None],
        own_write: Callable[[str, str, str, str], bool] = lambda *_: False,
    ) -> None:
        """``scheduler``: the scheduler now (tests swap it); ``leading``: only a leader
        enqueues; ``forget(namespace, name)``: a Rollout was deleted; ``own_write(kind,
        namespace, name, resourceVersion)``: that version is the answer to a write of this
        controller."""
        self._scheduler = scheduler
        self.caches = caches
        self._leading = leading
        self._forget = forget
        self._own_write = own_write
        self._lock = threading.Lock()
        self._rollouts_of: dict[DeploymentKey, set[str]] = {}
        """Rollout keys by (namespace, Deployment name): their target and its primary."""
        self._deployments_of: dict[str, list[DeploymentKey]] = {}
        self._references: dict[DeploymentKey, tuple[object, frozenset[ConfigKey]]] = {}
        """What each Deployment's pod template references, and by which version of it."""
        self._referenced_by: dict[tuple[str, str, str], set[DeploymentKey]] = {}
        """(namespace, kind, name) of a ConfigMap or Secret -> the Deployments referencing it."""

    def listen(self) -> None:
        self.caches[ROLLOUT.kind].listen(self.rollout_changed)
        self.caches[DEPLOYMENT.kind].listen(self.deployment_changed)
        for kind in (CONFIGMAP, SECRET):
            self.caches[kind.kind].listen(self.config_changed)
        self.caches[ROLLOUT_COMMAND.kind].listen(self.command_changed)

    # --- the one place Rollouts are enqueued ---------------------------------------------------

    def enqueue(
        self,
        key: str,
        *,
        early: bool = False,
        reason: str = "change",
        echo: Callable[[], bool] | None = None,
    ) -> None:
        """This Rollout (``namespace/name``) should be ticked: a job for it, run at once when
        ``early`` (because of ``reason``: `canary.controller.scheduling` counts the wakes by
        it; ``echo``: see `TickScheduler.trigger`)."""
        scheduler = self._scheduler()
        scheduler.ensure(key)
        if early:
            scheduler.trigger(key, reason, echo)

    def enqueue_all(self) -> None:
        """Every Rollout in the cache (this replica gained the Lease)."""
        for namespace, name in self.caches[ROLLOUT.kind].keys():  # noqa: SIM118 (a Cache)
            self.enqueue(f"{namespace}/{name}")

    # --- listeners -----------------------------------------------------------------------------

    def rollout_changed(self, event: str, old: Json | None, new: Json | None) -> None:
        meta = (new or old or {}).get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        key = f"{namespace}/{name}"
        self._index(key, namespace, None if event == "DELETED" else new)
        if event == "DELETED":
            self._scheduler().remove(key)
            self._forget(namespace, name)
            return
        if not self._leading():
            return
        if event == "ADDED":
            self.enqueue(key)
        elif spec_or_deletion_changed(old, new):
            self.enqueue(key, early=True, reason="rollout")

    def command_changed(self, event: str, old: Json | None, new: Json | None) -> None:
        """A new RolloutCommand: its Rollout ticks at once."""
        if event != "ADDED" or new is None or not self._leading():
            return
        meta = new.get("metadata") or {}
        rollout = (new.get("spec") or {}).get("rollout")
        namespace = str(meta.get("namespace"))
        if isinstance(rollout, str) and self.caches[ROLLOUT.kind].get(namespace, rollout):
            self.enqueue(f"{namespace}/{rollout}", early=True, reason="command")

    def deployment_changed(self, event: str, old: Json | None, new: Json | None) -> None:
        meta = (new or old or {}).get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        self._index_references((namespace, name), None if event == "DELETED" else new)
        if not self._leading():
            return
        echo = None
        if new is not None:
            if event == "MODIFIED" and tick_view(old) == tick_view(new):
                return  # nothing a tick reads changed
            version = version_of(new)
            if self._own_write(DEPLOYMENT.kind, namespace, name, version):
                return  # the tick that wrote it (created, replaced, scaled) acted on it
            # the echo of a write whose answer the tick has not recorded yet: known once it
            # has (the scheduler asks when that tick ends)
            echo = functools.partial(self._own_write, DEPLOYMENT.kind, namespace, name, version)
        with self._lock:
            keys = sorted(self._rollouts_of.get((namespace, name), ()))
        for key in keys:
            self.enqueue(key, early=True, reason="deployment", echo=echo)

    def config_changed(self, event: str, old: Json | None, new: Json | None) -> None:
        """A ConfigMap or Secret a target references changed: its Rollouts tick at once (a
        new revision starts without waiting for the interval)."""
        if not self._leading():
            return
        obj = new or old or {}
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        for key in self.referencing(str(obj.get("kind")), namespace, name):
            self.enqueue(key, early=True, reason="config")

    # --- the index -----------------------------------------------------------------------------

    def _index(self, key: str, namespace: str, rollout: Json | None) -> None:
        """Remember which Deployments ``key`` runs (none once deleted)."""
        target = ((rollout or {}).get("spec") or {}).get("targetRef") or {}
        name = target.get("name") if isinstance(target, dict) else None
        wanted = [(namespace, str(name)), (namespace, f"{name}-primary")] if name else []
        with self._lock:
            before = self._deployments_of.pop(key, [])
            if before == wanted:
                self._deployments_of[key] = wanted
                return
            for deployment in before:
                keys = self._rollouts_of.get(deployment, set())
                keys.discard(key)
                if not keys:
                    self._rollouts_of.pop(deployment, None)
            for deployment in wanted:
                self._rollouts_of.setdefault(deployment, set()).add(key)
            if wanted:
                self._deployments_of[key] = wanted

    def referencing(self, kind: str, namespace: str, name: str) -> list[str]:
        """The Rollouts whose target (or primary) references ConfigMap or Secret ``name`` of
        ``namespace``: a lookup in the index the Deployment events keep."""
        with self._lock:
            deployments = self._referenced_by.get((namespace, kind, name), set())
            return sorted({key for d in deployments for key in self._rollouts_of.get(d, ())})

    def _index_references(self, deployment: DeploymentKey, obj: Json | None) -> None:
        """Keep what ``deployment`` references (nothing once deleted); its pod template is read
        again only when its generation (a real API server bumps it with the spec) changed."""
        meta = (obj or {}).get("metadata") or {}
        version = meta.get("generation") or version_of(obj) if obj is not None else None
        with self._lock:
            known = self._references.get(deployment)
        if obj is not None and known is not None and known[0] == version:
            return
        refs: frozenset[ConfigKey] = frozenset()
        if obj is not None:
            configmaps, secrets = referenced_configs(obj)
            refs = frozenset([(CONFIGMAP.kind, n) for n in configmaps])
            refs |= frozenset((SECRET.kind, n) for n in secrets)
        namespace = deployment[0]
        with self._lock:
            _, before = self._references.pop(deployment, (None, frozenset()))
            for kind, name in before - refs:
                holders = self._referenced_by.get((namespace, kind, name), set())
                holders.discard(deployment)
                if not holders:
                    self._referenced_by.pop((namespace, kind, name), None)
            for kind, name in refs - before:
                self._referenced_by.setdefault((namespace, kind, name), set()).add(deployment)
            if obj is not None:
                self._references[deployment] = (version, refs)


def tick_view(obj: Json | None) -> tuple[object, ...]:
    """What of a Deployment a tick reads: its spec's generation (a new template, other
    replicas) and replicas, the revision canary recorded on a primary, whether all its
    replicas run the current template and are available (`why_not_ready`: the readiness the
    engine sees, not the counts on the way there), and an exceeded progress deadline."""
    obj = obj or {}
    meta, spec, status = (obj.get(part) or {} for part in ("metadata", "spec", "status"))
    deadline = any(
        isinstance(c, dict)
        and c.get("type") == "Progressing"
        and c.get("reason") == "ProgressDeadlineExceeded"
        for c in status.get("conditions") or []
    )
    return (
        meta.get("generation"),
        revision_on(obj),
        spec.get("replicas"),
        why_not_ready(obj) is None,
        deadline,
    )


def spec_or_deletion_changed(old: Json | None, new: Json | None) -> bool:
    """A change of a Rollout worth an early tick: spec (generation), deletion; not our status.
    (Commands are objects of their own: `Wakes.command_changed`.)"""
    before, after = (old or {}).get("metadata") or {}, (new or {}).get("metadata") or {}
    if before.get("generation") != after.get("generation"):
        return True
    return bool(before.get("deletionTimestamp") != after.get("deletionTimestamp"))
