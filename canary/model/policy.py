"""AnalysisPolicy (namespaced) and ClusterAnalysisPolicy: named, reusable checks."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from canary.model.analysis import CheckSpec
from canary.model.base import CamelModel
from canary.model.limits import MAX_CHECKS, MAX_QUERY, MAX_VARIABLES, ShortText
from canary.model.meta import ObjectMeta

VariableName = Annotated[
    str, StringConstraints(min_length=1, max_length=63, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
]
VariableValue = Annotated[str, StringConstraints(max_length=MAX_QUERY)]


OverridableField = Literal[
    "max", "min", "margin", "judge", "weight", "critical", "compareToPrimary"
]
DEFAULT_OVERRIDABLE: tuple[OverridableField, ...] = (
    "max",
    "min",
    "margin",
    "judge",
    "weight",
    "critical",
    "compareToPrimary",
)


class AnalysisPolicySpec(CamelModel):
    description: ShortText = ""
    variables: dict[VariableName, VariableValue] = Field(
        default_factory=dict,
        max_length=MAX_VARIABLES,
        description="Defaults for {{ variables }} used in the queries (PromQL text; a value may "
        "use other variables, at most 8 deep, and a query expands to at most 16384 characters).",
    )
    checks: list[CheckSpec] = Field(min_length=1, max_length=MAX_CHECKS)
    namespace_label: str | None = Field(
        default=None,
        max_length=63,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="The label holding a series' namespace: every selector of this policy's "
        "queries, and of the inline checks of Rollouts using it, must match it exactly "
        'with "{{ namespace }}", and no label_replace/label_join may write it.',
    )
    overridable: list[OverridableField] = Field(
        default_factory=lambda: list(DEFAULT_OVERRIDABLE),
        max_length=len(DEFAULT_OVERRIDABLE),
        description="The fields of this policy's checks a Rollout may override by an inline "
        "check of the same name. Queries and kind never are; a platform policy may narrow this "
        "to e.g. [max, margin], or [] to forbid any override.",
    )

    @model_validator(mode="after")
    def _complete_and_unique(self) -> AnalysisPolicySpec:
        names = [c.name for c in self.checks]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"check names must be unique: {', '.join(duplicated)} repeated")
        for check in self.checks:
            if not check.is_complete():
                raise ValueError(
                    f"check '{check.name}' is incomplete: a policy check needs 'kind' and its "
                    "queries (requestsQuery and failuresQuery, or query for kind custom)"
                )
        return self


class AnalysisPolicy(CamelModel):
    api_version: Literal["canary.dev/v1alpha1"] = "canary.dev/v1alpha1"
    kind: Literal["AnalysisPolicy"] = "AnalysisPolicy"
    metadata: ObjectMeta
    spec: AnalysisPolicySpec


class ClusterAnalysisPolicy(CamelModel):
    api_version: Literal["canary.dev/v1alpha1"] = "canary.dev/v1alpha1"
    kind: Literal["ClusterAnalysisPolicy"] = "ClusterAnalysisPolicy"
    metadata: ObjectMeta
    spec: AnalysisPolicySpec
