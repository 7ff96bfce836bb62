"""The judge contract and the registry that maps a JudgeName to its implementation."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from canary.analysis.samples import JudgeContext, WindowSample
from canary.model.analysis import CheckSpec, JudgeName
from canary.model.status import CheckResult, CheckState


class JudgeError(LookupError):
    """A judge that is named but not available."""


class Judge(Protocol):
    """Turns one check's window (and its running state) into a verdict and the new state.

    A judge is pure: same inputs, same outputs. It never reads a clock; ``now`` stamps the
    result. No data on a side is inconclusive, never a pass.
    """

    name: JudgeName

    def judge(
        self,
        check: CheckSpec,
        window: WindowSample,
        state: CheckState,
        context: JudgeContext,
        now: datetime,
    ) -> tuple[CheckResult, CheckState]: ...


_REGISTRY: dict[JudgeName, Judge] = {}


def register_judge(judge: Judge) -> Judge:
    _REGISTRY[judge.name] = judge
    return judge


def get_judge(name: JudgeName) -> Judge:
    try:
        return _REGISTRY[name]
    except KeyError:
        available = ", ".join(sorted(j.value for j in _REGISTRY)) or "none"
        raise JudgeError(
            f"judge '{name.value}' is not available (available: {available})"
        ) from None
