"""How often a judged rollout is looked at, and what each look covers.

`interval` is the pace of judges that take one sample per window (threshold, as in Flagger;
mann-whitney, as in Kayenta): one window per interval, a step per passing window. The
sequential judge keeps running sums whose tests stay valid however often they are read, so
when every check is judged by it from counts the checks are looked at every *look interval*,
``min(interval, LOOK_INTERVAL_SECONDS)`` unless ``spec.analysis.lookInterval`` says otherwise,
and a bad canary is stopped a look after the evidence is in rather than at the end of the
interval. Each look's window is the time since the previous tick, so windows never overlap:
the sequential sums add them up. docs/engine.md ("Look interval") has the rules.

All functions here are pure: the shells (controller, local runner, simulator) call them with
the checks they resolved, and pass the look interval to `step` in the Observations.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from canary.engine.clock import seconds_since
from canary.model.analysis import CheckKind, CheckSpec, JudgeName
from canary.model.rollout import Rollout
from canary.model.status import RolloutStatus
from canary.model.strategy import StrategyKind

LOOK_INTERVAL_SECONDS = 20.0
"""Default look interval of an evidence-driven analysis (capped by ``interval``). Chosen with
the simulator (docs/analysis.md, "Choosing the look interval", 10-60 s compared): a 5x canary's
blast radius at 10,000 requests a minute is 11 errors at 20 s against 25 at 60 s, with no more
false rollbacks and the fastest promotion of a quiet service (the judge's holds are multiples
of 20 s); and a 20 s window holds two samples of a 10 s Prometheus scrape."""

EVIDENCE_DRIVEN_JUDGES = frozenset({JudgeName.SEQUENTIAL})
"""Judges whose verdicts stay valid however often they are looked at."""

COUNTED_KINDS = frozenset({CheckKind.ERROR_RATE, CheckKind.LATENCY})
"""Checks judged from counts (a custom check's one value per window is judged per window)."""

MAX_WINDOWS_PER_GAP = 4
"""A look after a long gap (a controller restart) queries at most this many intervals back."""


def judge_of(rollout: Rollout, check: CheckSpec, override: JudgeName | None = None) -> JudgeName:
    """The judge of ``check``: an explicit override (``simulate --judge``), then the check's
    own, then the rollout's."""
    return override or check.judge or rollout.spec.analysis.judge


def evidence_driven(
    rollout: Rollout, checks: Sequence[CheckSpec], override: JudgeName | None = None
) -> bool:
    """Every check is judged by an evidence-driven judge, from counts (and there is one)."""
    return bool(checks) and all(
        check.kind in COUNTED_KINDS and judge_of(rollout, check, override) in EVIDENCE_DRIVEN_JUDGES
        for check in checks
    )


def look_interval(
    rollout: Rollout, checks: Sequence[CheckSpec], override: JudgeName | None = None
) -> float:
    """Seconds between looks at the checks while the canary is judged: ``lookInterval`` when
    set; ``min(interval, LOOK_INTERVAL_SECONDS)`` when every check is evidence-driven;
    otherwise ``interval`` (threshold and mann-whitney keep one window per interval)."""
    analysis = rollout.spec.analysis
    if analysis.look_interval is not None:
        return min(analysis.look_interval, analysis.interval)
    if evidence_driven(rollout, checks, override):
        return min(analysis.interval, LOOK_INTERVAL_SECONDS)
    return analysis.interval


def tick_look_interval(rollout: Rollout, look: float | None) -> float:
    """The look interval the engine keeps to: the shell's (``Observations.look_interval``),
    else ``lookInterval``, else ``interval``; never more than ``interval``."""
    analysis = rollout.spec.analysis
    return min(look or analysis.look_interval or analysis.interval, analysis.interval)


def analysis_window(rollout: Rollout, status: RolloutStatus, now: datetime) -> float:
    """The window a look queries: the time since the previous tick, so consecutive windows
    never overlap, within [1 s, MAX_WINDOWS_PER_GAP intervals]."""
    interval = rollout.spec.analysis.interval
    if status.last_tick_at is None:
        return interval
    since = seconds_since(status.last_tick_at, now)
    return min(max(since, 1.0), MAX_WINDOWS_PER_GAP * interval)


def analysis_seconds(status: RolloutStatus, now: datetime) -> float:
    """Seconds since the canary took its first analysis traffic (0 before)."""
    since = status.analysis_started_at or status.started_at
    return max(seconds_since(since, now), 0.0)


def step_seconds(rollout: Rollout, status: RolloutStatus, now: datetime) -> float:
    """Seconds the canary has been held at its current weight. A/B and blue/green keep one
    route for all their iterations: for them it is the whole analysis."""
    if rollout.spec.strategy.kind is not StrategyKind.CANARY:
        return analysis_seconds(status, now)
    since = status.step_started_at or status.analysis_started_at or status.started_at
    return max(seconds_since(since, now), 0.0)


def iteration_seconds(status: RolloutStatus, now: datetime) -> float:
    """Seconds since the current step (weight or iteration) began."""
    since = status.step_started_at or status.analysis_started_at or status.started_at
    return max(seconds_since(since, now), 0.0)
