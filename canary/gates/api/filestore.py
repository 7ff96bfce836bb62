"""`FileStore`: the local runner's state files as a `RolloutStore`.

For a state file ``DIR/NAME.state.json`` (what `canary run` writes) the store keeps, beside it:

- ``NAME.commands.json``: the commands waiting for the next tick, as
  ``{"format": 1, "commands": [{"id", "postedAt", "command": {...}}]}``;
- ``NAME.commands.lock``: the lock file; every read-modify-write of the commands holds an
  exclusive ``fcntl.flock`` on it, so the API process and the runner process never lose or
  double-deliver a command;
- ``NAME.rollout.json`` (optional, written by the runner with `publish_rollout`): the Rollout
  and the revision it rolls out, for the spec summary and for `wait`.

Files are replaced atomically (a temporary file, then ``os.replace``): a reader sees the old
contents or the new, never half of them.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field, ValidationError

from canary.engine.observations import Command
from canary.gates.api.models import ApiModel, RolloutView, SpecSummary
from canary.gates.api.store import RolloutNotFoundError, StoreError
from canary.local.state import LocalState
from canary.model.rollout import Rollout

log = logging.getLogger("canary.api.store")

STATE_SUFFIX = ".state.json"
COMMANDS_SUFFIX = ".commands.json"
LOCK_SUFFIX = ".commands.lock"
ROLLOUT_SUFFIX = ".rollout.json"
INBOX_FORMAT = 1


def _stem(state_path: Path) -> Path:
    """``DIR/NAME.state.json`` -> ``DIR/NAME``; any other name keeps its full name."""
    name = state_path.name
    base = name[: -len(STATE_SUFFIX)] if name.endswith(STATE_SUFFIX) else name
    return state_path.with_name(base)


def _beside(state_path: Path, suffix: str) -> Path:
    stem = _stem(state_path)
    return stem.with_name(stem.name + suffix)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class QueuedCommand(ApiModel):
    id: str
    posted_at: datetime
    command: Command


class InboxFile(ApiModel):
    format: int = INBOX_FORMAT
    commands: list[QueuedCommand] = Field(default_factory=list)


class PublishedRollout(ApiModel):
    """What the runner publishes beside its state file for the API."""

    rollout: Rollout
    target_revision: str | None = None


class CommandInbox:
    """The commands of one rollout, shared by processes through a locked JSON file."""

    def __init__(self, path: Path, lock_path: Path) -> None:
        self.path = path
        self.lock_path = lock_path

    @classmethod
    def beside(cls, state_path: Path) -> CommandInbox:
        """The inbox of the rollout whose state file is ``state_path``."""
        return cls(_beside(state_path, COMMANDS_SUFFIX), _beside(state_path, LOCK_SUFFIX))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _read(self) -> InboxFile:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return InboxFile()
        except OSError as exc:
            raise StoreError(f"commands file {self.path} is unreadable ({exc})") from None
        try:
            return InboxFile.model_validate_json(text)
        except ValidationError as exc:
            raise StoreError(
                f"commands file {self.path} is not a commands file ({exc.error_count()} "
                "problems): move it away; its commands are lost"
            ) from None

    def post(self, command: Command, now: datetime | None = None) -> QueuedCommand:
        queued = QueuedCommand(
            id=uuid.uuid4().hex, posted_at=now or datetime.now(UTC), command=command
        )
        with self._locked():
            inbox = self._read()
            inbox.commands.append(queued)
            _write_atomically(self.path, inbox.model_dump_json(by_alias=True, indent=2))
        return queued

    def take(self) -> list[Command]:
        """All queued commands, removed in the same locked step: each is delivered once."""
        with self._locked():
            inbox = self._read()
            if inbox.commands:
                self.path.unlink(missing_ok=True)
        return [q.command for q in inbox.commands]

    def pending(self) -> list[Command]:
        with self._locked():
            return [q.command for q in self._read().commands]


def _exists(path: Path) -> bool:
    """Whether the file exists; a name the file system cannot hold (too long) does not."""
    try:
        return path.exists()
    except OSError:
        return False


def publish_rollout(state_path: Path, rollout: Rollout, target_revision: str | None) -> None:
    """For the runner: tell the API which Rollout (and revision) this state file runs."""
    published = PublishedRollout(rollout=rollout, target_revision=target_revision)
    _write_atomically(
        _beside(state_path, ROLLOUT_SUFFIX),
        published.model_dump_json(by_alias=True, exclude_none=True, indent=2),
    )


@dataclass(frozen=True)
class _Found:
    path: Path
    state: LocalState


class FileStore:
    """The rollouts of the state files (``*.state.json``) in one folder."""

    def __init__(self, state_dir: Path, *, clock: Callable[[], datetime] | None = None) -> None:
        self.state_dir = state_dir
        self.clock = clock or (lambda: datetime.now(UTC))

    def _states(self) -> list[_Found]:
        found: list[_Found] = []
        for path in sorted(self.state_dir.glob(f"*{STATE_SUFFIX}")):
            try:
                state = LocalState.model_validate_json(path.read_text())
            except (OSError, ValidationError, json.JSONDecodeError) as exc:
                log.warning("skipping unreadable state file %s: %s", path, exc)
                continue
            found.append(_Found(path=path, state=state))
        return found

    def _view(self, found: _Found) -> RolloutView:
        namespace, _, name = found.state.rollout.rpartition("/")
        published = self._published(found.path)
        return RolloutView(
            namespace=namespace or "default",
            name=name,
            target_revision=published.target_revision if published else None,
            spec=SpecSummary.of(published.rollout) if published else None,
            status=found.state.status,
            pending_commands=CommandInbox.beside(found.path).pending(),
        )

    def _published(self, state_path: Path) -> PublishedRollout | None:
        path = _beside(state_path, ROLLOUT_SUFFIX)
        try:
            return PublishedRollout.model_validate_json(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError) as exc:
            log.warning("ignoring unreadable rollout file %s: %s", path, exc)
            return None

    def _find(self, namespace: str, name: str) -> _Found:
        states = self._states()
        matches = [f for f in states if f.state.rollout == f"{namespace}/{name}"]
        if matches:
            # Two state files for one rollout: the one written last is the live one.
            return max(matches, key=lambda f: f.path.stat().st_mtime)
        guess = self.state_dir / f"{name}{STATE_SUFFIX}"
        if _exists(guess) and guess not in {f.path for f in states}:
            raise StoreError(f"state file {guess} is unreadable: see the API's log")
        keys = (f.state.rollout.rpartition("/") for f in states)
        spaces = {ns for ns, _, other in keys if other == name}
        raise RolloutNotFoundError(namespace, name, sorted(spaces))

    def get(self, namespace: str, name: str) -> RolloutView:
        return self._view(self._find(namespace, name))

    def post_command(self, namespace: str, name: str, command: Command) -> None:
        found = self._find(namespace, name)
        CommandInbox.beside(found.path).post(command, self.clock())

    def take_commands(self, namespace: str, name: str) -> list[Command]:
        return CommandInbox.beside(self._find(namespace, name).path).take()

    def list(self) -> list[RolloutView]:
        views = [self._view(f) for f in self._states()]
        return sorted(views, key=lambda v: (v.namespace, v.name))
