"""The workload side of a tick: observing the target and the primary, applying the engine's
workload actions, with the pure functions of `canary.workload` doing the thinking.

- `observe` reads the target Deployment, the ConfigMaps and Secrets its template references
  (its revision), ``<target>-primary``, and the target's HorizontalPodAutoscaler when the
  Rollout names one (``spec.autoscalerRef``, checked: `AutoscalerError`): the engine's
  `WorkloadState`.
- `WorkloadActions` applies InitializePrimary (the primary, the configuration copies, the three
  Services, with the provider's annotations on ``<target>``: Linkerd's circuit breaker; with
  an HPA, the primary's replicas left to ``<hpa>-primary``, created from the target's HPA),
  ScaleCanaryUp/Down (the target's scale subresource: the primary's replicas, or the HPA's
  ``minReplicas``), PromoteCanary (copies of the canary's configuration, then the primary's
  template; stale copies deleted; ``<hpa>-primary`` takes the target's HPA's spec again) and
  RestorePrimary (the stable template kept in the primary's annotations);
  `WorkloadActions.sync_services` keeps the Services in line with the spec once the primary
  exists (a changed port, a circuit breaker added, changed or removed), when the spec or the
  primary changed (`ServiceSync`).

Every write is skipped when the live object already is as wanted, so repeated actions write
nothing; replacing an object sends the resourceVersion it was read at (a 409 fails the tick,
which is retried from fresh reads).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from canary.controller.kinds import (
    CONFIGMAP,
    DEPLOYMENT,
    HORIZONTAL_POD_AUTOSCALER,
    SECRET,
    SERVICE,
    kind_of,
)
from canary.controller.kube import Json, Kube
from canary.engine.observations import WorkloadState
from canary.model.provider import ProviderName
from canary.model.rollout import Rollout
from canary.traffic import linkerd
from canary.traffic.mesh import differences
from canary.workload import (
    Owner,
    WorkloadError,
    autoscaler_min_replicas,
    canary_ready,
    canary_replicas,
    checked_autoscaler,
    primary_autoscaler,
    primary_autoscaler_name,
    primary_configs,
    primary_deployment,
    primary_ready,
    promote,
    referenced_configs,
    restore,
    revision_of,
    revision_on,
    service_update,
    services,
    stable_of,
    stale_configs,
)
from canary.workload.names import ROLLOUT_LABEL, name_of

log = logging.getLogger("canary.controller.workloads")


@dataclass
class Observed:
    """What a tick saw of the workload."""

    target: Json | None
    primary: Json | None
    configmaps: list[Json] = field(default_factory=list)
    secrets: list[Json] = field(default_factory=list)
    revision: str | None = None
    autoscaler: Json | None = None
    """The target's HPA (``spec.autoscalerRef``), checked; None when the Rollout names none."""

    @property
    def state(self) -> WorkloadState:
        primary = self.primary
        return WorkloadState(
            target_revision=self.revision,
            canary_ready=self.target is not None and canary_ready(self.target),
            primary_ready=primary is not None and primary_ready(primary, None),
            primary_revision=revision_on(primary) if primary is not None else None,
        )

    @property
    def target_replicas(self) -> int:
        if self.target is None:
            return 0
        return int((self.target.get("spec") or {}).get("replicas", 1) or 0)


def namespace_of(rollout: Rollout) -> str:
    return rollout.metadata.namespace or "default"


def observe(kube: Kube, rollout: Rollout, *, autoscaler: bool = True) -> Observed:
    """Read the target, what it references, the primary and (with ``autoscaler``) the HPA
    the Rollout names; raises AutoscalerError when that HPA is missing or scales something
    else, MissingConfigError when the template needs a ConfigMap or Secret that does not
    exist."""
    namespace = namespace_of(rollout)
    hpa = observe_autoscaler(kube, rollout) if autoscaler else None
    name = rollout.spec.target_ref.name
    target = kube.get(DEPLOYMENT, namespace, name)
    primary = kube.get(DEPLOYMENT, namespace, f"{name}-primary")
    if target is None:
        return Observed(target=None, primary=primary, autoscaler=hpa)
    configmap_names, secret_names = referenced_configs(target)
    configmaps = [
        obj for n in configmap_names if (obj := kube.get(CONFIGMAP, namespace, n)) is not None
    ]
    secrets = [obj for n in secret_names if (obj := kube.get(SECRET, namespace, n)) is not None]
    revision = revision_of(target, configmaps, secrets)
    return Observed(target, primary, configmaps, secrets, revision, hpa)


def observe_autoscaler(kube: Kube, rollout: Rollout) -> Json | None:
    """The HPA ``spec.autoscalerRef`` names (read from the API server), checked against the
    target (`checked_autoscaler`: AutoscalerError when missing or scaling something else);
    None, without a request, when the Rollout names none."""
    ref = rollout.spec.autoscaler_ref
    if ref is None:
        return None
    hpa = kube.get(HORIZONTAL_POD_AUTOSCALER, namespace_of(rollout), ref.name)
    return checked_autoscaler(rollout, hpa)


