"""The Rollouts that use a policy: woken when it changes, so that fixing (or breaking) a policy
is acted on at once, as fixing a Rollout is, not at the invalid Rollout's next look a minute
later.

A Rollout uses an AnalysisPolicy its ``spec.analysis.policies`` names in its own namespace, a
ClusterAnalysisPolicy it names, or (naming none) the ClusterAnalysisPolicy of its provider's
default (a cluster's own ``istio`` replaces the built-in). Found from the Rollout cache as
stored (a Rollout the model refuses is read as far as it goes): one pass over the Rollouts of
the policy's namespace, or of all for a cluster policy, per policy version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from canary.analysis.policies import DEFAULT_POLICY
from canary.controller.kinds import ANALYSIS_POLICY, CLUSTER_ANALYSIS_POLICY, ROLLOUT, Kind
from canary.controller.kube import Json
from canary.controller.wakes import Wakes
from canary.controller.watches import Cache, Listener

_DEFAULTS = {provider.value: name for provider, name in DEFAULT_POLICY.items()}


@dataclass
class PolicyUsers:
    """Listens to the policy caches; a leader enqueues the Rollouts using a changed policy."""

    caches: Mapping[str, Cache]
    wakes: Wakes
    leading: Callable[[], bool]

    def listen(self) -> PolicyUsers:
        for kind in (ANALYSIS_POLICY, CLUSTER_ANALYSIS_POLICY):
            self.caches[kind.kind].listen(self.changed(kind))
        return self

    def changed(self, kind: Kind) -> Listener:
        """A new version of a policy of ``kind``, or its deletion: its Rollouts tick at once."""

        def listener(event: str, old: Json | None, new: Json | None) -> None:
            policy = new or old
            if policy is None or not self.leading():
                return
            for key in rollouts_using(kind, policy, self.caches[ROLLOUT.kind].items()):
                self.wakes.enqueue(key, early=True)

        return listener


def rollouts_using(kind: Kind, policy: Json, rollouts: Iterable[Json]) -> list[str]:
    """The keys (``namespace/name``) of ``rollouts`` that use ``policy`` (of ``kind``)."""
    meta = policy.get("metadata") or {}
    name, namespace = str(meta.get("name")), str(meta.get("namespace") or "")
    cluster = kind == CLUSTER_ANALYSIS_POLICY
    found = []
    for rollout in rollouts:
        rollout_meta = rollout.get("metadata") or {}
        if not cluster and rollout_meta.get("namespace") != namespace:
            continue
        if _uses(rollout, kind.kind, name):
            found.append(f"{rollout_meta.get('namespace')}/{rollout_meta.get('name')}")
    return found


def _uses(rollout: Json, kind: str, name: str) -> bool:
    spec = rollout.get("spec") or {}
    analysis = spec.get("analysis") or {}
    refs = analysis.get("policies") if isinstance(analysis, dict) else None
    if isinstance(refs, list) and refs:
        return any(
            isinstance(ref, dict)
            and ref.get("name") == name
            and (ref.get("kind") or CLUSTER_ANALYSIS_POLICY.kind) == kind
            for ref in refs
        )
    if kind == ANALYSIS_POLICY.kind:
        return False
    provider = (spec.get("provider") or {}).get("name")
    return _DEFAULTS.get(str(provider)) == name
