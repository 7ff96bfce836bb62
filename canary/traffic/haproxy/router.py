"""The HAProxy router: the canary split as two server weights, A/B rules as map entries.

What canary owns in a running HAProxy is exactly: the two servers' weights in the Rollout's
backend, and the maps named after that backend in the map folder (`config.map_prefix`). For a
route, each of those has one right value (weights ``100 - w`` and ``w``; each A/B map holding
its key once while the A/B route is on, nothing otherwise; maps of rules no longer in the spec
empty). `apply` makes the live state equal that, whatever it was; `drift` lists what differs.
Other maps and servers are left alone.
"""

from __future__ import annotations

from pathlib import Path

from canary.engine.actions import Route
from canary.model.provider import HaproxySettings
from canary.model.rollout import Rollout
from canary.model.strategy import MatchRule
from canary.traffic.haproxy.config import MapCondition, map_prefix, rollout_conditions
from canary.traffic.haproxy.runtime import RuntimeApi
from canary.traffic.router import RouterError

MATCHED = "1"
"""The value of an A/B map entry: the config only asks whether the key is found."""


class HaproxyRouter:
    """Holds a Route in a running HAProxy whose config came from `config.render`."""

    def __init__(self, rollout: Rollout, map_dir: Path, runtime: RuntimeApi | None = None) -> None:
        settings = rollout.spec.provider.haproxy
        if settings is None:
            raise RouterError("spec.provider.haproxy is required for the HAProxy router")
        self.settings: HaproxySettings = settings
        self.runtime = runtime or RuntimeApi(settings.runtime_api)
        self.map_dir = map_dir
        ab = rollout.spec.strategy.ab_test
        self.rules: tuple[MatchRule, ...] = tuple(ab.match) if ab else ()
        self.conditions: list[MapCondition] = rollout_conditions(rollout, map_dir)

    def apply(self, route: Route) -> None:
        self._check(route)
        backend = self.settings.backend
        weights = self._weights(route)
        # Open the canary's share before closing the primary's, so no instant has both at 0.
        if route.canary_weight < self.runtime.get_weight(backend, self.settings.canary_server):
            weights.reverse()
        for server, weight in weights:
            self.runtime.set_weight(backend, server, weight)
        for map_file, entries in self._maps(route).items():
            self.runtime.set_map(map_file, entries)

    def current(self) -> Route:
        backend = self.settings.backend
        canary = self.runtime.get_weight(backend, self.settings.canary_server)
        primary = self.runtime.get_weight(backend, self.settings.primary_server)
        total = canary + primary
        weight = round(100 * canary / total) if total else 0
        loaded = set(self.runtime.loaded_maps())
        matched = bool(self.conditions) and all(
            c.map_file in loaded and self.runtime.map_entries(c.map_file) == [(c.key, MATCHED)]
            for c in self.conditions
        )
        return Route(canary_weight=weight, match=self.rules if matched else ())

    def drift(self, route: Route) -> list[str]:
        """How the live HAProxy differs from what ``route`` asks for (empty: it holds it)."""
        self._check(route)
        backend = self.settings.backend
        found = []
        for server, weight in self._weights(route):
            live = self.runtime.get_weight(backend, server)
            if live != weight:
                found.append(f"weight of {backend}/{server} is {live}, not {weight}")
        for map_file, entries in self._maps(route).items():
            live_entries = self.runtime.map_entries(map_file)
            if sorted(live_entries) != sorted(entries.items()):
                found.append(
                    f"map {Path(map_file).name} holds {_entries(live_entries)}, "
                    f"not {_entries(list(entries.items()))}"
                )
        return found

    def _check(self, route: Route) -> None:
        if route.mirror_percentage is not None:
            raise RouterError("HAProxy cannot mirror traffic to the canary")
        if route.match and tuple(route.match) != self.rules:
            raise RouterError(
                "the route's A/B rules differ from the ones HAProxy was configured with; "
                "restart local mode to render the new rules"
            )

    def _weights(self, route: Route) -> list[tuple[str, int]]:
        return [
            (self.settings.canary_server, route.canary_weight),
            (self.settings.primary_server, 100 - route.canary_weight),
        ]

    def _maps(self, route: Route) -> dict[str, dict[str, str]]:
        """Every map canary owns in the running HAProxy, with the entries ``route`` needs."""
        loaded = self.runtime.loaded_maps()
        wanted: dict[str, dict[str, str]] = {}
        for condition in self.conditions:
            if condition.map_file not in loaded:
                if route.match:
                    raise RouterError(
                        f"the running HAProxy has no map {condition.map_file} for "
                        f"spec.strategy.abTest.match[{condition.rule}] ({condition.fetch}): its "
                        "config predates this Rollout's A/B rules; render it again with "
                        "`canary haproxy-config` and restart HAProxy"
                    )
                continue  # nothing routes by a map HAProxy does not have
            wanted[condition.map_file] = {condition.key: MATCHED} if route.match else {}
        prefix = str(self.map_dir / map_prefix(self.settings.backend))
        for map_file in loaded:
            # a map of a rule no longer in the spec: nothing may match it any more
            if map_file.startswith(prefix) and map_file not in wanted:
                wanted[map_file] = {}
        return wanted


def _entries(entries: list[tuple[str, str]]) -> str:
    if not entries:
        return "nothing"
    return ", ".join(f"{key!r}={value!r}" for key, value in entries)
