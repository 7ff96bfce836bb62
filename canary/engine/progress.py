"""While the canary is judged (Progressing, Paused): checks, failure limit, steps, gates."""

from __future__ import annotations

from canary.engine.clock import seconds_since
from canary.engine.finish import begin_promotion, rollback
from canary.engine.lifecycle import restart, withdraw
from canary.engine.plan import SUSPENDED, at_last_step, new_revision
from canary.engine.routes import analysis_route
from canary.engine.tick import Tick
from canary.engine.timing import iteration_seconds, tick_look_interval
from canary.model.analysis import UndecidedOutcome
from canary.model.gates import ApprovalPoint, GateType
from canary.model.notification import NotificationEvent
from canary.model.status import MAX_CHECK_RESULTS, CheckResult, Phase, Verdict
from canary.model.strategy import StrategyKind

UNDECIDED = "a person: `canary promote` or `canary abort` (the analysis is undecided)"
"""status.waitingFor of a rollout paused by onUndecided: pause."""


def judged(tick: Tick) -> None:
    if _revision_changed(tick):
        return
    if tick.status.waiting_for == SUSPENDED:
        tick.status.waiting_for = None
        tick.status.inconclusive_since = None  # time spent suspended is not evidence
        tick.enter(Phase.PROGRESSING, "resumed: spec.suspend is false")
    if _rollback_requested(tick):
        return
    if not tick.obs.workload.canary_ready and not tick.status.pre_rollout_passed:
        _wait_for_canary(tick)
        return
    if not tick.status.pre_rollout_passed:
        _pre_rollout(tick)
        return
    if tick.rollout.spec.skip_analysis:
        _advance(tick)
        return
    if tick.status.step_started_at is None:  # a status written before steps were timed
        tick.status.step_started_at = tick.now
        tick.status.analysis_started_at = tick.status.analysis_started_at or tick.now
    results = _tick_results(tick)
    _record(tick, results)
    if tick.obs.check_states:
        tick.status.analysis = list(tick.obs.check_states)
    verdict = tick_verdict(results)
    if verdict is Verdict.FAIL:
        _failed_tick(tick, results)
    elif verdict is Verdict.INCONCLUSIVE:
        _inconclusive_tick(tick, results)
    else:
        tick.status.inconclusive_since = None
        _advance(tick)


def tick_verdict(results: list[CheckResult]) -> Verdict:
    """Fail if any check failed; pass only if every check passed; no results is no evidence."""
    if any(r.verdict is Verdict.FAIL for r in results):
        return Verdict.FAIL
    if not results or any(r.verdict is Verdict.INCONCLUSIVE for r in results):
        return Verdict.INCONCLUSIVE
    return Verdict.PASS


def _revision_changed(tick: Tick) -> bool:
    workload = tick.obs.workload
    status = tick.status
    if workload.target_revision is None:
        rollback(tick, f"Deployment '{tick.rollout.spec.target_ref.name}' disappeared")
        return True
    if workload.target_revision == status.stable_revision:
        withdraw(tick, "the target is back on the stable revision; canary withdrawn")
        return True
    revision = new_revision(status, workload)
    if revision is not None and revision != status.canary_revision:
        restart(tick, revision)
        return True
    return False


def _rollback_requested(tick: Tick) -> bool:
    for answer in tick.answers(GateType.ROLLBACK):
        if answer.open:
            said = f": {answer.message}" if answer.message else ""
            rollback(tick, f"rollback webhook '{answer.name}' asked for it{said}")
            return True
    return False


def _wait_for_canary(tick: Tick) -> None:
    waited = seconds_since(tick.status.started_at, tick.now)
    deadline = tick.rollout.spec.progress_deadline_seconds
    if waited > deadline:
        rollback(tick, f"the canary was not ready within progressDeadlineSeconds ({deadline}s)")
        return
    tick.status.message = (
        f"waiting for the canary (revision {tick.status.canary_revision}) to be ready"
    )
    tick.fast = True


