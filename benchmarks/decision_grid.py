"""The decision benchmark's grid: cells, judges as configured, one seeded run, a cell's figures.

A cell is (total requests a minute, primary error rate, canary effect); every cell is run for
every judge over the same seeds 0 .. N-1 through the public simulator API
(``canary.sim.simulate``), in virtual time.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from canary.analysis.checks import resolve_checks
from canary.model.analysis import CheckKind, JudgeName
from canary.model.loader import load_rollout
from canary.model.rollout import Rollout
from canary.model.status import Phase
from canary.sim import SimulationResult, simulate
from canary.sim.scenario import Scenario

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "podinfo-istio.yaml"
RATES = (10, 100, 1_000, 10_000)
QUICK_RATES = (100, 1_000)
ERRORS = (0.1, 1.0)

THRESHOLD = "threshold"
MANN_WHITNEY = "mann-whitney"
SEQUENTIAL = "sequential"
JUDGES = (THRESHOLD, MANN_WHITNEY, SEQUENTIAL)

FLAGGER_FAILURE_LIMIT = 5
"""Flagger's ``threshold: 5``: failed checks (over the whole analysis) before a rollback."""

FLAGGER_MIN_REQUESTS = 1
"""No minimum request count: a window with at least one canary request is judged; one with
none has no value (our threshold judge: inconclusive, no data)."""

DETECTED = 0.5
"""A judge *detects* a worse canary in a cell when it rolls back at least this share of runs."""


@dataclass(frozen=True, slots=True)
class Effect:
    """What is wrong with the canary: nothing (A/A), more errors, or slower answers."""

    label: str
    kind: str  # "aa", "errors" or "latency"
    error_multiplier: float = 1.0
    latency_multiplier: float = 1.0

    @property
    def healthy(self) -> bool:
        return self.kind == "aa"


AA = Effect("A/A", "aa")

EFFECTS = (
    AA,
    Effect("1.5x errors", "errors", error_multiplier=1.5),
    Effect("2x errors", "errors", error_multiplier=2.0),
    Effect("5x errors", "errors", error_multiplier=5.0),
    Effect("p99 +20%", "latency", latency_multiplier=1.2),
    Effect("p99 +100%", "latency", latency_multiplier=2.0),
)


@dataclass(frozen=True, slots=True)
class CellKey:
    rate: int
    error: float
    effect: Effect

    def scenario(self) -> Scenario:
        return Scenario(
            name=f"{self.rate}rpm-{self.error:g}pct-{self.effect.label}",
            requests_per_minute=float(self.rate),
            primary_error_percent=self.error,
            canary_error_multiplier=self.effect.error_multiplier,
            canary_latency_multiplier=self.effect.latency_multiplier,
        )

    def short(self) -> str:
        return f"{self.error:g}% {self.rate:,}/min {self.effect.label}"


def grid(rates: Sequence[int], errors: Sequence[float] = ERRORS) -> list[CellKey]:
    """Every cell, ordered by primary error rate, then traffic, then effect."""
    return [
        CellKey(rate, error, effect) for error in errors for rate in rates for effect in EFFECTS
    ]


@lru_cache(maxsize=8)
def judge_rollout(judge: str) -> Rollout:
    """The istio example as each judge runs it.

    ``sequential`` and ``mann-whitney``: the example unchanged (the project's defaults:
    failureLimit 3, minRequests 20, inconclusiveDeadline 10m, interval 1m), judged by that
    judge. ``threshold``: Flagger's documented rules — the built-in checks already say
    error rate <= 1% and p99 <= 500 ms per window — with failureLimit 5 and minRequests 1.
    """
    rollout = load_rollout(EXAMPLE).model_copy(deep=True)
    rollout.spec.analysis.judge = JudgeName(judge)
    if judge == THRESHOLD:
        rollout.spec.analysis.failure_limit = FLAGGER_FAILURE_LIMIT
        rollout.spec.analysis.min_requests = FLAGGER_MIN_REQUESTS
    return rollout


def look_seconds(judge: str) -> float:
    """Seconds between the judge's looks at the checks in the simulator: the engine's look
    interval where the engine has one (canary.engine.timing), else ``interval``."""
    rollout = judge_rollout(judge)
    try:
        from canary.engine.timing import look_interval
    except ImportError:  # an engine without look intervals looks once per interval
        return float(rollout.spec.analysis.interval)
    return float(look_interval(rollout, resolve_checks(rollout), JudgeName(judge)))


