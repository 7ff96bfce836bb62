"""Where a check's numbers come from: the metrics-provider contract and its errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from canary.analysis.samples import SideSample, WindowSample
from canary.model.analysis import CheckSpec


class Targets(BaseModel):
    """The names a check's queries are about (filled into its {{ variables }})."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    target: str
    canary: str
    primary: str


class MetricsError(Exception):
    """A check's data could not be had; the check is inconclusive, never passed."""


class MetricsUnavailableError(MetricsError):
    """The metrics server could not be reached, timed out or failed (worth retrying)."""


class QueryError(MetricsError):
    """The server refused the query (bad PromQL, unknown function): fix the policy."""


@runtime_checkable
class BaselineProvider(Protocol):
    """A provider that can also tell a check's primary counts over a window before ``start``
    (the primary's usual failure rate; None: no series there, no history)."""

    def baseline(
        self, check: CheckSpec, variables: Mapping[str, str], start: datetime, seconds: float
    ) -> SideSample | None: ...


def inner_baseline(
    inner: object, check: CheckSpec, variables: Mapping[str, str], start: datetime, seconds: float
) -> SideSample | None:
    """What a wrapping provider answers for a baseline: its inner provider's, or no history
    when that cannot tell it."""
    if isinstance(inner, BaselineProvider):
        return inner.baseline(check, variables, start, seconds)
    return None


class MetricsProvider(Protocol):
    """Turns one check into one window of canary and primary data at time ``at``."""

    def window(
        self, check: CheckSpec, variables: Mapping[str, str], at: datetime
    ) -> WindowSample: ...


Asked = tuple[CheckSpec, Mapping[str, str]]
"""A check and its look's {{ variables }}."""


@runtime_checkable
class BatchProvider(Protocol):
    """A provider that answers a tick's checks together (fewer requests than one a check);
    each check's window, or the MetricsError that check alone would have raised."""

    def batch_windows(
        self, asked: Sequence[Asked], at: datetime
    ) -> list[WindowSample | MetricsError]: ...


def windows_of(
    provider: MetricsProvider, asked: Sequence[Asked], at: datetime
) -> list[WindowSample | MetricsError]:
    """Every asked check's window at ``at`` (or its error), together when the provider can."""
    if isinstance(provider, BatchProvider):
        return provider.batch_windows(asked, at)
    out: list[WindowSample | MetricsError] = []
    for check, variables in asked:
        try:
            out.append(provider.window(check, variables, at))
        except MetricsError as exc:
            out.append(exc)
    return out
