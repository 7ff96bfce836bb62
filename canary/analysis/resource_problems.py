"""Why a tenant resource is refused, worded the same by the controller and `canary validate`.

A resource is refused for what the model says of it (each problem names its field, with "did
you mean" for a misspelt one: `canary.model.loader.problems_of`) and, for an AnalysisPolicy or
a ClusterAnalysisPolicy, for what expanding its variables says (a loop, a query grown past its
bound: `canary.analysis.policies.expand`). The controller puts the same words in the Warning
Event on the refused object and in the status of a Rollout that names it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from canary.analysis.checks import CheckResolutionError
from canary.analysis.policies import expand
from canary.model.loader import Problem, problems_of
from canary.model.policy import AnalysisPolicy, ClusterAnalysisPolicy

SHOWN_PROBLEMS = 3
"""Problems spelt out in one message; the others are counted."""


def expansion_problems(resource: BaseModel | None, source: str) -> list[Problem]:
    """The problems of expanding a policy's variables into its queries (none for another
    kind)."""
    if not isinstance(resource, AnalysisPolicy | ClusterAnalysisPolicy):
        return []
    try:
        expand(resource, path="")
    except CheckResolutionError as exc:
        return [Problem(source, exc.path.removeprefix("."), exc.message)]
    return []


def judge_resource(
    raw: dict[str, Any], model: type[BaseModel], source: str = ""
) -> tuple[BaseModel | None, list[Problem]]:
    """``raw`` read as ``model``: the resource, or None and every problem found."""
    try:
        resource = model.model_validate(raw)
    except ValidationError as exc:
        return None, problems_of(source, exc, model=model)
    expanded = expansion_problems(resource, source)
    return (None, expanded) if expanded else (resource, [])


def summary(problems: list[Problem]) -> str:
    """``path: message; path: message (and N more)``: the first few problems, without the
    source."""
    shown = [f"{p.path}: {p.message}" if p.path else p.message for p in problems[:SHOWN_PROBLEMS]]
    more = len(problems) - SHOWN_PROBLEMS
    return "; ".join(shown) + (f" (and {more} more)" if more > 0 else "")
