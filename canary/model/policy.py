"""AnalysisPolicy (namespaced) and ClusterAnalysisPolicy: named, reusable checks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from canary.model.analysis import CheckSpec
from canary.model.base import CamelModel
from canary.model.meta import ObjectMeta


class AnalysisPolicySpec(CamelModel):
    description: str = ""
    variables: dict[str, str] = Field(
        default_factory=dict, description="Defaults for {{ variables }} used in the queries."
    )
    checks: list[CheckSpec] = Field(min_length=1)

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