def _pre_rollout(tick: Tick) -> None:
    """pre-rollout webhooks run once the canary is ready and before it takes any traffic."""
    ok, why = tick.webhooks_open(GateType.PRE_ROLLOUT)
    if ok:
        tick.status.pre_rollout_passed = True
        tick.status.analysis_started_at = tick.now
        tick.status.step_started_at = tick.now
        route = analysis_route(tick.rollout, 0)
        tick.route(route)
        tick.status.message = f"canary ready; analysis started at weight {route.canary_weight}%"
        tick.tell("Step", tick.status.message, notification=NotificationEvent.STEP)
        return
    result = CheckResult(name="pre-rollout", verdict=Verdict.FAIL, time=tick.now, message=why)
    _record(tick, [result])
    _failed_tick(tick, [result])


def _tick_results(tick: Tick) -> list[CheckResult]:
    """The analysis verdicts plus one verdict per rollout webhook (a 'no' is a failed check)."""
    weight = tick.status.canary_weight
    # Results are never changed in place: one that already says the weight is kept as it is.
    results = [
        r if r.weight == weight else r.model_copy(update={"weight": weight})
        for r in tick.obs.checks
    ]
    for hook in tick.rollout.spec.gates.of_type(GateType.ROLLOUT):
        answer = next((a for a in tick.answers(GateType.ROLLOUT) if a.name == hook.name), None)
        if answer is None:
            verdict, message = Verdict.INCONCLUSIVE, "no answer"
        else:
            verdict = Verdict.PASS if answer.open else Verdict.FAIL
            message = answer.message or ("yes" if answer.open else "no")
        results.append(
            CheckResult(
                name=f"webhook/{hook.name}",
                verdict=verdict,
                time=tick.now,
                weight=tick.status.canary_weight,
                no_data=answer is None,
                message=message,
            )
        )
    if not tick.obs.workload.canary_ready:
        results.append(
            CheckResult(
                name="canary-ready",
                verdict=Verdict.INCONCLUSIVE,
                time=tick.now,
                weight=tick.status.canary_weight,
                no_data=True,
                message="the canary is not ready",
            )
        )
    return results


def _record(tick: Tick, results: list[CheckResult]) -> None:
    tick.status.checks = [*tick.status.checks, *results][-MAX_CHECK_RESULTS:]


def _summary(results: list[CheckResult], verdict: Verdict) -> str:
    parts = [f"{r.name}: {r.message or r.verdict.value}" for r in results if r.verdict is verdict]
    return "; ".join(parts) or "no check results"


def _failed_tick(tick: Tick, results: list[CheckResult]) -> None:
    status = tick.status
    status.failed_checks += 1
    limit = tick.rollout.spec.analysis.failure_limit
    summary = _summary(results, Verdict.FAIL)
    if any(r.decisive for r in results if r.verdict is Verdict.FAIL):
        rollback(tick, f"the evidence is conclusive ({summary})")
        return
    if status.failed_checks >= limit:
        rollback(
            tick, f"{status.failed_checks} failed ticks reached failureLimit {limit} ({summary})"
        )
        return
    status.message = f"failed tick {status.failed_checks} of {limit}: {summary}"
    tick.tell("CheckFailed", status.message, warning=True, notification=NotificationEvent.VERDICT)


def _inconclusive_tick(tick: Tick, results: list[CheckResult]) -> None:
    status = tick.status
    summary = _summary(results, Verdict.INCONCLUSIVE)
    if status.waiting_for == UNDECIDED:
        if status.promote_requested:
            begin_promotion(tick, "promoted by a person after an undecided analysis")
            return
        status.message = (
            f"paused at weight {status.canary_weight}%: waiting for {UNDECIDED} ({summary})"
        )
        return
    if status.inconclusive_since is None:
        status.inconclusive_since = tick.now
    waited = seconds_since(status.inconclusive_since, tick.now)
    if waited >= tick.rollout.spec.analysis.inconclusive_deadline:
        _undecided(tick, results, waited, summary)
        return
    status.message = f"holding at weight {status.canary_weight}%: inconclusive ({summary})"


