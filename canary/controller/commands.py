"""Commands for a Rollout (approve, promote, abort, retry) as RolloutCommand objects.

A person (``canary approve`` with a kubeconfig, ``kubectl create``) or the canary API creates a
RolloutCommand in the Rollout's namespace, labelled ``canary.dev/rollout=<name>``; RBAC grants
``create`` on ``rolloutcommands`` apart from any right on the Rollout, and the shipped
ValidatingAdmissionPolicy refuses a ``spec.user`` other than the authenticated user
(canary.model.command). The old ``canary.dev/commands`` annotation is gone: anyone allowed to
patch a Rollout could write any name into it.

Exactly once, whatever moment the process dies at (docs/security.md, "Commands"):

1. `pending` reads the Rollout's commands, oldest first, skipping those whose uid is already
   in ``status.appliedCommands``; nothing is removed yet;
2. the tick applies them and `remember` adds their uids to the new status, so the status write
   that records their effect also records that they were applied;
3. only after that write has landed does `clean_up` delete the objects; one that survives
   (a crash, a failed delete) is found again with its uid in the status, and only deleted.

A tick that fails before its status write leaves the commands where they were: the next tick
applies them. `KubeRolloutStore` is the `RolloutStore` of the incoming API
(`canary.gates.api.store`) over the cluster's Rollouts.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from canary.controller.kinds import ROLLOUT, ROLLOUT_COMMAND
from canary.controller.kube import Json, Kube, KubeError
from canary.controller.watches import Cache
from canary.controller.workloads import observe
from canary.engine.observations import Command, CommandKind
from canary.gates.api.models import RolloutView, SpecSummary
from canary.gates.api.store import RolloutNotFoundError, StoreError
from canary.model.command import ROLLOUT_LABEL, RolloutCommand, new_command
from canary.model.rollout import Rollout
from canary.model.status import RolloutStatus
from canary.workload import WorkloadError

log = logging.getLogger(__name__)

MAX_PER_TICK = 16
"""Commands applied in one tick: a flood of them costs a tick no more (the rest wait)."""
REMEMBERED = 64
"""uids kept in status.appliedCommands (the model's bound)."""

CommandSource = Callable[[str, str], list[Json]]
"""(namespace, rollout name) -> the RolloutCommand objects labelled for it."""


@dataclass(frozen=True)
class Pending:
    """A command object as the tick sees it."""

    uid: str
    name: str
    command: Command


@dataclass
class Taken:
    """What `pending` found: commands to apply, objects to delete, problems to report."""

    fresh: list[Pending]
    done: list[str]
    """Names of objects already applied (or refused): delete them."""
    problems: list[str]


def listed(kube: Kube) -> CommandSource:
    """Read the commands from the API server (a list by label)."""

    def source(namespace: str, name: str) -> list[Json]:
        return kube.list(ROLLOUT_COMMAND, namespace, f"{ROLLOUT_LABEL}={name}").items

    return source


def _order(obj: Json) -> tuple[str, int, str]:
    """Creation order: the timestamp (to the second), then the resourceVersion it was created
    at (etcd's revision: commands are never updated, so it is their creation's), then name."""
    meta = obj.get("metadata") or {}
    version = str(meta.get("resourceVersion") or "")
    return (
        str(meta.get("creationTimestamp") or ""),
        int(version) if version.isdigit() else 0,
        str(meta.get("name") or ""),
    )


def engine_command(command: RolloutCommand) -> Command:
    return Command(
        kind=CommandKind(command.spec.action), point=command.spec.point, by=command.asked_by
    )


def pending(objects: list[Json], rollout: str, applied: list[str]) -> Taken:
    """The commands of ``rollout`` among ``objects`` not applied yet (oldest first, at most
    MAX_PER_TICK), the names of those to delete, and what was wrong with the others."""
    taken = Taken([], [], [])
    seen = set(applied)
    for obj in sorted(objects, key=_order):
        meta = obj.get("metadata") or {}
        name, uid = str(meta.get("name") or ""), str(meta.get("uid") or "")
        if uid in seen:
            taken.done.append(name)
            continue
        try:
            command = RolloutCommand.model_validate(obj)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            taken.problems.append(f"RolloutCommand {name} is invalid ({where}: {first['msg']})")
            taken.done.append(name)
            continue
        if command.spec.rollout != rollout:
            continue  # labelled for this Rollout but meant for another: not ours to apply
        if len(taken.fresh) < MAX_PER_TICK:
            taken.fresh.append(Pending(uid, name, engine_command(command)))
    return taken


def remember(status: RolloutStatus, applied: list[Pending]) -> RolloutStatus:
    """``status`` recording ``applied`` as done (the last REMEMBERED uids)."""
    if not applied:
        return status
    uids = [*status.applied_commands, *(p.uid for p in applied)][-REMEMBERED:]
    return status.model_copy(update={"applied_commands": uids})


def clean_up(kube: Kube, namespace: str, names: list[str]) -> None:
    """Delete applied commands; one that stays is deleted at a later tick (never re-applied:
    its uid is in the status)."""
    for name in names:
        try:
            kube.delete(ROLLOUT_COMMAND, namespace, name)
        except (KubeError, OSError) as exc:
            log.warning("%s/%s: the applied command stays for now: %s", namespace, name, exc)


def abort_waiting(objects: list[Json], rollout: str, applied: list[str]) -> bool:
    return any(
        p.command.kind is CommandKind.ABORT for p in pending(objects, rollout, applied).fresh
    )


def command_source(cache: Cache) -> CommandSource:
    """Read the commands from the controller's watch cache (no request per tick)."""

    def source(namespace: str, name: str) -> list[Json]:
        return [
            copy.deepcopy(o)
            for o in cache.items(namespace)
            if ((o.get("metadata") or {}).get("labels") or {}).get(ROLLOUT_LABEL) == name
        ]

    return source


class KubeRolloutStore:
    """`RolloutStore` over the Rollouts of a cluster (``namespaces``: those, or all).

    Commands are created as RolloutCommand objects in the name of ``user`` (the Kubernetes user
    this connection authenticates as: the admission policy refuses any other). With
    ``on_behalf=True`` (the canary API) the command's ``by`` (the API token's name) is written
    to ``spec.onBehalfOf``."""

    def __init__(
        self,
        kube: Kube,
        namespaces: tuple[str, ...] = (),
        *,
        user: str = "unknown",
        on_behalf: bool = False,
    ) -> None:
        self.kube = kube
        self.namespaces = namespaces
        self.user = user
        self.on_behalf = on_behalf

    def _read(self, namespace: str, name: str) -> Json:
        try:
            obj = self.kube.get(ROLLOUT, namespace, name)
        except KubeError as exc:
            raise StoreError(f"cannot read rollout {namespace}/{name}: {exc}") from None
        if obj is None:
            elsewhere = [
                str(o["metadata"].get("namespace"))
                for o in self._all()
                if o["metadata"].get("name") == name
            ]
            raise RolloutNotFoundError(namespace, name, elsewhere)
        return obj

    def _all(self) -> list[Json]:
        try:
            if not self.namespaces:
                return self.kube.list(ROLLOUT).items
            return [o for ns in self.namespaces for o in self.kube.list(ROLLOUT, ns).items]
        except KubeError as exc:
            raise StoreError(f"cannot list rollouts: {exc}") from None

    def _commands(self, namespace: str, name: str, status: RolloutStatus) -> list[Command]:
        try:
            objects = listed(self.kube)(namespace, name)
        except KubeError:
            return []  # no right to list commands: the view shows none pending
        return [p.command for p in pending(objects, name, status.applied_commands).fresh]

    def view(self, obj: Json) -> RolloutView:
        meta = obj.get("metadata") or {}
        try:
            rollout: Rollout | None = Rollout.model_validate(obj)
        except ValidationError:
            rollout = None
        try:
            status = RolloutStatus.model_validate(obj.get("status") or {})
        except ValidationError:
            status = RolloutStatus()
        namespace = str(meta.get("namespace") or "default")
        revision = None
        if rollout is not None:
            try:
                revision = observe(self.kube, rollout, autoscaler=False).revision
            except (WorkloadError, KubeError):
                revision = None
        return RolloutView(
            namespace=namespace,
            name=str(meta.get("name")),
            target_revision=revision,
            spec=SpecSummary.of(rollout) if rollout is not None else None,
            status=status,
            pending_commands=self._commands(namespace, str(meta.get("name")), status),
        )

    def get(self, namespace: str, name: str) -> RolloutView:
        return self.view(self._read(namespace, name))

    def post_command(self, namespace: str, name: str, command: Command) -> None:
        body = new_command(
            namespace,
            name,
            command.kind.value,
            self.user,
            point=command.point,
            on_behalf_of=command.by if self.on_behalf else None,
        )
        try:
            self.kube.create(body)
        except KubeError as exc:
            raise StoreError(f"cannot store the command: {exc}") from exc

    def take_commands(self, namespace: str, name: str) -> list[Command]:
        """Take and delete the waiting commands at once (a stand-in for the controller in
        tests of the store; the controller itself uses `pending`, `remember`, `clean_up`)."""
        obj = self._read(namespace, name)
        status = RolloutStatus.model_validate(obj.get("status") or {})
        try:
            taken = pending(listed(self.kube)(namespace, name), name, status.applied_commands)
            clean_up(self.kube, namespace, [p.name for p in taken.fresh] + taken.done)
        except KubeError as exc:
            raise StoreError(f"cannot take the commands: {exc}") from None
        return [p.command for p in taken.fresh]

    def list(self) -> list[RolloutView]:
        views = [self.view(o) for o in self._all()]
        return sorted(views, key=lambda v: (v.namespace, v.name))


def whoami(kube: Kube) -> str | None:
    """The user this connection authenticates as (SelfSubjectReview, Kubernetes 1.28+), or
    None when the server cannot say."""
    from kubernetes import client  # the typed API; Kube keeps its client

    try:
        review = client.AuthenticationV1Api(kube.api_client).create_self_subject_review(
            client.V1SelfSubjectReview(
                api_version="authentication.k8s.io/v1", kind="SelfSubjectReview"
            ),
            _request_timeout=kube.timeout,
        )
    except Exception as exc:  # the client raises ApiException, urllib3 and socket errors
        log.debug("SelfSubjectReview failed: %s", exc)
        return None
    info = getattr(getattr(review, "status", None), "user_info", None)
    name = getattr(info, "username", None)
    return str(name) if name else None
