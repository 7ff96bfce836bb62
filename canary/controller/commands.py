"""Commands for a Rollout (approve, promote, abort, retry), queued in its annotation.

``canary.dev/commands`` holds a JSON list, oldest first, of queued commands as the API writes
them, ``{"id": "...", "postedAt": "...", "command": {"kind": "approve", "point": "promotion",
"by": "alice"}}``; a bare command (``{"kind": "abort", "by": "bob"}``) is accepted too, so a
person can queue one with ``kubectl annotate``. Anyone allowed to patch the Rollout may append
one (the API through `KubeRolloutStore`, kubectl); the controller takes them all at the
Rollout's next tick and removes the annotation.

Appending and taking are read-modify-write patches conditional on the Rollout's
resourceVersion: a concurrent writer gets 409 and the store reads again, so a command is never
lost to a race nor delivered twice. `KubeRolloutStore` is the `RolloutStore` of the incoming API
(`canary.gates.api.store`) over the cluster's Rollouts.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from canary.controller.kinds import ROLLOUT
from canary.controller.kube import ConflictError, Json, Kube, KubeError
from canary.controller.workloads import observe
from canary.engine.observations import Command
from canary.gates.api.filestore import QueuedCommand
from canary.gates.api.models import RolloutView, SpecSummary
from canary.gates.api.store import RolloutNotFoundError, StoreError
from canary.model.rollout import Rollout
from canary.model.status import RolloutStatus
from canary.workload import WorkloadError

COMMANDS_ANNOTATION = "canary.dev/commands"
ATTEMPTS = 8

_Change = Callable[[list[QueuedCommand]], list[QueuedCommand]]


class CommandsError(ValueError):
    """The annotation holds something that is not a list of commands."""


def queued(command: Command, now: datetime | None = None) -> QueuedCommand:
    return QueuedCommand(id=uuid.uuid4().hex, posted_at=now or datetime.now(UTC), command=command)


def _entry(item: Any) -> QueuedCommand:
    if isinstance(item, dict) and "command" in item:
        return QueuedCommand.model_validate(item)
    return queued(Command.model_validate(item))


def queue_of(obj: Json) -> list[QueuedCommand]:
    """The commands queued in the object's annotation (none when absent)."""
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(COMMANDS_ANNOTATION)
    if not text:
        return []
    try:
        items = json.loads(text)
        if not isinstance(items, list):
            raise ValueError("not a JSON list")
        return [_entry(item) for item in items]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        problem = f"{where + ': ' if where else ''}{first['msg']}"
    except ValueError as exc:
        problem = str(exc)
    raise CommandsError(
        f"annotation {COMMANDS_ANNOTATION} is not a JSON list of commands ({problem})"
    )


def commands_of(obj: Json) -> list[Command]:
    return [entry.command for entry in queue_of(obj)]


def dump_queue(entries: list[QueuedCommand]) -> str:
    return json.dumps(
        [e.model_dump(mode="json", by_alias=True, exclude_none=True) for e in entries],
        separators=(",", ":"),
    )


def _patch(kube: Kube, obj: Json, value: str | None) -> Json:
    meta = obj.get("metadata") or {}
    body = {
        "metadata": {
            "resourceVersion": meta.get("resourceVersion"),
            "annotations": {COMMANDS_ANNOTATION: value},
        }
    }
    return kube.patch(ROLLOUT, str(meta.get("namespace")), str(meta.get("name")), body)


def take_commands(kube: Kube, obj: Json) -> tuple[list[Command], Json, str | None]:
    """Take the commands of ``obj`` (re-read on conflicts): (commands, the Rollout after the
    annotation was cleared, a problem with the annotation or None)."""
    meta = obj.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    for _ in range(ATTEMPTS):
        problem = None
        try:
            commands = commands_of(obj)
        except CommandsError as exc:
            commands, problem = [], f"{exc}; it was removed"
        annotations = meta.get("annotations") or {}
        if COMMANDS_ANNOTATION not in annotations:
            return commands, obj, problem
        try:
            return commands, _patch(kube, obj, None), problem
        except ConflictError:
            fresh = kube.read(ROLLOUT, namespace, name)
            if fresh is None:
                return [], obj, None
            obj, meta = fresh, fresh.get("metadata") or {}
    raise StoreError(f"rollout {namespace}/{name} kept changing: commands not taken")


def give_back(kube: Kube, namespace: str, name: str, commands: list[Command]) -> None:
    """Put taken commands back in front of any sent since (a tick that failed)."""
    if commands:
        entries = [queued(c) for c in commands]
        _update(kube, namespace, name, lambda waiting: [*entries, *waiting])


def _update(kube: Kube, namespace: str, name: str, change: _Change) -> None:
    for _ in range(ATTEMPTS):
        obj = kube.read(ROLLOUT, namespace, name)
        if obj is None:
            raise RolloutNotFoundError(namespace, name)
        try:
            waiting = queue_of(obj)
        except CommandsError as exc:
            raise StoreError(str(exc)) from None
        try:
            _patch(kube, obj, dump_queue(change(waiting)))
            return
        except ConflictError:
            continue
    raise StoreError(f"rollout {namespace}/{name} kept changing: command not stored")


class KubeRolloutStore:
    """`RolloutStore` over the Rollouts of a cluster (``namespaces``: those, or all)."""

    def __init__(self, kube: Kube, namespaces: tuple[str, ...] = ()) -> None:
        self.kube = kube
        self.namespaces = namespaces

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
        try:
            pending = commands_of(obj)
        except CommandsError:
            pending = []
        revision = None
        if rollout is not None:
            try:
                revision = observe(self.kube, rollout, autoscaler=False).revision
            except (WorkloadError, KubeError):
                revision = None
        return RolloutView(
            namespace=str(meta.get("namespace") or "default"),
            name=str(meta.get("name")),
            target_revision=revision,
            spec=SpecSummary.of(rollout) if rollout is not None else None,
            status=status,
            pending_commands=pending,
        )

    def get(self, namespace: str, name: str) -> RolloutView:
        return self.view(self._read(namespace, name))

    def post_command(self, namespace: str, name: str, command: Command) -> None:
        try:
            entry = queued(command)
            _update(self.kube, namespace, name, lambda waiting: [*waiting, entry])
        except KubeError as exc:
            raise StoreError(f"cannot store the command: {exc}") from None

    def take_commands(self, namespace: str, name: str) -> list[Command]:
        obj = self._read(namespace, name)
        try:
            commands, _, _ = take_commands(self.kube, obj)
        except KubeError as exc:
            raise StoreError(f"cannot take the commands: {exc}") from None
        return commands

    def list(self) -> list[RolloutView]:
        views = [self.view(o) for o in self._all()]
        return sorted(views, key=lambda v: (v.namespace, v.name))
