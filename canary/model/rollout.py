"""The Rollout resource: what a team writes to have a service delivered progressively."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from canary.model.analysis import AnalysisSpec
from canary.model.base import CamelModel, ObjectName, Port
from canary.model.gates import GatesSpec
from canary.model.meta import ObjectMeta
from canary.model.notification import NotificationsSpec
from canary.model.provider import (
    ProviderSpec,
    supports_feature,
    unsupported_route_settings,
    why_unsupported,
)
from canary.model.route import RouteSettings
from canary.model.status import RolloutStatus
from canary.model.strategy import Strategy, StrategyKind

GROUP = "canary.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class TargetRef(CamelModel):
    """The Deployment the team owns; canary keeps a '<name>-primary' copy beside it."""

    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["Deployment"] = "Deployment"
    name: ObjectName


class ServiceSpec(CamelModel):
    port: Port = Field(description="Port the Services expose.")
    target_port: Port | None = Field(default=None, description="Container port (default: port).")
    port_name: str = Field(default="http", min_length=1, max_length=15)
    route: RouteSettings = Field(
        default_factory=RouteSettings, description="Resilience settings kept at every step."
    )


class RolloutSpec(CamelModel):
    target_ref: TargetRef
    service: ServiceSpec
    provider: ProviderSpec
    strategy: Strategy = Field(default_factory=Strategy)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    gates: GatesSpec = Field(default_factory=GatesSpec)
    notifications: NotificationsSpec = Field(default_factory=NotificationsSpec)
    skip_analysis: bool = Field(default=False, description="Promote without judging (emergencies).")
    progress_deadline_seconds: int = Field(
        default=600, ge=1, description="How long the canary may take to become ready."
    )
    suspend: bool = Field(default=False, description="Hold the rollout where it is.")

    @model_validator(mode="after")
    def _provider_can_honour(self) -> RolloutSpec:
        flavour = self.provider.flavour
        problems = []
        unsupported = unsupported_route_settings(flavour, self.service.route.settings_in_use())
        if unsupported:
            problems.append(
                f"provider '{flavour}' cannot honour service.route "
                f"{', '.join(unsupported)} ({why_unsupported(flavour)}): remove them or "
                "choose another provider"
            )
        strategy = self.strategy
        if strategy.kind is StrategyKind.AB_TEST:
            if not supports_feature(flavour, "abTest"):
                problems.append(
                    f"provider '{flavour}' cannot route by header or cookie "
                    f"({why_unsupported(flavour)}): use the canary strategy"
                )
            elif _matches_cookies(strategy) and not supports_feature(flavour, "cookieMatch"):
                problems.append(
                    f"provider '{flavour}' cannot match cookies: match on headers instead"
                )
        if strategy.mirror is not None and not supports_feature(flavour, "mirrorToCanary"):
            problems.append(f"provider '{flavour}' cannot mirror traffic to the canary")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _matches_cookies(strategy: Strategy) -> bool:
    return strategy.ab_test is not None and any(r.cookie for r in strategy.ab_test.match)


class Rollout(CamelModel):
    api_version: Literal["canary.dev/v1alpha1"] = "canary.dev/v1alpha1"
    kind: Literal["Rollout"] = "Rollout"
    metadata: ObjectMeta
    spec: RolloutSpec
    status: RolloutStatus | None = None

    @property
    def key(self) -> str:
        """namespace/name, the rollout's identity in logs and the API."""
        return f"{self.metadata.namespace or 'default'}/{self.metadata.name}"
