"""What every replica watches into caches (so that a new leader starts warm): Rollouts,
Deployments, the ConfigMaps and Secrets of pod templates (metadata only), AnalysisPolicies,
ClusterAnalysisPolicies, NotificationChannels and RolloutCommands; a reflector per kind and
namespace (`canary.controller.watches`). The route objects are watched apart
(`canary.controller.route_watch`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from canary.controller.kinds import (
    ANALYSIS_POLICY,
    CLUSTER_ANALYSIS_POLICY,
    CONFIGMAP,
    DEPLOYMENT,
    NOTIFICATION_CHANNEL,
    ROLLOUT,
    ROLLOUT_COMMAND,
    SECRET,
    Kind,
)
from canary.controller.kube import Kube
from canary.controller.watches import Cache, Reflector, metadata_only

WATCHED: tuple[Kind, ...] = (
    ROLLOUT,
    DEPLOYMENT,
    CONFIGMAP,
    SECRET,
    ANALYSIS_POLICY,
    CLUSTER_ANALYSIS_POLICY,
    NOTIFICATION_CHANNEL,
    ROLLOUT_COMMAND,
)
METADATA_ONLY = (CONFIGMAP, SECRET)
"""Kinds cached without their data: a tick needs their labels and versions, not their
contents."""


class WatchSet:
    """A cache for each watched kind, and the reflectors that fill them."""

    def __init__(
        self,
        kube: Kube,
        namespaces: Sequence[str],
        *,
        timeout_seconds: int,
        on_relist: Callable[[Kind], Callable[[], None]],
    ) -> None:
        self.namespaces = tuple(namespaces)
        self.caches = {
            kind.kind: Cache(kind, metadata_only if kind in METADATA_ONLY else None)
            for kind in WATCHED
        }
        self.reflectors = [
            Reflector(
                kube,
                self.caches[kind.kind],
                namespace,
                timeout_seconds=timeout_seconds,
                on_relist=on_relist(kind),
            )
            for kind in WATCHED
            for namespace in self._namespaces(kind)
        ]

    def _namespaces(self, kind: Kind) -> list[str | None]:
        if not kind.namespaced or not self.namespaces:
            return [None]
        return list(self.namespaces)

    def synced(self, kind: Kind, namespace: str) -> bool:
        """The cache of ``kind`` holds a full list of ``namespace``."""
        covering = [
            r for r in self.reflectors if r.kind == kind and r.namespace in (None, namespace)
        ]
        return bool(covering) and all(r.synced.is_set() for r in covering)

    def wait_synced(self, timeout: float) -> bool:
        return all(r.synced.wait(timeout) for r in self.reflectors)

    def not_synced(self) -> list[str]:
        """The kinds (plural) of the reflectors that have not listed yet, sorted, once each."""
        return sorted({r.kind.plural for r in self.reflectors if not r.synced.is_set()})