@dataclass(frozen=True, slots=True)
class Run:
    """One seeded rollout, reduced to what the figures need."""

    promoted: bool
    rolled_back: bool
    minutes: float
    canary_requests: int
    canary_errors: int
    canary_slow: int  # canary requests slower than the latency objective, over judged windows
    cause: str  # why it was rolled back: crossing, failure limit, deadline, other; "" if not

    def bad(self, effect: Effect) -> int:
        """The canary's bad requests: slow ones for a latency effect, failed ones otherwise."""
        return self.canary_slow if effect.kind == "latency" else self.canary_errors


def _cause(result: SimulationResult) -> str:
    for entry in result.timeline:
        if entry.phase in (Phase.ROLLING_BACK, Phase.FAILED):
            message = entry.message.lower()
            if "inconclusivedeadline" in message:
                return "deadline"
            if "failurelimit" in message:
                return "failure limit"
            if "conclusive" in message:
                return "crossing"
            return "other"
    return "other"


def _reduce(result: SimulationResult) -> Run:
    rolled_back = result.phase is Phase.FAILED
    slow = sum(
        check.canary_failures or 0
        for entry in result.timeline
        for check in entry.checks
        if check.kind is CheckKind.LATENCY
    )
    return Run(
        promoted=result.phase is Phase.SUCCEEDED,
        rolled_back=rolled_back,
        minutes=result.duration_seconds / 60.0,
        canary_requests=result.canary_requests,
        canary_errors=result.canary_errors,
        canary_slow=slow,
        cause=_cause(result) if rolled_back else "",
    )


def run_chunk(task: tuple[str, CellKey, int, int]) -> list[Run]:
    """Seeds ``start`` .. ``stop - 1`` of one cell under one judge. The timeline is recorded
    because the latency check's slow canary requests are only in it (summed over the judged
    windows; a rolled-back canary serves no unjudged window)."""
    judge, key, start, stop = task
    rollout = judge_rollout(judge)
    scenario = key.scenario()
    return [
        _reduce(simulate(rollout, scenario, seed, judge=JudgeName(judge), record_timeline=True))
        for seed in range(start, stop)
    ]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson interval of a rate of k in n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class Cell:
    """One judge's runs of one cell, and the figures the report shows."""

    judge: str
    key: CellKey
    runs: tuple[Run, ...]

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def rolled_back(self) -> int:
        return sum(r.rolled_back for r in self.runs)

    @property
    def rollback_rate(self) -> float:
        return self.rolled_back / self.n if self.n else 0.0

    def interval(self) -> tuple[float, float]:
        return wilson(self.rolled_back, self.n)

    @property
    def detects(self) -> bool:
        return not self.key.effect.healthy and self.rollback_rate >= DETECTED

    def _detected(self) -> list[Run]:
        return [r for r in self.runs if r.rolled_back]

    def blast(self) -> tuple[float, float] | None:
        """Median and p90 bad requests the canary served before the rollback (detected runs)."""
        bad = [r.bad(self.key.effect) for r in self._detected()]
        if not bad:
            return None
        return float(np.median(bad)), float(np.percentile(bad, 90))

    def requests_to_detect(self) -> float | None:
        """Mean canary requests served until the rollback, over the detected runs."""
        detected = self._detected()
        return float(np.mean([r.canary_requests for r in detected])) if detected else None

    def minutes_to_rollback(self) -> float | None:
        detected = self._detected()
        return float(np.median([r.minutes for r in detected])) if detected else None

    def promotion(self) -> float | None:
        """Median minutes from the new revision to Succeeded, when at least a quarter of the
        runs were promoted (fewer make a median that says little)."""
        minutes = [r.minutes for r in self.runs if r.promoted]
        if not minutes or len(minutes) < self.n / 4:
            return None
        return float(np.median(minutes))

    @property
    def promoted(self) -> int:
        return sum(r.promoted for r in self.runs)

    def causes(self) -> Counter[str]:
        return Counter(r.cause for r in self._detected())


def chunks(
    judges: Sequence[str], keys: Sequence[CellKey], seeds: int, size: int
) -> list[tuple[str, CellKey, int, int]]:
    """The work: each (judge, cell) split into runs of ``size`` seeds."""
    return [
        (judge, key, start, min(seeds, start + size))
        for key in keys
        for judge in judges
        for start in range(0, seeds, size)
    ]
