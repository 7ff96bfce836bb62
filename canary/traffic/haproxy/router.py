"""The HAProxy router: the canary split as two server weights, A/B rules as map entries."""

from __future__ import annotations

from pathlib import Path

from canary.engine.actions import Route
from canary.model.provider import HaproxySettings
from canary.model.rollout import Rollout
from canary.model.strategy import MatchRule
from canary.traffic.haproxy.config import MapCondition, ab_conditions
from canary.traffic.haproxy.runtime import RuntimeApi
from canary.traffic.router import RouterError


class HaproxyRouter:
    """Holds a Route in a running HAProxy whose config came from `config.render`."""

    def __init__(self, rollout: Rollout, map_dir: Path, runtime: RuntimeApi | None = None) -> None:
        settings = rollout.spec.provider.haproxy
        if settings is None:
            raise RouterError("spec.provider.haproxy is required for the HAProxy router")
        self.settings: HaproxySettings = settings
        self.runtime = runtime or RuntimeApi(settings.runtime_api)
        ab = rollout.spec.strategy.ab_test
        self.rules: tuple[MatchRule, ...] = tuple(ab.match) if ab else ()
        self.conditions: list[MapCondition] = ab_conditions(self.rules, map_dir)

    def apply(self, route: Route) -> None:
        if route.mirror_percentage is not None:
            raise RouterError("HAProxy cannot mirror traffic to the canary")
        if route.match and tuple(route.match) != self.rules:
            raise RouterError(
                "the route's A/B rules differ from the ones HAProxy was configured with; "
                "restart local mode to render the new rules"
            )
        primary_weight = 100 - route.canary_weight
        backend = self.settings.backend
        # Open the canary's share before closing the primary's, so no instant has both at 0.
        order = [
            (self.settings.canary_server, route.canary_weight),
            (self.settings.primary_server, primary_weight),
        ]
        if route.canary_weight < self.runtime.get_weight(backend, self.settings.canary_server):
            order.reverse()
        for server, weight in order:
            self.runtime.set_weight(backend, server, weight)
        for condition in self.conditions:
            entries = {condition.key: "1"} if route.match else {}
            self.runtime.set_map(condition.map_file, entries)

    def current(self) -> Route:
        backend = self.settings.backend
        canary = self.runtime.get_weight(backend, self.settings.canary_server)
        primary = self.runtime.get_weight(backend, self.settings.primary_server)
        total = canary + primary
        weight = round(100 * canary / total) if total else 0
        matched = bool(self.conditions) and all(
            self.runtime.show_map(c.map_file) == {c.key: "1"} for c in self.conditions
        )
        return Route(canary_weight=weight, match=self.rules if matched else ())
