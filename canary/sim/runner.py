"""Drive the engine through a rollout in virtual time, against a simulated world.

The world starts with revision rev-1 on the target; the engine creates the primary from it.
Once the rollout is Initialized the target moves to rev-2, the canary, which the engine then
rolls out. Each tick: the traffic since the last tick is drawn from the scenario, the engine's
`plan` says what it needs, webhooks answer yes (rollback hooks no), approvals are given, the
judges turn the window into verdicts, `step` decides, and the world applies the actions.
The next tick comes `requeue_after` virtual seconds later (while the canary is judged, the look
interval: canary.engine.timing), and its window is the time since this one. Same seed, same
result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from canary.analysis.analyse import judge_context
from canary.analysis.checks import LATENCY_OBJECTIVE_MS, resolve_checks
from canary.analysis.judges.base import Judge, get_judge
from canary.analysis.judges.common import quantile_label
from canary.analysis.judges.score import apply_score
from canary.analysis.samples import JudgeContext, PodCounts, SideSample, WindowSample
from canary.engine import Command, CommandKind, GateAnswer, Observations, plan, step
from canary.engine.progress import UNDECIDED
from canary.engine.timing import look_interval
from canary.model.analysis import CheckKind, CheckSpec, JudgeName
from canary.model.gates import ApprovalPoint, GateType
from canary.model.rollout import Rollout
from canary.model.status import CheckResult, CheckState, Phase, RolloutStatus
from canary.model.strategy import StrategyKind
from canary.sim.result import CheckOutcome, CheckSummary, SimulationResult, TimelineEntry
from canary.sim.scenario import Scenario
from canary.sim.traffic import (
    Counts,
    SideModel,
    canary_load,
    draw_latency,
    serve,
    serve_pods,
    side_models,
)
from canary.sim.weather import Weather, baseline_counts
from canary.sim.world import World

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
"""Virtual time starts here."""

STABLE_REVISION = "rev-1"
NEW_REVISION = "rev-2"
TIME_LIMIT_SECONDS = 6 * 3600.0
_DONE = frozenset({Phase.SUCCEEDED, Phase.FAILED})
_DECIDING = frozenset({Phase.ROLLING_BACK, Phase.PROMOTING, Phase.PAUSED})
_APPROVAL_POINTS = frozenset(p.value for p in ApprovalPoint)


@dataclass(frozen=True, slots=True)
class _Check:
    spec: CheckSpec
    judge: Judge
    objective_ms: float
    quantile: float


@dataclass(slots=True)
class _Window:
    """What each side served since the last tick, and which version served it."""

    canary: Counts
    primary: Counts
    canary_model: SideModel
    primary_model: SideModel


def simulate(
    rollout: Rollout,
    scenario: Scenario,
    seed: int = 1,
    *,
    judge: JudgeName | None = None,
    time_limit: float = TIME_LIMIT_SECONDS,
    record_timeline: bool = True,
) -> SimulationResult:
    """Run ``rollout`` against ``scenario``. ``judge`` overrides the rollout's and the checks'
    judges. Raises CheckResolutionError for inline checks that cannot be resolved and
    JudgeError for a judge that is not available."""
    resolved = resolve_checks(rollout)
    checks, notes = _plan_checks(rollout, resolved, judge)
    look = look_interval(rollout, resolved, judge)
    rng = np.random.default_rng(seed)
    weather = Weather.draw(scenario, seed, time_limit)
    stable_model, new_model = side_models(scenario)
    models = {STABLE_REVISION: stable_model, NEW_REVISION: new_model}
    blue_green = rollout.spec.strategy.kind is StrategyKind.BLUE_GREEN
    world = World(
        target_revision=STABLE_REVISION,
        canary_ready_seconds=scenario.canary_ready_seconds,
        promotion_seconds=scenario.promotion_seconds,
    )
    expected_per_second = scenario.requests_per_minute / 60.0
    status = RolloutStatus()
    totals = _Window(Counts(), Counts(), new_model, stable_model)
    timeline: list[TimelineEntry] = []
    reason = ""
    detected_at: float | None = None
    t = last_t = 0.0
    history: tuple[int, int] | None = None
    while True:
        if detected_at is None and world.target_revision == NEW_REVISION:
            detected_at = t
            baseline = rollout.spec.analysis.baseline
            history = baseline_counts(scenario, weather, seed, t, baseline)
        # Traffic is drawn from the detection of the new revision on (before it, only the
        # primary serves and nothing is judged).
        expected = expected_per_second * (t - last_t) if detected_at is not None else 0.0
        expected *= weather.volume(last_t, t)
        common = weather.error_factor(last_t, t)
        window = _traffic(world, rng, models, expected, (last_t, common), blue_green, weather)
        _add(totals, window)
        workload = world.observe(t)
        needs = plan(rollout, status, workload)
        results: list[CheckResult] = []
        states: list[CheckState] = []
        samples: list[WindowSample] = []
        now = EPOCH + timedelta(seconds=t)
        if needs.analyse:
            samples = _samples(checks, window, rng, history)
            context = judge_context(rollout, status, resolved, now, judge)
            results, states = _judge(status, checks, samples, context, now)
        observations = Observations(
            workload=workload,
            checks=results,
            check_states=states,
            gates=[
                GateAnswer(name=h.name, type=h.type, open=h.type is not GateType.ROLLBACK)
                for h in needs.webhooks
            ],
            commands=_approvals(status),
            look_interval=look,
        )
        outcome = step(rollout, status, observations, now)
        if outcome.status.phase is not status.phase and outcome.status.phase in _DECIDING:
            reason = outcome.status.message
        status = outcome.status
        world.apply(outcome.actions, t)
        if detected_at is not None and record_timeline:
            timeline.append(_entry(t - detected_at, status, checks, samples, results))
        if world.target_revision == STABLE_REVISION and status.phase is Phase.INITIALIZED:
            world.target_revision = NEW_REVISION
        if detected_at is not None and status.phase in _DONE:
            break
        if status.waiting_for == UNDECIDED:  # onUndecided: pause; nobody here decides
            notes.append(f"paused for a person: {status.message}")
            break
        if t >= time_limit:
            notes.append(
                f"stopped after {time_limit:.0f}s of virtual time with the rollout still "
                f"{status.phase.value}: {status.message}"
            )
            break
        last_t, t = t, t + outcome.requeue_after
    return SimulationResult(
        scenario=scenario.name,
        seed=seed,
        phase=status.phase,
        message=status.message,
        checks=[
            CheckSummary(
                name=c.spec.name,
                kind=c.spec.kind,
                judge=c.judge.name.value,
                max=c.spec.max,
                min=c.spec.min,
            )
            for c in checks
        ],
        canary_requests=totals.canary.requests,
        canary_errors=totals.canary.errors,
        primary_requests=totals.primary.requests,
        primary_errors=totals.primary.errors,
        duration_seconds=t - detected_at if detected_at is not None else 0.0,
        final_weight=world.route.canary_weight,
        primary_revision=world.primary_revision,
        stable_revision=status.stable_revision,
        timed_out=status.phase not in _DONE or detected_at is None,
        reason=reason,
        notes=notes,
        timeline=timeline,
    )


def _plan_checks(
    rollout: Rollout, resolved: list[CheckSpec], override: JudgeName | None
) -> tuple[list[_Check], list[str]]:
    notes: list[str] = []
    planned: list[_Check] = []
    for spec in resolved:
        if spec.kind is CheckKind.CUSTOM:
            notes.append(f"custom check '{spec.name}' is not simulated: it is left out")
            continue
        name = override or spec.judge or rollout.spec.analysis.judge
        objective = spec.max if spec.kind is CheckKind.LATENCY and spec.max else None
        label = quantile_label(spec)
        planned.append(
            _Check(
                spec=spec,
                judge=get_judge(name),
                objective_ms=objective or LATENCY_OBJECTIVE_MS,
                quantile=float(label[1:]) / 100.0,
            )
        )
    return planned, notes


def _traffic(
    world: World,
    rng: np.random.Generator,
    models: dict[str, SideModel],
    expected: float,
    window: tuple[float, float],
    blue_green: bool,
    weather: Weather,
) -> _Window:
    """Requests and errors of each side over the window that started at ``window[0]``, both
    sides' error rates times ``window[1]`` (bursts and cycle) and their pods' factors."""
    since, common = window
    ready = world.canary_ready(since)
    canary_model = models[world.canary_revision or NEW_REVISION]
    primary_model = models[world.primary_revision or STABLE_REVISION]
    live, extra = canary_load(world.route, blue_green=blue_green, canary_ready=ready)
    canary_expected, primary_expected = expected * (live + extra), expected * (1.0 - live)
    if weather.canary_pods:  # each pod's counts, as series with a pod label show them
        canary = serve_pods(
            rng, canary_model, canary_expected, weather.canary_pods, up=ready, error_factor=common
        )
        primary = serve_pods(
            rng, primary_model, primary_expected, weather.primary_pods, up=True, error_factor=common
        )
    else:
        canary = serve(rng, canary_model, canary_expected, up=ready, error_factor=common)
        primary = serve(rng, primary_model, primary_expected, up=True, error_factor=common)
    return _Window(canary, primary, canary_model, primary_model)


def _add(totals: _Window, window: _Window) -> None:
    totals.canary.requests += window.canary.requests
    totals.canary.errors += window.canary.errors
    totals.primary.requests += window.primary.requests
    totals.primary.errors += window.primary.errors


def _samples(
    checks: list[_Check],
    window: _Window,
    rng: np.random.Generator,
    history: tuple[int, int] | None,
) -> list[WindowSample]:
    """Each check's view of the window (the same requests; errors, or slow ones and p99),
    with the primary's history before the analysis for an error-rate check."""
    return [
        WindowSample(
            canary=_sample(check, window.canary, window.canary_model, rng, "canary"),
            primary=_sample(check, window.primary, window.primary_model, rng, "primary"),
            baseline=_baseline(check, history),
        )
        for check in checks
    ]


