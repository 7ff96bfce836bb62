"""Where the API finds rollouts and leaves commands for them: the `RolloutStore` protocol.

A store is shared by two parties: the API (which lists, reads and posts commands) and the
shell that runs the rollout's ticks (which takes the commands and feeds them to the engine as
`Observations.commands`). Every method is synchronous and may block briefly on I/O.

Implementations:

- `FileStore` (local mode): the local runner's state files in a folder; commands in a JSON
  file beside each state file, shared between processes under an fcntl lock.
- A Kubernetes store (with the controller): the Rollout resources; commands in the
  `canary.dev/commands` annotation of the Rollout, read and rewritten with the object's
  resourceVersion so a concurrent writer gets a 409 and tries again. The protocol asks nothing
  a single annotation cannot do: append one command, take all of them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from canary.engine.observations import Command
from canary.gates.api.models import RolloutView


class StoreError(Exception):
    """The store cannot answer (an unreadable file, an unreachable API server)."""


class RolloutNotFoundError(StoreError):
    def __init__(self, namespace: str, name: str, elsewhere: list[str] | None = None) -> None:
        self.namespace = namespace
        self.name = name
        self.elsewhere = sorted(elsewhere or [])
        message = f"no rollout {name} in namespace {namespace}"
        if self.elsewhere:
            message += f" (found in namespace {', '.join(self.elsewhere)}: pass -n)"
        super().__init__(message)


@runtime_checkable
class RolloutStore(Protocol):
    def get(self, namespace: str, name: str) -> RolloutView:
        """One rollout; raises RolloutNotFoundError."""
        ...

    def post_command(self, namespace: str, name: str, command: Command) -> None:
        """Queue a command for the rollout's next tick; raises RolloutNotFoundError."""
        ...

    def take_commands(self, namespace: str, name: str) -> list[Command]:
        """The queued commands in the order posted, removed from the queue in the same atomic
        step: each command is delivered to exactly one caller, once. Raises RolloutNotFoundError."""
        ...

    def list(self) -> list[RolloutView]:
        """Every rollout the store holds, sorted by namespace and name."""
        ...
