"""The tick scheduler of a sharded replica (`canary.controller.shards`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from canary.controller.scheduling import TickScheduler


class ShardedTicks(TickScheduler):
    """Jobs only for the Rollouts of the shards last reported held (the controller's listeners
    ask for every Rollout that changed; a tick itself is guarded by the hold at that moment)."""

    def __init__(self, owns: Callable[[str], bool], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owns = owns

    def ensure(self, key: str, delay: float = 0.0) -> None:
        if self._owns(key):
            super().ensure(key, delay)

    def trigger(
        self, key: str, reason: str = "change", echo: Callable[[], bool] | None = None
    ) -> None:
        if self._owns(key):
            super().trigger(key, reason, echo)