def _baseline(check: _Check, history: tuple[int, int] | None) -> SideSample | None:
    if history is None or check.spec.kind is not CheckKind.ERROR_RATE:
        return None
    return SideSample(requests=history[0], failures=history[1])


def _judge(
    status: RolloutStatus,
    checks: list[_Check],
    samples: list[WindowSample],
    context: JudgeContext,
    now: datetime,
) -> tuple[list[CheckResult], list[CheckState]]:
    previous = {s.name: s for s in status.analysis}
    results: list[CheckResult] = []
    states: list[CheckState] = []
    for check, sample in zip(checks, samples, strict=True):
        state = previous.get(check.spec.name) or CheckState(name=check.spec.name)
        result, new_state = check.judge.judge(check.spec, sample, state, context, now)
        results.append(result)
        states.append(new_state)
    # As in canary.analysis.analyse: the weighted score settles the mann-whitney verdicts.
    return apply_score(results, [c.spec for c in checks]), states


def _sample(
    check: _Check, counts: Counts, model: SideModel, rng: np.random.Generator, side: str
) -> SideSample:
    """The side as the check's metrics would show it: errors, or slow requests and a quantile."""
    if check.spec.kind is CheckKind.LATENCY:
        slow, value = draw_latency(rng, model, counts.requests, check.objective_ms, check.quantile)
        return SideSample(requests=counts.requests, failures=slow, value=value)
    percent = 100.0 * counts.errors / counts.requests if counts.requests else None
    pods = tuple(PodCounts(name=f"{side}-{i}", requests=n, failures=x) for i, n, x in counts.pods)
    return SideSample(requests=counts.requests, failures=counts.errors, value=percent, pods=pods)