def upsert(
    kube: Kube,
    desired: Json,
    live: Json | None = None,
    *,
    read: bool = True,
    exact_annotations: bool = False,
) -> bool:
    """Create ``desired``, or replace the live object when it departs from it; True when
    something was written. ``live`` is read when not given (and ``read``). Fields only the
    live object has are not a departure (the server adds them), except, with
    ``exact_annotations``, annotations: ``desired`` then removes those it lacks."""
    if live is None and read:
        meta = desired["metadata"]
        kind = kind_of(desired["apiVersion"], desired["kind"])
        live = kube.get(kind, meta["namespace"], meta["name"])
    if live is None:
        kube.create(desired)
        return True
    same_annotations = not exact_annotations or _annotations(desired) == _annotations(live)
    if same_annotations and not differences(_comparable(desired), live):
        return False
    body = dict(desired)
    body["metadata"] = {
        **desired["metadata"],
        "resourceVersion": (live.get("metadata") or {}).get("resourceVersion"),
    }
    kube.replace(body)
    return True


def _annotations(obj: Json) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def provider_service_annotations(rollout: Rollout) -> dict[str, str]:
    """What the traffic provider reads from Service ``<target>``: Linkerd's failure accrual
    (its circuit breaker); nothing for the others."""
    if rollout.spec.provider.name is ProviderName.LINKERD:
        return linkerd.service_annotations(rollout)
    return {}


