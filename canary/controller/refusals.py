"""The policies and channels of the cluster the model refuses, and telling their owners.

Every replica reads each AnalysisPolicy, ClusterAnalysisPolicy and NotificationChannel its
caches hold once per resourceVersion (`Refusals.verdict`: one verdict kept per object, dropped
with it), and builds the list of policies the ticks use once per change of the policies. One
that the model refuses is not used, and its owner is told where they look:

- a Warning Event ``InvalidSpec`` on the object itself, naming each field and the fix in the
  words of `canary validate` (`canary.analysis.resource_problems`); a cluster-scoped object's
  Event is recorded in ``default`` with an involvedObject without namespace, as Kubernetes
  records those of Nodes (``kubectl describe clusteranalysispolicy NAME`` finds it);
- a Rollout naming a refused policy is invalid with the reason (`canary.analysis.policies.
  refused_policy`); one naming a refused channel gets a Warning Event ``ChannelInvalid``.

Bounded: one Event per object resourceVersion, its name fixed by the object's uid and
resourceVersion (a second post, by this replica after a restart or by a new leader, is a 409:
recorded once); posted by the replica that acts for the object (the leader, or the holder of
its key's shard), through a sender of its own whose queue holds at most ``QUEUED_EVENTS``
(beyond, an Event is dropped and counted: the object stays refused, and the Rollouts naming it
say why). A tenant creating thousands of invalid objects costs one validation and at most one
Event each.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel

from canary.analysis.policies import AnyPolicy, refused_policy
from canary.analysis.resource_problems import judge_resource, summary
from canary.controller.kinds import (
    ANALYSIS_POLICY,
    CLUSTER_ANALYSIS_POLICY,
    NOTIFICATION_CHANNEL,
    ROLLOUT,
    Kind,
)
from canary.controller.kube import Json
from canary.controller.watches import Cache
from canary.model.notification import NotificationChannel
from canary.model.policy import AnalysisPolicy, ClusterAnalysisPolicy
from canary.model.rollout import Rollout
from canary.notify.kube_events import event_body

log = logging.getLogger("canary.controller.refusals")

MAX_REMEMBERED = 10_000
"""Object versions whose Event is remembered as queued (past it the oldest are forgotten: a
second post of one is a 409)."""
QUEUED_EVENTS = 1_000
"""Refusal Events waiting to be posted at most."""
EVENT_NAMESPACE_OF_CLUSTER_OBJECTS = "default"
"""Where Kubernetes records the Events of cluster-scoped objects (client-go's recorder)."""


@dataclass(frozen=True)
class Verdict:
    """The model's reading of one object version: the resource, or why it is refused."""

    resource: BaseModel | None
    refusal: str = ""
    stand_in: AnyPolicy | None = None
    """A refused policy's stand-in for the ticks (`canary.analysis.policies.refused_policy`),
    made once per version."""


Send = Callable[[str, list[Json]], bool]
"""(key of the object, Event bodies) -> queued; False: the queue is full."""


REFUSABLE: tuple[tuple[Kind, type[BaseModel]], ...] = (
    (ANALYSIS_POLICY, AnalysisPolicy),
    (CLUSTER_ANALYSIS_POLICY, ClusterAnalysisPolicy),
    (NOTIFICATION_CHANNEL, NotificationChannel),
)
"""The tenants' objects the model may refuse, and their models; the policies first."""


class Refusals:
    """The cluster's policies and channels from the caches, each read once per version; the
    refused ones told of."""

    def __init__(
        self,
        caches: Mapping[str, Cache],
        send: Send,
        acts_for: Callable[[str], bool],
        *,
        identity: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        dropped: Callable[[], None] = lambda: None,
    ) -> None:
        self._caches = caches
        self._send = send
        self._acts_for = acts_for
        self._identity = identity
        self._clock = clock
        self._dropped = dropped
        self._lock = threading.Lock()
        self._verdicts: dict[tuple[str, str, str], tuple[tuple[str, str], Verdict]] = {}
        """By (model, namespace, name): the version read, and what the model said of it. As
        many entries as the caches hold objects of these kinds (a deleted one is dropped)."""
        self._told: OrderedDict[tuple[str, ...], None] = OrderedDict()
        self._generation = 0
        """Counts the policies' changes: the list `policies` built is kept until the next."""
        self._built: tuple[int, tuple[AnyPolicy, ...]] | None = None

    # --- reading -------------------------------------------------------------------------------

    def verdict(self, obj: Json, model: type[BaseModel]) -> Verdict:
        """The model's reading of ``obj`` (remembered for its uid and resourceVersion)."""
        key, version = _object_key(model, obj), _version_key(obj)
        with self._lock:
            found = self._verdicts.get(key)
        if found is not None and found[0] == version:
            return found[1]
        resource, problems = judge_resource(obj, model)
        verdict = Verdict(resource, summary(problems) if resource is None else "")
        if resource is None and model in (AnalysisPolicy, ClusterAnalysisPolicy):
            namespace, name = key[1] or None, key[2]
            stand_in = refused_policy(model.__name__, namespace, name, verdict.refusal)
            verdict = Verdict(None, verdict.refusal, stand_in)
        if resource is None:
            log.warning(
                "%s %s is invalid and not used: %s", model.__name__, _name(obj), verdict.refusal
            )
        with self._lock:
            self._verdicts[key] = (version, verdict)
        return verdict

    def forget(self, model: type[BaseModel], obj: Json) -> None:
        """``obj`` was deleted."""
        with self._lock:
            self._verdicts.pop(_object_key(model, obj), None)

    def model(self, obj: Json, model: type[BaseModel]) -> BaseModel | None:
        return self.verdict(obj, model).resource

    def policies(self) -> tuple[AnyPolicy, ...]:
        """The cluster's policies; a refused one as a stand-in that says why
        (`canary.analysis.policies.refused_policy`). Built once per change of the policies,
        not at every tick."""
        with self._lock:
            generation, built = self._generation, self._built
        if built is not None and built[0] == generation:
            return built[1]
        found = tuple(self._read_policies())
        with self._lock:
            self._built = (generation, found)  # (stale at once if a change came meanwhile)
        return found

    def _read_policies(self) -> list[AnyPolicy]:
        found: list[AnyPolicy] = []
        for kind, model in REFUSABLE[:2]:
            for obj in self._caches[kind.kind].items():
                verdict = self.verdict(obj, model)
                policy = verdict.resource
                if isinstance(policy, AnalysisPolicy | ClusterAnalysisPolicy):
                    found.append(policy)
                elif verdict.stand_in is not None:
                    found.append(verdict.stand_in)
        return found

    def channel(self, namespace: str, name: str) -> NotificationChannel | None:
        """The NotificationChannel (None: there is none, or it is refused)."""
        obj = self._caches[NOTIFICATION_CHANNEL.kind].get(namespace, name)
        channel = self.model(obj, NotificationChannel) if obj is not None else None
        return channel if isinstance(channel, NotificationChannel) else None

    def channel_refusal(self, namespace: str, name: str) -> str | None:
        """Why the channel was refused; None when it is usable or there is none."""
        obj = self._caches[NOTIFICATION_CHANNEL.kind].get(namespace, name)
        if obj is None:
            return None
        return self.verdict(obj, NotificationChannel).refusal or None

    def channel_unusable(self, rollout: Rollout, name: str, message: str) -> None:
        """A Warning Event ``ChannelInvalid`` on the Rollout, once per version of the refused
        channel ``name`` (a channel that does not exist is only logged)."""
        namespace = rollout.metadata.namespace or "default"
        channel = self._caches[NOTIFICATION_CHANNEL.kind].get(namespace, name)
        if channel is None:
            return
        meta = rollout.metadata
        addressed: Json = {
            "metadata": {
                "name": meta.name,
                "namespace": namespace,
                "uid": meta.uid,
                "resourceVersion": meta.resource_version,
            }
        }
        self.tell_rollout(addressed, "ChannelInvalid", message, channel)

    # --- telling -------------------------------------------------------------------------------

    def listen(self) -> Refusals:
        """Read each new version of the refusable kinds as the caches receive it."""
        for kind, model in REFUSABLE:
            self._caches[kind.kind].listen(self.listener(kind, model))
        return self

    def tell_everything(self) -> int:
        """This replica began to act (for some shards): tell of the refused objects it now acts
        for (those told before are 409s: recorded once)."""
        return sum(
            self.tell_all(kind, model, self._caches[kind.kind].items()) for kind, model in REFUSABLE
        )

    def listener(
        self, kind: Kind, model: type[BaseModel]
    ) -> Callable[[str, Json | None, Json | None], None]:
        """A `canary.controller.watches.Cache` listener: each new version is read, and a
        refused one told of."""

        def changed(event: str, old: Json | None, new: Json | None) -> None:
            if model is not NotificationChannel:
                with self._lock:
                    self._generation += 1
            if new is None and old is not None:
                self.forget(model, old)
            if new is not None:
                self.tell(kind, model, new)

        return changed

    def tell(self, kind: Kind, model: type[BaseModel], obj: Json) -> bool:
        """Queue the Warning Event of ``obj`` if it is refused, this replica acts for it and
        its version was not told of before; True when one was queued."""
        verdict = self.verdict(obj, model)
        key = object_key(kind, obj)
        if verdict.resource is not None or not self._acts_for(key):
            return False
        body = refusal_event(kind, obj, verdict.refusal, self._clock(), self._identity)
        return self._queue(key, _version_key(obj), body)

    def tell_rollout(self, rollout: Json, reason: str, message: str, about: Json) -> bool:
        """Queue a Warning Event on ``rollout`` about the refused object ``about`` (once per
        version of each); True when one was queued."""
        memo = (*_version_key(rollout)[:1], reason, *_version_key(about))
        body = warning_event(ROLLOUT, rollout, reason, message, memo, self._clock(), self._identity)
        namespace = (rollout.get("metadata") or {}).get("namespace")
        return self._queue(f"{namespace}/{_name(rollout)}", memo, body)

    def _queue(self, key: str, memo: tuple[str, ...], body: Json) -> bool:
        with self._lock:
            if memo in self._told:
                return False
        if not self._send(key, [body]):
            self._dropped()
            log.warning("%s: a Warning Event is dropped (the queue is full)", key)
            return False
        with self._lock:
            self._told[memo] = None
            while len(self._told) > MAX_REMEMBERED:
                self._told.popitem(last=False)
        return True

    def tell_all(self, kind: Kind, model: type[BaseModel], objects: list[Json]) -> int:
        """`tell` each of ``objects`` (this replica began to act for some); how many queued."""
        return sum(self.tell(kind, model, obj) for obj in objects)


def object_key(kind: Kind, obj: Json) -> str:
    """The key a refusal Event is sent (and, sharded, acted for) under: ``plural:ns/name``
    (never a Rollout's ``ns/name``)."""
    meta = obj.get("metadata") or {}
    return f"{kind.plural}:{meta.get('namespace') or ''}/{meta.get('name')}"


def refusal_event(kind: Kind, obj: Json, refusal: str, now: datetime, identity: str) -> Json:
    """The Warning Event on a refused object; named after its uid and resourceVersion, so that
    each version is recorded once whoever posts it."""
    meta = obj.get("metadata") or {}
    name = str(meta.get("name"))
    message = (
        f"{kind.kind} '{name}' is invalid and not used: {refusal}. Fix the fields named and "
        "apply it again (`canary validate FILE` checks a file first)"
    )
    return warning_event(kind, obj, "InvalidSpec", message, _version_key(obj), now, identity)


def warning_event(
    kind: Kind,
    obj: Json,
    reason: str,
    message: str,
    once_per: tuple[str, ...],
    now: datetime,
    identity: str,
) -> Json:
    """A Warning Event on ``obj`` (of ``kind``), named after ``once_per``: posted again, it is
    a 409 (recorded once)."""
    meta = obj.get("metadata") or {}
    name, namespace = str(meta.get("name")), meta.get("namespace")
    uid, version = str(meta.get("uid") or ""), str(meta.get("resourceVersion") or "")
    digest = hashlib.sha256("\0".join((reason, *once_per)).encode()).hexdigest()[:16]
    involved: Json = {"apiVersion": kind.api_version, "kind": kind.kind, "name": name}
    if namespace:
        involved["namespace"] = namespace
    if uid:
        involved["uid"] = uid
    if version:
        involved["resourceVersion"] = version
    return event_body(
        involved,
        name=f"{name[:200]}.{digest}",
        namespace=namespace or EVENT_NAMESPACE_OF_CLUSTER_OBJECTS,
        reason=reason,
        message=message,
        warning=True,
        now=now,
        instance=identity,
    )


def _object_key(model: type[BaseModel], obj: Json) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return model.__name__, str(meta.get("namespace") or ""), str(meta.get("name"))


def _version_key(obj: Json) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("uid")), str(meta.get("resourceVersion"))


def _name(obj: Json) -> str:
    return str((obj.get("metadata") or {}).get("name"))