def _approvals(status: RolloutStatus) -> list[Command]:
    """The simulated people approve whatever the rollout waits on."""
    if status.waiting_for in _APPROVAL_POINTS:
        return [
            Command(
                kind=CommandKind.APPROVE,
                point=ApprovalPoint(status.waiting_for),
                by="simulator",
            )
        ]
    return []


def _entry(
    offset: float,
    status: RolloutStatus,
    checks: list[_Check],
    samples: list[WindowSample],
    results: list[CheckResult],
) -> TimelineEntry:
    """The tick as the timeline shows it: each check's window numbers beside its verdict."""
    outcomes = []
    judged = zip(checks, samples, results, strict=True) if results else ()
    for check, sample, result in judged:
        canary, primary = sample.canary, sample.primary
        outcomes.append(
            CheckOutcome(
                name=result.name,
                kind=check.spec.kind,
                judge=result.judge,
                verdict=result.verdict,
                canary_requests=canary.requests if canary else None,
                canary_failures=canary.failures if canary else None,
                canary_value=_round(canary.value) if canary else None,
                primary_requests=primary.requests if primary else None,
                primary_failures=primary.failures if primary else None,
                primary_value=_round(primary.value) if primary else None,
                statistic=_round(result.statistic),
                message=result.message,
            )
        )
    return TimelineEntry(
        time=offset,
        phase=status.phase,
        weight=status.canary_weight,
        checks=outcomes,
        message=status.message,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