def _comparable(obj: Json) -> Json:
    """What of a desired object must match the live one (not its resourceVersion)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}


def services_signature(rollout: Rollout, observed: Observed) -> str | None:
    """What the Services are kept in line with: the Rollout (its uid and generation), the
    Services it wants from the target (ports, selectors from the target's labels, the
    provider's annotations), and the primary (its uid: a primary made again); None while the
    target or the primary is missing. (Not the primary's generation: a promotion changes its
    pod template, not what the Services select.)"""
    target, primary = observed.target, observed.primary
    if target is None or primary is None:
        return None
    wanted = services(rollout, target, provider_service_annotations(rollout))
    return json.dumps(
        [
            rollout.metadata.uid,
            rollout.metadata.generation,
            (primary.get("metadata") or {}).get("uid"),
            wanted,
        ],
        sort_keys=True,
        default=str,
    )


class ServiceSync:
    """When a Rollout's Services are put in line with the spec: when `services_signature`
    changed since they last were (a new spec, a primary made again, other labels on the
    target),
    the first time after the controller starts or gains the Lease, and every ``resync``
    seconds besides (a Service someone changed by hand is put back by then). Not at every
    tick: that cost three GETs a tick for what changes with the spec. In memory, per
    Rollout."""

    def __init__(self, resync: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.resync = resync
        self.clock = clock
        self._lock = threading.Lock()
        self._synced: dict[str, tuple[str, float]] = {}

    def due(self, key: str, signature: str) -> bool:
        with self._lock:
            last = self._synced.get(key)
        return last is None or last[0] != signature or self.clock() - last[1] >= self.resync

    def done(self, key: str, signature: str) -> None:
        with self._lock:
            self._synced[key] = (signature, self.clock())

    def forget(self, key: str | None = None) -> None:
        """Sync ``key`` (every Rollout when None) at its next tick."""
        with self._lock:
            if key is None:
                self._synced.clear()
            else:
                self._synced.pop(key, None)


class WorkloadActions:
    """Applies the engine's workload actions for one Rollout, from one tick's observation."""

    def __init__(self, kube: Kube, rollout: Rollout, observed: Observed) -> None:
        self.kube = kube
        self.rollout = rollout
        self.observed = observed
        self.namespace = namespace_of(rollout)
        self.owner = Owner.of(rollout)

    def _target(self) -> Json:
        if self.observed.target is None:
            raise WorkloadError(
                f"Deployment '{self.rollout.spec.target_ref.name}' does not exist (any more)"
            )
        return self.observed.target

    def initialize(self, revision: str) -> list[str]:
        """The primary, its configuration copies and the Services, from the target."""
        target = self._target()
        done: list[str] = []
        copies = primary_configs(
            target,
            self.observed.configmaps,
            self.observed.secrets,
            owner=self.owner,
            revision=revision,
        )
        for copy in [*copies.configmaps, *copies.secrets]:
            if upsert(self.kube, copy):
                done.append(f"wrote {copy['kind']} {copy['metadata']['name']}")
        primary = primary_deployment(
            target,
            self.observed.primary,
            owner=self.owner,
            revision=revision,
            hpa_managed=self.observed.autoscaler is not None,
        )
        if upsert(self.kube, primary, self.observed.primary, read=False):
            done.append(f"wrote Deployment {primary['metadata']['name']} at {revision}")
        done += self.ensure_primary_autoscaler()
        done += self.ensure_services(target)
        return done

    def ensure_primary_autoscaler(self) -> list[str]:
        """With an HPA named: ``<hpa>-primary``, the target's HPA's spec scaling the primary,
        created or replaced when its spec (or canary's metadata on it) differs."""
        hpa = self.observed.autoscaler
        if hpa is None:
            return []
        name = primary_autoscaler_name(name_of(hpa))
        live = self.kube.get(HORIZONTAL_POD_AUTOSCALER, self.namespace, name)
        desired = primary_autoscaler(
            hpa, live, owner=self.owner, target=self.rollout.spec.target_ref.name
        )
        if live is None:
            self.kube.create(desired)
        elif live.get("spec") == desired["spec"] and not differences(_comparable(desired), live):
            return []
        else:  # the spec exactly (a field removed from the HPA goes from the copy too)
            self.kube.replace(desired)
        return [f"wrote HorizontalPodAutoscaler {name}"]

    def ensure_services(self, target: Json) -> list[str]:
        """The three Services as the spec wants them (port, selectors, the provider's
        annotations on ``<target>``): created, or updated keeping what others set on them."""
        done: list[str] = []
        wanted = provider_service_annotations(self.rollout)
        for desired in services(self.rollout, target, wanted):
            name = desired["metadata"]["name"]
            live = self.kube.get(SERVICE, self.namespace, name)
            body = desired if live is None else service_update(live, desired)
            if upsert(self.kube, body, live, read=False, exact_annotations=True):
                done.append(f"wrote Service {name}")
        return done

    def sync_services(self) -> list[str]:
        """Once the primary exists: the Services put back in line with the spec (a changed
        port, Linkerd's circuit breaker added, changed or removed). The reconciler calls it when
        `services_signature` changed (`ServiceSync`)."""
        if self.observed.target is None or self.observed.primary is None:
            return []
        return self.ensure_services(self.observed.target)

    def scale_target(self, replicas: int) -> list[str]:
        if self.observed.target is None:
            return []
        if self.observed.target_replicas == replicas:
            return []
        name = self.rollout.spec.target_ref.name
        self.kube.scale(DEPLOYMENT, self.namespace, name, replicas)
        target = self.observed.target
        self.observed.target = {
            **target,
            "spec": {**(target.get("spec") or {}), "replicas": replicas},
        }
        return [f"scaled Deployment {name} to {replicas}"]

    def scale_up(self) -> list[str]:
        """The canary's starting size: the HPA's minReplicas when one is named (it scales the
        canary from there), else the primary's replicas."""
        hpa = self.observed.autoscaler
        if hpa is not None:
            return self.scale_target(autoscaler_min_replicas(hpa))
        return self.scale_target(canary_replicas(self.observed.primary))

    def promote(self, revision: str) -> list[str]:
        """The canary's template (and configuration copies) into the primary."""
        target = self._target()
        primary = self.observed.primary
        if primary is None:
            raise WorkloadError(f"'{self.rollout.spec.target_ref.name}-primary' is missing")
        if self.observed.revision != revision:
            raise WorkloadError(
                f"the target runs revision {self.observed.revision}, not {revision} that was "
                "judged: not promoted"
            )
        copies = primary_configs(
            target,
            self.observed.configmaps,
            self.observed.secrets,
            owner=self.owner,
            revision=revision,
        )
        done: list[str] = []
        for copy in [*copies.configmaps, *copies.secrets]:
            if upsert(self.kube, copy):
                done.append(f"wrote {copy['kind']} {copy['metadata']['name']}")
        promoted = promote(primary, target, revision)
        if upsert(self.kube, promoted, primary, read=False):
            done.append(f"promoted revision {revision} into {promoted['metadata']['name']}")
        done += self.ensure_primary_autoscaler()  # new bounds ship with the version
        done += self._delete_stale(promoted)
        return done

    def _delete_stale(self, primary: Json) -> list[str]:
        labels = {ROLLOUT_LABEL: self.rollout.metadata.name}
        # from the watch caches: a copy they have not seen yet is deleted at the next promotion
        copies = [
            *self.kube.list_labelled(CONFIGMAP, self.namespace, labels),
            *self.kube.list_labelled(SECRET, self.namespace, labels),
        ]
        done = []
        for ref in stale_configs(primary, copies):
            kind = CONFIGMAP if ref.kind == "ConfigMap" else SECRET
            if self.kube.delete(kind, ref.namespace, ref.name):
                done.append(f"deleted stale {ref.kind} {ref.name}")
        return done

    def restore(self) -> list[str]:
        """The primary back on the template it ran before the last promotion."""
        primary = self.observed.primary
        if primary is None:
            raise WorkloadError(f"'{self.rollout.spec.target_ref.name}-primary' is missing")
        stable = stable_of(primary)
        if stable is None:
            raise WorkloadError("the primary has no stable template recorded: nothing to restore")
        restored = restore(primary, stable.template, stable.revision)
        if upsert(self.kube, restored, primary, read=False):
            return [f"restored the primary to revision {stable.revision}"]
        return []
