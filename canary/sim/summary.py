"""Many seeded runs of one world, summarised: how often the rollout was promoted or rolled
back, how long the decision took and how many bad requests the canary served, with 95%
intervals. What `canary simulate --runs N` prints."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from statistics import median
from typing import Any

from pydantic import Field

from canary.model.base import CamelModel
from canary.model.status import Phase
from canary.sim.result import SimulationResult

_Z = 1.959963984540054  # the normal's 97.5% point
_UNDECIDED_MARK = "past inconclusiveDeadline"


class Interval(CamelModel):
    low: float
    high: float


class Summary(CamelModel):
    """What N runs of one world came to."""

    runs: int
    first_seed: int
    promoted: int = Field(description="Runs that ended promoted (Succeeded).")
    rolled_back: int = Field(description="Runs that ended rolled back (Failed), for any reason.")
    rolled_back_by_judgement: int = Field(
        description="Rolled back on evidence or failed ticks, not at the deadline."
    )
    undecided: int = Field(
        description="Runs that reached inconclusiveDeadline undecided (whatever onUndecided did)."
    )
    paused: int = Field(description="Runs left paused for a person (onUndecided: pause).")
    promoted_share: Interval = Field(description="95% Wilson interval of promoted / runs.")
    rolled_back_share: Interval
    median_minutes_to_decision: float | None = Field(
        default=None, description="From the new revision to Succeeded, Failed or the pause."
    )
    median_minutes_interval: Interval | None = None
    median_canary_bad_requests: float | None = Field(
        default=None, description="Failed requests the canary served, per run (median)."
    )
    median_canary_bad_requests_interval: Interval | None = None
    mean_canary_bad_requests: float = 0.0
    undecided_needs: list[str] = Field(
        default_factory=list,
        description="What the first few undecided runs said they needed, in their own words.",
    )

    def to_json_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def summarise(results: Sequence[SimulationResult], first_seed: int) -> Summary:
    """The summary of ``results`` (one per seed from ``first_seed``)."""
    runs = len(results)
    promoted = sum(r.phase is Phase.SUCCEEDED for r in results)
    rolled_back = sum(r.phase is Phase.FAILED for r in results)
    undecided = [r for r in results if _undecided(r)]
    by_judgement = sum(r.phase is Phase.FAILED and not _undecided(r) for r in results)
    minutes = sorted(r.duration_seconds / 60.0 for r in results)
    bad = sorted(float(r.canary_errors) for r in results)
    return Summary(
        runs=runs,
        first_seed=first_seed,
        promoted=promoted,
        rolled_back=rolled_back,
        rolled_back_by_judgement=by_judgement,
        undecided=len(undecided),
        paused=sum(r.phase is Phase.PAUSED for r in results),
        promoted_share=wilson(promoted, runs),
        rolled_back_share=wilson(rolled_back, runs),
        median_minutes_to_decision=median(minutes) if minutes else None,
        median_minutes_interval=median_interval(minutes),
        median_canary_bad_requests=median(bad) if bad else None,
        median_canary_bad_requests_interval=median_interval(bad),
        mean_canary_bad_requests=sum(bad) / runs if runs else 0.0,
        undecided_needs=[_needs(r) for r in undecided[:3]],
    )


def wilson(successes: int, trials: int) -> Interval:
    """The 95% Wilson score interval of a share."""
    if trials <= 0:
        return Interval(low=0.0, high=1.0)
    p = successes / trials
    denominator = 1.0 + _Z**2 / trials
    centre = (p + _Z**2 / (2 * trials)) / denominator
    half = _Z * math.sqrt(p * (1 - p) / trials + _Z**2 / (4 * trials**2)) / denominator
    return Interval(low=round(max(0.0, centre - half), 4), high=round(min(1.0, centre + half), 4))


def median_interval(ordered: Sequence[float]) -> Interval | None:
    """A distribution-free 95% interval for the median of sorted values: the order statistics
    n/2 -+ 1.96 sqrt(n)/2 (the binomial's normal approximation)."""
    n = len(ordered)
    if n == 0:
        return None
    half = _Z * math.sqrt(n) / 2.0
    low = max(0, math.floor(n / 2.0 - half) - 1)
    high = min(n - 1, math.ceil(n / 2.0 + half))
    return Interval(low=ordered[low], high=ordered[high])


def _undecided(result: SimulationResult) -> bool:
    return result.phase is Phase.PAUSED or _UNDECIDED_MARK in _reason(result)


def _reason(result: SimulationResult) -> str:
    return result.reason or result.message


_CHECK_BREAK = re.compile(r"; [A-Za-z0-9_.-]+: ")
"""Where the next check's message begins in an engine summary ("...; latency: ...")."""


def _needs(result: SimulationResult) -> str:
    """What an undecided run was missing, in the judge's words where it said so."""
    reason = _reason(result)
    for mark in ("needs about", "cannot show"):
        at = reason.find(mark)
        if at >= 0:
            return _CHECK_BREAK.split(reason[at:])[0].split(")")[0]
    if "holding for more data" in reason:
        return "the evidence leaned towards harm (held) but never crossed 1/alpha"
    return reason[:300]
