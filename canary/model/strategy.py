"""How traffic moves to the canary: weighted steps, an A/B test, or a blue/green switch."""

from __future__ import annotations

from enum import StrEnum
from itertools import pairwise
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator, model_validator

from canary.model.base import CamelModel
from canary.model.route import HeaderName

StepWeight = Annotated[int, Field(ge=1, le=100)]

DEFAULT_STEP_WEIGHT = 10
DEFAULT_MAX_WEIGHT = 50


class CanaryStrategy(CamelModel):
    """Weighted steps: an explicit list of weights, or a step and a maximum."""

    weights: list[StepWeight] | None = Field(
        default=None,
        min_length=1,
        description="Canary weights in percent, rising, e.g. [5, 10, 25, 50].",
    )
    step_weight: StepWeight | None = Field(
        default=None, description="Added to the weight at each step."
    )
    max_weight: StepWeight | None = Field(
        default=None, description="Last weight before promotion (with stepWeight; default 50)."
    )
    promotion_step_weight: StepWeight | None = Field(
        default=None,
        description="After the primary is updated, move traffic back to it by this much per tick "
        "instead of all at once.",
    )

    @field_validator("weights")
    @classmethod
    def _weights_rise(cls, weights: list[int] | None) -> list[int] | None:
        if weights is not None:
            for before, after in pairwise(weights):
                if after <= before:
                    raise ValueError(
                        f"weights must rise: {after} follows {before} in {weights}; "
                        "list each step's weight in increasing order"
                    )
        return weights

    @model_validator(mode="after")
    def _one_schedule(self) -> CanaryStrategy:
        if self.weights is not None and (
            self.step_weight is not None or self.max_weight is not None
        ):
            raise ValueError(
                "give either 'weights' (an explicit list) or 'stepWeight'/'maxWeight', not both"
            )
        if (
            self.max_weight is not None
            and self.step_weight is not None
            and self.step_weight > self.max_weight
        ):
            raise ValueError(
                f"stepWeight {self.step_weight} is above maxWeight {self.max_weight}: "
                "lower stepWeight or raise maxWeight"
            )
        return self

    def schedule(self) -> list[int]:
        """The weights the canary is stepped through, in order."""
        if self.weights is not None:
            return list(self.weights)
        top = self.max_weight or max(DEFAULT_MAX_WEIGHT, self.step_weight or 0)
        step = self.step_weight or min(DEFAULT_STEP_WEIGHT, top)
        weights = list(range(step, top + 1, step))
        if weights[-1] != top:
            weights.append(top)
        return weights


class StringMatch(CamelModel):
    """Exactly one of exact, prefix or regex."""

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> StringMatch:
        given = [k for k in ("exact", "prefix", "regex") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of exact, prefix or regex (got {', '.join(given) or 'none'})"
            )
        return self


class CookieMatch(CamelModel):
    name: str = Field(min_length=1)
    value: str = Field(min_length=1)


class MatchRule(CamelModel):
    """A request matches when all its conditions hold; a list of rules matches when any does."""

    headers: dict[HeaderName, StringMatch] = Field(default_factory=dict)
    cookie: CookieMatch | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> MatchRule:
        if not self.headers and self.cookie is None:
            raise ValueError(
                "a match rule needs 'headers' or 'cookie': an empty rule matches everything"
            )
        return self


class ABTestStrategy(CamelModel):
    """Matching requests go to the canary for a number of passing iterations."""

    match: list[MatchRule] = Field(min_length=1)
    iterations: int = Field(default=10, ge=1, le=1000)


class BlueGreenStrategy(CamelModel):
    """The canary is judged with no live traffic, then takes all of it at once."""

    iterations: int = Field(default=10, ge=1, le=1000)


class MirrorToCanary(CamelModel):
    """During analysis, send a copy of live traffic to the canary (responses are dropped)."""

    percentage: float = Field(default=100.0, gt=0, le=100)


class StrategyKind(StrEnum):
    CANARY = "canary"
    AB_TEST = "abTest"
    BLUE_GREEN = "blueGreen"


class Strategy(CamelModel):
    """Exactly one of canary, abTest or blueGreen; weighted canary steps by default."""

    canary: CanaryStrategy | None = None
    ab_test: ABTestStrategy | None = None
    blue_green: BlueGreenStrategy | None = None
    mirror: MirrorToCanary | None = None

    @field_validator("mirror")
    @classmethod
    def _mirror_needs_blue_green(
        cls, mirror: MirrorToCanary | None, info: ValidationInfo
    ) -> MirrorToCanary | None:
        # Only when blueGreen itself was valid (absent counts as valid: None).
        if mirror is not None and "blue_green" in info.data and info.data["blue_green"] is None:
            raise ValueError(
                "'mirror' works with blueGreen only: with canary or abTest the canary already "
                "takes live traffic; remove 'mirror' or use blueGreen"
            )
        return mirror

    @model_validator(mode="after")
    def _one_kind(self) -> Strategy:
        given = [
            k
            for k, v in (
                ("canary", self.canary),
                ("abTest", self.ab_test),
                ("blueGreen", self.blue_green),
            )
            if v is not None
        ]
        if len(given) > 1:
            raise ValueError(f"choose one strategy, not {' and '.join(given)}")
        return self

    @property
    def kind(self) -> StrategyKind:
        if self.ab_test is not None:
            return StrategyKind.AB_TEST
        if self.blue_green is not None:
            return StrategyKind.BLUE_GREEN
        return StrategyKind.CANARY

    def canary_or_default(self) -> CanaryStrategy:
        return self.canary if self.canary is not None else CanaryStrategy()
