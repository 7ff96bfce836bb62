"""The Rollout resource: what a team writes to have a service delivered progressively."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from canary.model.analysis import AnalysisSpec
from canary.model.base import DNS_SUBDOMAIN_PATTERN, CamelModel, ObjectName, Port
from canary.model.gates import GatesSpec
from canary.model.limits import MAX_COUNT, MAX_NAME
from canary.model.meta import ObjectMeta
from canary.model.notification import NotificationsSpec
from canary.model.provider import (
    ProviderSpec,
    gateway_route_problems,
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


TARGET_NAME_MAX = MAX_NAME - len("-primary")


TargetName = Annotated[
    str, Field(min_length=1, max_length=TARGET_NAME_MAX, pattern=DNS_SUBDOMAIN_PATTERN)
]


class TargetRef(CamelModel):
    """The Deployment the team owns; canary keeps a '<name>-primary' copy beside it."""

    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["Deployment"] = "Deployment"
    name: TargetName = Field(
        description="At most 55 characters: the Services '<name>-primary' and '<name>-canary' "
        "must be DNS labels (63).",
    )


class AutoscalerRef(CamelModel):
    """The HorizontalPodAutoscaler that scales the target; canary keeps a '<name>-primary' copy
    scaling '<target>-primary', and sizes the canary by its minReplicas."""

    api_version: Literal["autoscaling/v2"] = "autoscaling/v2"
    kind: Literal["HorizontalPodAutoscaler"] = "HorizontalPodAutoscaler"
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
    autoscaler_ref: AutoscalerRef | None = Field(
        default=None,
        description="The target's HorizontalPodAutoscaler: copied for the primary, and the "
        "canary is started at its minReplicas.",
    )
    service: ServiceSpec
    provider: ProviderSpec
    strategy: Strategy = Field(default_factory=Strategy)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    gates: GatesSpec = Field(default_factory=GatesSpec)
    notifications: NotificationsSpec = Field(default_factory=NotificationsSpec)
    skip_analysis: bool = Field(default=False, description="Promote without judging (emergencies).")
    progress_deadline_seconds: int = Field(
        default=600,
        ge=1,
        le=MAX_COUNT,
        description="How long the canary may take to become ready.",
    )
    suspend: bool = Field(default=False, description="Hold the rollout where it is.")

    @model_validator(mode="after")
    def _provider_can_honour(self) -> RolloutSpec:
        """Each setting the provider cannot honour is reported at its own path."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for flavour in self.provider.flavours:
            problems += self._unsupported(flavour, problems)
        if self.provider.gateway_api is not None:
            problems += gateway_route_problems(self.provider.gateway_api, self.target_ref.name)
        if problems:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "unsupported_by_provider", "{reason}", {"reason": message}
                        ),
                        loc=loc,
                        input=self.provider.name.value,
                    )
                    for loc, message in problems
                ],
            )
        return self

    def _unsupported(
        self, flavour: str, found: list[tuple[tuple[str | int, ...], str]]
    ) -> list[tuple[tuple[str | int, ...], str]]:
        """What ``flavour`` cannot honour, at paths not in ``found`` already."""
        who, fix = _wording(flavour)
        why = why_unsupported(flavour)
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for name in unsupported_route_settings(flavour, self.service.route.settings_in_use()):
            problems.append(
                (
                    ("service", "route", *name.split(".")),
                    f"{who} cannot honour {name} ({why}): remove it or {fix}",
                )
            )
        strategy = self.strategy
        if strategy.kind is StrategyKind.AB_TEST and strategy.ab_test is not None:
            if not supports_feature(flavour, "abTest"):
                problems.append(
                    (
                        ("strategy", "abTest"),
                        f"{who} cannot route by header or cookie ({why}): use the canary strategy",
                    )
                )
            elif not supports_feature(flavour, "cookieMatch"):
                for index, rule in enumerate(strategy.ab_test.match):
                    if rule.cookie is not None:
                        problems.append(
                            (
                                ("strategy", "abTest", "match", index, "cookie"),
                                f"{who} cannot match cookies: match on headers instead",
                            )
                        )
        if strategy.mirror is not None and not supports_feature(flavour, "mirrorToCanary"):
            problems.append(
                (
                    ("strategy", "mirror"),
                    f"{who} cannot mirror traffic to the canary: remove 'mirror' or {fix}",
                )
            )
        seen = {loc for loc, _ in found}
        return [(loc, message) for loc, message in problems if loc not in seen]


def _wording(flavour: str) -> tuple[str, str]:
    """Who cannot honour a setting, and the way out, for an error message."""
    if flavour == "gateway-api-grpc":
        return (
            "a GRPCRoute (spec.provider.gatewayApi.routes)",
            "route the service through HTTPRoutes only",
        )
    return f"provider '{flavour}'", "choose another provider"


class Rollout(CamelModel):
    api_version: Literal["canary.dev/v1alpha1"] = "canary.dev/v1alpha1"
    kind: Literal["Rollout"] = "Rollout"
    metadata: ObjectMeta
    spec: RolloutSpec
    status: RolloutStatus | None = None

    @model_validator(mode="after")
    def _short_name(self) -> Rollout:
        if len(self.metadata.name) > MAX_NAME:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "name_too_long",
                            "a Rollout's name is at most {limit} characters (got {length}): the "
                            "objects and files named after it must fit a DNS label",
                            {"limit": MAX_NAME, "length": len(self.metadata.name)},
                        ),
                        loc=("metadata", "name"),
                        input=self.metadata.name,
                    )
                ],
            )
        return self

    @property
    def key(self) -> str:
        """namespace/name, the rollout's identity in logs and the API."""
        return f"{self.metadata.namespace or 'default'}/{self.metadata.name}"
