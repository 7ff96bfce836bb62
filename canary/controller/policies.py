"""Keeping the policies that select a target's pods applying to its primary (the copies of
`canary.workload.policies`): listed, copied by server-side apply, stale copies deleted.

Run with the Services' sync (when the spec or the primary changed, after a restart or a Lease
change, and every 5 minutes). A kind the cluster does not serve (no Istio, no Linkerd, no
Prometheus operator) or the controller may not list is skipped.
"""

from __future__ import annotations

import logging

from canary.controller.kinds import kind_of
from canary.controller.kube import Json, Kube, KubeError
from canary.model.rollout import Rollout
from canary.workload.names import ROLLOUT_LABEL, Owner, meta, name_of
from canary.workload.policies import (
    POLICY_KINDS,
    SOURCE_ANNOTATION,
    PolicyKind,
    copy_name,
    needs_copy,
    primary_copy,
)

log = logging.getLogger("canary.controller.policies")
SKIPPED_STATUSES = (403, 404)


def sync_policies(kube: Kube, rollout: Rollout, target: Json) -> list[str]:
    """Every policy kind: copies for the policies that select the target's pods only, and
    the Rollout's copies that no policy calls for any more deleted; returns what was done."""
    owner = Owner.of(rollout)
    done: list[str] = []
    for policy_kind in POLICY_KINDS:
        done += _sync_kind(kube, rollout, target, owner, policy_kind)
    return done


def _sync_kind(
    kube: Kube, rollout: Rollout, target: Json, owner: Owner, policy_kind: PolicyKind
) -> list[str]:
    kind = kind_of(policy_kind.api_version, policy_kind.kind)
    try:
        items = kube.list(kind, owner.namespace).items
    except KubeError as exc:
        if exc.status in SKIPPED_STATUSES:
            return []
        raise
    live = {name_of(o): o for o in items}
    wanted = {
        copy_name(o): primary_copy(o, policy_kind, target, owner)
        for o in items
        if needs_copy(o, policy_kind, target)
    }
    done: list[str] = []
    for name, body in wanted.items():
        before = live.get(name)
        stored = kube.apply(body)
        if before is None or _version(before) != _version(stored):
            done.append(f"wrote {policy_kind.kind} {name} (selecting the primary's pods)")
    for name, obj in live.items():
        labels = meta(obj).get("labels") or {}
        annotations = meta(obj).get("annotations") or {}
        mine = labels.get(ROLLOUT_LABEL) == rollout.metadata.name and SOURCE_ANNOTATION in (
            annotations
        )
        if mine and name not in wanted:
            kube.delete(kind, owner.namespace, name)
            done.append(f"deleted {policy_kind.kind} {name} (its policy is gone or changed)")
    return done


def _version(obj: Json) -> str:
    return str(meta(obj).get("resourceVersion") or "")
