"""The resources the controller reads and writes: API version, kind, plural, scope.

`kube.Kube` sends every kind to its REST path (`canary.controller.rest.path_of`: the API
version, the plural, the scope); ``api`` and ``snake`` name the official client's typed API
and method for a built-in kind, for code that uses those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from canary.model.rollout import API_VERSION as CANARY_API_VERSION

ApiName = Literal["core", "apps", "autoscaling", "coordination", "custom"]


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    api: ApiName
    snake: str = ""
    """The typed client's name of a built-in kind (read_namespaced_``config_map``)."""
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    def __str__(self) -> str:
        return f"{self.kind}.{self.group or 'core'}"


DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments", "apps", "deployment")
SERVICE = Kind("v1", "Service", "services", "core", "service")
CONFIGMAP = Kind("v1", "ConfigMap", "configmaps", "core", "config_map")
SECRET = Kind("v1", "Secret", "secrets", "core", "secret")
EVENT = Kind("v1", "Event", "events", "core", "event")
LEASE = Kind("coordination.k8s.io/v1", "Lease", "leases", "coordination", "lease")
HORIZONTAL_POD_AUTOSCALER = Kind(
    "autoscaling/v2",
    "HorizontalPodAutoscaler",
    "horizontalpodautoscalers",
    "autoscaling",
    "horizontal_pod_autoscaler",
)

ROLLOUT = Kind(CANARY_API_VERSION, "Rollout", "rollouts", "custom")
ANALYSIS_POLICY = Kind(CANARY_API_VERSION, "AnalysisPolicy", "analysispolicies", "custom")
CLUSTER_ANALYSIS_POLICY = Kind(
    CANARY_API_VERSION,
    "ClusterAnalysisPolicy",
    "clusteranalysispolicies",
    "custom",
    namespaced=False,
)
NOTIFICATION_CHANNEL = Kind(
    CANARY_API_VERSION, "NotificationChannel", "notificationchannels", "custom"
)
ROLLOUT_COMMAND = Kind(CANARY_API_VERSION, "RolloutCommand", "rolloutcommands", "custom")

KNOWN: tuple[Kind, ...] = (
    DEPLOYMENT,
    SERVICE,
    CONFIGMAP,
    SECRET,
    EVENT,
    LEASE,
    HORIZONTAL_POD_AUTOSCALER,
    ROLLOUT,
    ANALYSIS_POLICY,
    CLUSTER_ANALYSIS_POLICY,
    NOTIFICATION_CHANNEL,
    ROLLOUT_COMMAND,
)
_BY_KEY = {(k.api_version, k.kind): k for k in KNOWN}


def plural_of(kind: str) -> str:
    """The resource name Kubernetes derives from a kind (VirtualService -> virtualservices)."""
    lower = kind.lower()
    if lower.endswith("y") and lower[-2:-1] not in "aeiou":
        return lower[:-1] + "ies"
    if lower.endswith(("s", "x", "ch", "sh")):
        return lower + "es"
    return lower + "s"


def kind_of(api_version: str, kind: str) -> Kind:
    """A known kind, or a namespaced custom resource (the mesh routes: VirtualService,
    DestinationRule, HTTPRoute, TrafficSplit) whose plural follows Kubernetes' rule."""
    known = _BY_KEY.get((api_version, kind))
    if known is not None:
        return known
    if "/" not in api_version:
        raise ValueError(f"{kind} of {api_version}: a core kind the controller does not use")
    return Kind(api_version, kind, plural_of(kind), "custom")
