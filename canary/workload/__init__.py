"""Workloads in Flagger's model, as pure functions on Kubernetes objects (plain dicts).

The team owns Deployment ``app`` (the canary); canary keeps ``app-primary`` (the stable
version), Services ``app``, ``app-primary`` and ``app-canary``, and per revision copies of the
configuration the pod template references. The controller fetches objects, calls these
functions and writes what they return; nothing here talks to the API server.
docs/workload.md describes names, labels, revisions, promotion and deletion.
"""

from canary.workload.autoscaler import (
    AutoscalerError,
    autoscaler_min_replicas,
    checked_autoscaler,
    primary_autoscaler,
    primary_autoscaler_name,
)
from canary.workload.cleanup import Cleanup, cleanup, finalizer_patch, is_deleting
from canary.workload.names import (
    FINALIZER,
    MissingConfigError,
    ObjectRef,
    Owner,
    WorkloadError,
)
from canary.workload.primary import (
    PrimaryConfigs,
    Stable,
    primary_configs,
    primary_deployment,
    primary_labels,
    primary_template,
    promote,
    restore,
    revision_on,
    stable_of,
    stale_configs,
)
from canary.workload.readiness import (
    canary_ready,
    canary_replicas,
    primary_ready,
    scale,
    why_not_ready,
)
from canary.workload.refs import ConfigRefs, config_refs, referenced_configs
from canary.workload.revision import normalise_template, revision_of
from canary.workload.services import (
    managed_annotations,
    service_update,
    services,
    with_annotations,
)

__all__ = [
    "FINALIZER",
    "AutoscalerError",
    "Cleanup",
    "ConfigRefs",
    "MissingConfigError",
    "ObjectRef",
    "Owner",
    "PrimaryConfigs",
    "Stable",
    "WorkloadError",
    "autoscaler_min_replicas",
    "canary_ready",
    "canary_replicas",
    "checked_autoscaler",
    "cleanup",
    "config_refs",
    "finalizer_patch",
    "is_deleting",
    "managed_annotations",
    "normalise_template",
    "primary_autoscaler",
    "primary_autoscaler_name",
    "primary_configs",
    "primary_deployment",
    "primary_labels",
    "primary_ready",
    "primary_template",
    "promote",
    "referenced_configs",
    "restore",
    "revision_of",
    "revision_on",
    "scale",
    "service_update",
    "services",
    "stable_of",
    "stale_configs",
    "why_not_ready",
    "with_annotations",
]
