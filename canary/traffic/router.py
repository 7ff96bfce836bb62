"""The router contract every provider implements."""

from __future__ import annotations

from typing import Protocol

from canary.engine.actions import Route


class RouterError(Exception):
    """The router could not apply or read a route; the tick is retried, nothing is promoted."""


class Router(Protocol):
    def apply(self, route: Route) -> None:
        """Make the provider hold ``route``; applying the same route twice is a no-op."""
        ...

    def current(self) -> Route:
        """The split the provider holds now, read back (to verify and repair drift)."""
        ...