def _undecided(tick: Tick, results: list[CheckResult], waited: float, summary: str) -> None:
    """The inconclusiveDeadline has passed without a decision: spec.analysis.onUndecided says
    what happens. A check without data never promotes: it rolls back instead."""
    outcome = tick.rollout.spec.analysis.on_undecided
    past = f"checks undecided for {waited:.0f}s, past inconclusiveDeadline"
    no_data = [r.name for r in results if r.verdict is Verdict.INCONCLUSIVE and r.no_data]
    if outcome is UndecidedOutcome.PROMOTE and not no_data:
        begin_promotion(tick, f"{past}; onUndecided: promote ({summary})")
        return
    if outcome is UndecidedOutcome.PAUSE:
        tick.status.waiting_for = UNDECIDED
        message = f"{past}; onUndecided: pause, waiting for {UNDECIDED} ({summary})"
        tick.enter(Phase.PAUSED, message, notification=NotificationEvent.WAITING)
        tick.status.message = message
        return
    why = "rollback"
    if outcome is UndecidedOutcome.PROMOTE:
        why = f"promote, but {', '.join(no_data)} had no data: rolling back instead"
    rollback(tick, f"{past} (onUndecided: {why}) ({summary})")


def _advance(tick: Tick) -> None:
    """Every check passed: step up, count an iteration, or promote, through any gate on the way."""
    status = tick.status
    rollout = tick.rollout
    if not _iteration_over(tick):
        return
    if at_last_step(rollout, status) or rollout.spec.skip_analysis:
        if not _through_gate(tick, ApprovalPoint.PROMOTION):
            return
        why = "skipAnalysis" if rollout.spec.skip_analysis else "analysis passed"
        if status.promote_requested:
            why = "promotion requested"
        elif rollout.spec.strategy.kind is not StrategyKind.CANARY:
            status.iteration += 1
        begin_promotion(tick, why)
        return
    if rollout.spec.strategy.kind is StrategyKind.CANARY:
        if not _through_gate(tick, ApprovalPoint.TRAFFIC_INCREASE):
            return
        status.step_index += 1
        tick.route(analysis_route(rollout, status.step_index))
        message = f"checks passed; canary weight {status.canary_weight}%"
    else:
        status.iteration += 1
        message = f"checks passed; iteration {status.iteration} done"
    status.step_started_at = tick.now
    tick.enter(Phase.PROGRESSING, message)
    status.message = message
    tick.tell("Step", message, notification=NotificationEvent.STEP)


def _iteration_over(tick: Tick) -> bool:
    """An A/B or blue/green iteration lasts an interval, however often the checks are looked
    at (a look passes it from half a look before the interval is up, for scheduling jitter).
    The canary strategy steps at every passing look; `promote` skips the wait."""
    rollout, status = tick.rollout, tick.status
    if (
        rollout.spec.strategy.kind is StrategyKind.CANARY
        or rollout.spec.skip_analysis
        or status.promote_requested
    ):
        return True
    interval = rollout.spec.analysis.interval
    look = tick_look_interval(rollout, tick.obs.look_interval)
    left = interval - look / 2 - iteration_seconds(status, tick.now)
    if left <= 0:
        return True
    status.message = (
        f"checks passed; iteration {status.iteration + 1} ends in {left:.0f}s "
        "(an iteration lasts one interval)"
    )
    return False


def _through_gate(tick: Tick, point: ApprovalPoint) -> bool:
    ok, why = tick.gate_open(point)
    if not ok:
        tick.status.waiting_for = point.value
        tick.enter(
            Phase.PAUSED,
            f"checks passed; waiting for {why}",
            notification=NotificationEvent.WAITING,
        )
        tick.status.message = f"checks passed; waiting for {why}"
        return False
    tick.status.waiting_for = None
    tick.status.approvals = [a for a in tick.status.approvals if a != point.value]
    return True


__all__ = ["UNDECIDED", "judged", "tick_verdict"]
