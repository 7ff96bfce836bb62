"""Policies that select the target's pods, kept applying to the primary's.

The primary's pods carry the target's selector labels with ``-primary`` on each value
(`primary_labels`), so an object that selects pods by those labels -- a NetworkPolicy, an Istio
AuthorizationPolicy or PeerAuthentication, a Linkerd Server, a PodDisruptionBudget, a
PodMonitor -- selects only the canary once the primary serves. For each such object canary
keeps a managed copy ``<name>-primary``: the same spec, its selector rewritten to the primary's
labels, owned by the Rollout (deleted with it) and labelled ``canary.dev/rollout``. A copy is
made only when the original selects the target's pods and not the primary's (a selector on
other labels, or an empty one, already covers both).

Pure functions: the controller lists the kinds (`POLICY_KINDS`), writes the copies
(server-side apply) and deletes the ones no longer wanted.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from canary.workload.names import PRIMARY_SUFFIX, Owner, meta, name_of
from canary.workload.primary import primary_labels, selector_labels

Json = dict[str, Any]
SOURCE_ANNOTATION = "canary.dev/copy-of"
"""On a copy: the name of the policy it copies."""


@dataclass(frozen=True)
class PolicyKind:
    api_version: str
    kind: str
    plural: str
    selector: tuple[str, ...]
    """Where the pod selector is (a LabelSelector, or Istio's ``{matchLabels}``)."""


POLICY_KINDS: tuple[PolicyKind, ...] = (
    PolicyKind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", ("spec", "podSelector")),
    PolicyKind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", ("spec", "selector")),
    PolicyKind(
        "security.istio.io/v1", "AuthorizationPolicy", "authorizationpolicies", ("spec", "selector")
    ),
    PolicyKind(
        "security.istio.io/v1", "PeerAuthentication", "peerauthentications", ("spec", "selector")
    ),
    PolicyKind("policy.linkerd.io/v1beta3", "Server", "servers", ("spec", "podSelector")),
    PolicyKind("monitoring.coreos.com/v1", "PodMonitor", "podmonitors", ("spec", "selector")),
)


def selector_of(obj: Json, kind: PolicyKind) -> Json | None:
    node: Any = obj
    for part in kind.selector:
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def selects(selector: Json | None, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels, matchExpressions) against pod labels; None or empty
    selects every pod (as NetworkPolicy's ``podSelector: {}``)."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for rule in selector.get("matchExpressions") or []:
        key, op, values = rule.get("key"), rule.get("operator"), rule.get("values") or []
        present = key in labels
        if op == "In" and (not present or labels[key] not in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def pod_labels(target: Json) -> dict[str, str]:
    template = (target.get("spec") or {}).get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def primary_pod_labels(target: Json) -> dict[str, str]:
    return {**pod_labels(target), **primary_labels(target)}


def needs_copy(obj: Json, kind: PolicyKind, target: Json) -> bool:
    """``obj`` selects the target's pods but not the primary's."""
    if SOURCE_ANNOTATION in (meta(obj).get("annotations") or {}):
        return False  # a copy itself
    selector = selector_of(obj, kind)
    return selects(selector, pod_labels(target)) and not selects(
        selector, primary_pod_labels(target)
    )


def _rewritten(selector: Json, target: Json) -> Json:
    canary_values = selector_labels(target)
    primary_values = primary_labels(target)
    out = copy.deepcopy(selector)
    labels = out.get("matchLabels") or {}
    for key, value in labels.items():
        if canary_values.get(key) == value:
            labels[key] = primary_values[key]
    for rule in out.get("matchExpressions") or []:
        key = rule.get("key")
        if key in canary_values and rule.get("operator") in ("In", "NotIn"):
            values = list(rule.get("values") or [])
            if canary_values[key] in values:
                values.append(primary_values[key])
            rule["values"] = values
    return out


def copy_name(obj: Json) -> str:
    return f"{name_of(obj)}{PRIMARY_SUFFIX}"


def primary_copy(obj: Json, kind: PolicyKind, target: Json, owner: Owner) -> Json:
    """The managed copy of ``obj`` selecting the primary's pods."""
    body = {k: copy.deepcopy(v) for k, v in obj.items() if k not in ("metadata", "status")}
    body["apiVersion"], body["kind"] = kind.api_version, kind.kind
    node = body
    for part in kind.selector[:-1]:
        node = node.setdefault(part, {})
    node[kind.selector[-1]] = _rewritten(selector_of(obj, kind) or {}, target)
    metadata = owner.metadata(copy_name(obj))
    metadata.setdefault("annotations", {})[SOURCE_ANNOTATION] = name_of(obj)
    body["metadata"] = metadata
    return body
