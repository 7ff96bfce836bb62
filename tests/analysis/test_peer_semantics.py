"""The threshold and mann-whitney judges reproduce their peers' documented semantics.

- threshold is Flagger's: request success rate >= 99% (error rate <= 1%) and p99 <= 500 ms
  (judged as "at most 1% of requests slower than 500 ms", from the counts: the same statement
  about the requests, without a quantile interpolated in a bucket), each 1-minute interval
  judged on its own, and a rollback once 5 checks have failed
  (``failureLimit: 5``, Flagger's ``threshold: 5``), driven through the real engine;
- mann-whitney is Kayenta's: the Mann-Whitney U test at 98% confidence on per-window samples
  (a latency check's sample is its slow share) classifies each metric
  high / low / pass / no-data, and a weighted score over the metrics is held against the pass
  (95) and marginal (75) thresholds, with a failing critical metric failing everything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from canary.analysis.judges.mann_whitney import (
    ALPHA,
    CONFIDENCE,
    MIN_WINDOWS,
    Classification,
    MannWhitneyJudge,
    compare,
)
from canary.analysis.judges.score import MARGINAL_SCORE, PASS_SCORE, apply_score, score
from canary.analysis.judges.threshold import ThresholdJudge
from canary.analysis.samples import JudgeContext, SideSample, WindowSample
from canary.engine import (
    InitializePrimary,
    Observations,
    PromoteCanary,
    RestorePrimary,
    ScaleCanaryDown,
    ScaleCanaryUp,
    SetRoute,
    WorkloadState,
    plan,
    step,
)
from canary.model import (
    CheckKind,
    CheckResult,
    CheckSpec,
    CheckState,
    Phase,
    Rollout,
    RolloutStatus,
    Verdict,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CONTEXT = JudgeContext(weight=10, min_requests=20)

# Flagger's built-in metrics, as our checks: request-success-rate min 99 is error rate max 1%,
# request-duration max 500 is p99 <= 500 ms.
SUCCESS_RATE = CheckSpec(name="error-rate", kind=CheckKind.ERROR_RATE, max=1.0)
DURATION = CheckSpec(name="latency", kind=CheckKind.LATENCY, max=500.0)


def window(
    requests: int = 1000, errors: int = 0, p99: float = 200.0, primary_p99: float = 200.0
) -> WindowSample:
    """A window as an error-rate check sees it; each side's ``value`` is the p99 of its
    requests' latencies (what a latency check sees of them: ``seen_by``)."""
    return WindowSample(
        canary=SideSample(requests=requests, failures=errors, value=p99),
        primary=SideSample(requests=requests * 9, failures=0, value=primary_p99),
    )


def slow_of(p99: float, requests: int, objective: float = 500.0) -> int:
    """Requests slower than ``objective`` among ``requests`` whose own p99 is ``p99``: their
    latencies spread evenly, the i-th fastest taking p99 * i / ceil(0.99 * requests)."""
    rank = math.ceil(0.99 * requests)
    return sum(1 for i in range(1, requests + 1) if p99 * i / rank > objective)


def seen_by(check: CheckSpec, sample: WindowSample) -> WindowSample:
    """The window as ``check`` sees it: a latency check counts each side's slow requests."""
    if check.kind is not CheckKind.LATENCY:
        return sample

    def side(one: SideSample | None) -> SideSample | None:
        if one is None or one.value is None:
            return one
        slow = slow_of(one.value, one.requests, check.max or 0.0)
        return SideSample(requests=one.requests, failures=slow, value=one.value)

    return WindowSample(canary=side(sample.canary), primary=side(sample.primary))


def threshold(check: CheckSpec, sample: WindowSample, state: CheckState | None = None) -> Verdict:
    state = state or CheckState(name=check.name)
    return ThresholdJudge().judge(check, seen_by(check, sample), state, CONTEXT, NOW)[0].verdict


def test_slow_counts_say_what_the_p99_says() -> None:
    # p99 500 ms: 10 of 1,000 slower (1%, within); 501 ms: 12 (over)
    assert [slow_of(p, 1000) for p in (120.0, 499.0, 500.0, 501.0)] == [0, 9, 10, 12]


# -- Flagger ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("errors", "verdict"),
    [(0, Verdict.PASS), (10, Verdict.PASS), (11, Verdict.FAIL), (500, Verdict.FAIL)],
)
def test_flagger_success_rate_at_least_99_percent(errors: int, verdict: Verdict) -> None:
    # 10 errors in 1,000 is a success rate of exactly 99%: still within Flagger's min 99.
    assert threshold(SUCCESS_RATE, window(errors=errors)) is verdict


@pytest.mark.parametrize(
    ("p99", "verdict"), [(120.0, Verdict.PASS), (500.0, Verdict.PASS), (501.0, Verdict.FAIL)]
)
def test_flagger_p99_at_most_500ms(p99: float, verdict: Verdict) -> None:
    assert threshold(DURATION, window(p99=p99)) is verdict


def test_flagger_judges_the_canary_alone_not_against_the_primary() -> None:
    # A primary just as slow does not excuse the canary; a faster primary does not fail it.
    assert threshold(DURATION, window(p99=600.0, primary_p99=600.0)) is Verdict.FAIL
    assert threshold(DURATION, window(p99=450.0, primary_p99=100.0)) is Verdict.PASS


def test_flagger_judges_each_interval_on_its_own() -> None:
    # A bad minute leaves no trace on the next one: no running totals enter the verdict.
    judge = ThresholdJudge()
    state = CheckState(name=SUCCESS_RATE.name)
    verdicts = []
    for errors in (50, 0, 50, 10):
        result, state = judge.judge(SUCCESS_RATE, window(errors=errors), state, CONTEXT, NOW)
        verdicts.append(result.verdict)
    assert verdicts == [Verdict.FAIL, Verdict.PASS, Verdict.FAIL, Verdict.PASS]


def test_flagger_needs_traffic_before_judging() -> None:
    # Too few canary requests in the interval is no verdict (never a pass).
    assert threshold(SUCCESS_RATE, window(requests=5)) is Verdict.INCONCLUSIVE


def _flagger_rollout(failure_limit: int) -> Rollout:
    return Rollout.model_validate(
        {
            "metadata": {"name": "podinfo", "namespace": "test", "generation": 1},
            "spec": {
                "targetRef": {"name": "podinfo"},
                "service": {"port": 9898},
                "provider": {"name": "istio"},
                "strategy": {"canary": {"weights": [10, 20, 30, 40, 50]}},
                "analysis": {
                    "interval": "1m",
                    "failureLimit": failure_limit,
                    "judge": "threshold",
                    "checks": [
                        SUCCESS_RATE.model_dump(by_alias=True, exclude_none=True),
                        DURATION.model_dump(by_alias=True, exclude_none=True),
                    ],
                },
            },
        }
    )


@dataclass
class Cluster:
    """Just enough of a cluster to apply the engine's actions."""

    target: str = "rev-1"
    primary: str | None = None
    canary_up: bool = False

    def workload(self) -> WorkloadState:
        return WorkloadState(
            target_revision=self.target,
            canary_ready=self.canary_up,
            primary_ready=self.primary is not None,
            primary_revision=self.primary,
        )

    def apply(self, actions: Sequence[object]) -> None:
        for action in actions:
            if isinstance(action, InitializePrimary | PromoteCanary | RestorePrimary):
                self.primary = action.revision
            elif isinstance(action, ScaleCanaryUp):
                self.canary_up = True
            elif isinstance(action, ScaleCanaryDown):
                self.canary_up = False
            elif isinstance(action, SetRoute):
                pass  # the route does not change what the windows below contain


@dataclass
class Judged:
    """An analysed tick: the verdicts, and the rollout after it."""

    verdicts: list[Verdict]
    phase: Phase
    failed_checks: int
    message: str


def drive(
    rollout: Rollout,
    checks: Callable[[RolloutStatus], tuple[list[CheckResult], list[CheckState]]],
    max_ticks: int = 60,
) -> list[Judged]:
    """Run ``rollout`` through ``engine.step`` until it fails or succeeds; ``checks`` gives
    each analysed tick's results. Returns the analysed ticks."""
    cluster = Cluster()
    status = RolloutStatus()
    now = NOW
    judged: list[Judged] = []
    for _ in range(max_ticks):
        workload = cluster.workload()
        results: list[CheckResult] = []
        states: list[CheckState] = []
        if plan(rollout, status, workload).analyse:
            results, states = checks(status)
        observations = Observations(workload=workload, checks=results, check_states=states)
        outcome = step(rollout, status, observations, now)
        cluster.apply(outcome.actions)
        status = outcome.status
        if results:
            judged.append(
                Judged(
                    [r.verdict for r in results],
                    status.phase,
                    status.failed_checks,
                    status.message,
                )
            )
        if status.phase is Phase.INITIALIZED and cluster.target == "rev-1":
            cluster.target = "rev-2"  # a new revision to roll out
        if status.phase in (Phase.FAILED, Phase.SUCCEEDED) and cluster.target == "rev-2":
            break
        now += timedelta(seconds=outcome.requeue_after)
    return judged


def _threshold_ticks(
    windows: Callable[[int], WindowSample],
) -> Callable[[RolloutStatus], tuple[list[CheckResult], list[CheckState]]]:
    judge = ThresholdJudge()
    ticks = [0]

    def checks(status: RolloutStatus) -> tuple[list[CheckResult], list[CheckState]]:
        sample = windows(ticks[0])
        ticks[0] += 1
        previous = {s.name: s for s in status.analysis}
        results, states = [], []
        for check in (SUCCESS_RATE, DURATION):
            state = previous.get(check.name, CheckState(name=check.name))
            result, state = judge.judge(check, seen_by(check, sample), state, CONTEXT, NOW)
            results.append(result)
            states.append(state)
        return results, states

    return checks


def test_flagger_rolls_back_after_5_failed_checks() -> None:
    # The canary's success rate is 98% every minute (p99 fine): every tick fails.
    ticks = drive(_flagger_rollout(5), _threshold_ticks(lambda _: window(errors=20)))
    assert [t.failed_checks for t in ticks] == [1, 2, 3, 4, 5]
    assert [t.phase for t in ticks[:4]] == [Phase.PROGRESSING] * 4
    assert ticks[-1].phase is Phase.ROLLING_BACK
    assert "5 failed ticks reached failureLimit 5" in ticks[-1].message


def test_flagger_failed_checks_need_not_be_consecutive() -> None:
    # Slow every other minute (p99 650 ms): passing ticks in between advance the weight but
    # do not forgive the failures; the fifth failure rolls back.
    def windows(tick: int) -> WindowSample:
        return window(p99=650.0 if tick % 2 == 0 else 200.0)

    ticks = drive(_flagger_rollout(5), _threshold_ticks(windows))
    failed = [t for t in ticks if Verdict.FAIL in t.verdicts]
    assert len(failed) == 5
    assert failed[-1].phase is Phase.ROLLING_BACK
    assert [t.phase for t in ticks[:-1]] == [Phase.PROGRESSING] * (len(ticks) - 1)


def test_flagger_healthy_canary_is_promoted() -> None:
    ticks = drive(_flagger_rollout(5), _threshold_ticks(lambda _: window(errors=2, p99=300.0)))
    assert all(t.verdicts == [Verdict.PASS, Verdict.PASS] for t in ticks)
    assert ticks[-1].phase is Phase.PROMOTING


# -- Kayenta ------------------------------------------------------------------------------


def mann_whitney(
    check: CheckSpec, canary: Sequence[float], primary: Sequence[float]
) -> CheckResult:
    """The verdict after one window per pair of values: for a latency check each value is the
    window's slow requests of 10,000 (its sample is their share: 612 is 6.12%), for an error
    check its failed requests of 10,000."""
    judge = MannWhitneyJudge()
    state = CheckState(name=check.name)
    result: CheckResult | None = None
    for c, p in zip(canary, primary, strict=True):
        sample = WindowSample(
            canary=SideSample(requests=10_000, failures=round(c), value=450.0),
            primary=SideSample(requests=90_000, failures=9 * round(p), value=450.0),
        )
        result, state = judge.judge(check, sample, state, CONTEXT, NOW)
    assert result is not None
    return result


PRIMARY_P99 = [248.0, 251.0, 239.0, 262.0, 244.0, 257.0, 250.0]


def test_kayenta_clearly_higher_canary_is_high_and_fails_at_98_percent() -> None:
    result = mann_whitney(DURATION, [612.0, 598.0, 640.0, 605.0, 620.0], PRIMARY_P99[:5])
    assert result.verdict is Verdict.FAIL
    assert not result.decisive  # a failed tick, counted against failureLimit
    assert result.statistic is not None
    assert result.statistic < ALPHA
    assert result.message == (
        "canary slow (>500ms) median 6.12% vs primary 2.48% over 5 windows, U=0, "
        "p=0.0079 < 0.02, means 2.47x > allowed 1x: high → fail"
    )


def test_kayenta_confidence_is_98_not_95_percent() -> None:
    # Four windows a side, the canary above in every one: the exact two-sided p-value is
    # 2/70 = 0.029, significant at 95% but not at Kayenta's 98%.
    assert CONFIDENCE == 0.98
    assert pytest.approx(1 - CONFIDENCE) == ALPHA
    outcome = compare([612.0, 598.0, 640.0, 605.0], PRIMARY_P99[:4], 1.0)
    assert outcome.p_value == pytest.approx(2 / 70)
    assert outcome.classification is Classification.PASS
    assert not outcome.can_reject
    # ... and a test that could not have failed passes nothing (Kayenta's mustHaveData, for
    # the windows): inconclusive, as no data
    result = mann_whitney(DURATION, [612.0, 598.0, 640.0, 605.0], PRIMARY_P99[:4])
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.no_data
    assert "too few to reject at 98%: no pass yet" in result.message


def test_kayenta_identical_distributions_pass() -> None:
    result = mann_whitney(DURATION, PRIMARY_P99, PRIMARY_P99)
    assert result.verdict is Verdict.PASS
    assert result.statistic == pytest.approx(1.0)
    assert result.message.endswith(": pass")
    shuffled = [PRIMARY_P99[(3 * i) % 7] for i in range(7)]
    assert mann_whitney(DURATION, shuffled, PRIMARY_P99).verdict is Verdict.PASS


def test_kayenta_lower_canary_is_low_and_passes() -> None:
    result = mann_whitney(DURATION, [120.0, 131.0, 118.0, 125.0, 140.0], PRIMARY_P99[:5])
    assert result.verdict is Verdict.PASS
    assert result.message.endswith("low → pass")
    errors = CheckSpec(name="error-rate", kind=CheckKind.ERROR_RATE)
    judge, state = MannWhitneyJudge(), CheckState(name="error-rate")
    for canary_errors in (0, 1, 0, 0, 1, 0):
        sample = WindowSample(
            canary=SideSample(requests=1000, failures=canary_errors),
            primary=SideSample(requests=1000, failures=10 + canary_errors),
        )
        result, state = judge.judge(errors, sample, state, CONTEXT, NOW)
    assert result.verdict is Verdict.PASS
    assert result.message.endswith("low → pass")


@pytest.mark.parametrize("windows", range(MIN_WINDOWS))
def test_kayenta_fewer_than_3_windows_is_no_data(windows: int) -> None:
    assert MIN_WINDOWS == 3
    judge, state = MannWhitneyJudge(), CheckState(name="latency")
    results = []
    for _ in range(windows):
        result, state = judge.judge(
            DURATION, seen_by(DURATION, window(p99=900.0)), state, CONTEXT, NOW
        )
        results.append(result)
    for result in results:
        assert result.verdict is Verdict.INCONCLUSIVE
        assert result.no_data
        assert result.message.startswith("no-data:")
    # The third window brings the test, which cannot reject with 3 a side (p >= 0.1): still
    # no pass on it
    result, _ = judge.judge(DURATION, seen_by(DURATION, window(p99=900.0)), state, CONTEXT, NOW)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.no_data


def test_kayenta_missing_side_is_no_data() -> None:
    judge, state = MannWhitneyJudge(), CheckState(name="latency")
    for _ in range(5):
        _, state = judge.judge(DURATION, seen_by(DURATION, window()), state, CONTEXT, NOW)
    no_primary = WindowSample(canary=SideSample(requests=1000, failures=0, value=200.0))
    result, _ = judge.judge(DURATION, no_primary, state, CONTEXT, NOW)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.no_data
    assert "no-data: no primary data in the window" in result.message


def test_kayenta_effect_size_tolerance() -> None:
    # The canary is consistently ~10% slower: significant, and a fail with no tolerance
    # (allowed increase 1.0, Kayenta's default); within a margin of 0.2 (allowed 1.2x) it
    # passes.
    canary = [p * 1.1 for p in PRIMARY_P99]
    primary = [p + 1.0 for p in PRIMARY_P99]
    assert mann_whitney(DURATION, canary, primary).verdict is Verdict.FAIL
    tolerant = DURATION.model_copy(update={"margin": 0.2})
    result = mann_whitney(tolerant, canary, primary)
    assert result.verdict is Verdict.PASS
    assert "within allowed 1.2x" in result.message


def _result(name: str, verdict: Verdict) -> CheckResult:
    return CheckResult(
        name=name, verdict=verdict, time=NOW, judge="mann-whitney", message=f"{name} high"
    )


def _checks(n: int, **fields: object) -> list[CheckSpec]:
    return [
        CheckSpec.model_validate({"name": f"m{i}", "kind": "custom", "query": "q", **fields})
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("passed", "failed", "score_value", "verdict"),
    [
        (20, 0, 100.0, Verdict.PASS),
        (19, 1, 95.0, Verdict.PASS),  # at the pass threshold: the failing metric is outweighed
        (18, 2, 90.0, Verdict.INCONCLUSIVE),  # marginal
        (3, 1, 75.0, Verdict.INCONCLUSIVE),  # at the marginal threshold
        (2, 1, 200 / 3, Verdict.FAIL),  # below marginal
        (1, 1, 50.0, Verdict.FAIL),
        (0, 1, 0.0, Verdict.FAIL),
    ],
)
def test_kayenta_score_thresholds(
    passed: int, failed: int, score_value: float, verdict: Verdict
) -> None:
    assert (PASS_SCORE, MARGINAL_SCORE) == (95.0, 75.0)
    checks = _checks(passed + failed)
    results = [_result(c.name, Verdict.PASS) for c in checks[:passed]]
    results += [_result(c.name, Verdict.FAIL) for c in checks[passed:]]
    assert score(results, checks).score == pytest.approx(score_value)
    settled = apply_score(results, checks)
    assert all(r.verdict is Verdict.PASS for r in settled[:passed])
    assert all(r.verdict is verdict for r in settled[passed:])
    assert all(f"score {score_value:.1f}".rstrip("0").rstrip(".") in r.message for r in settled)


def test_kayenta_score_weights_and_no_data() -> None:
    heavy, light, quiet = _checks(3)
    checks = [
        heavy.model_copy(update={"weight": 4.0}),
        light,
        quiet.model_copy(update={"weight": 10.0}),
    ]
    results = [
        _result(heavy.name, Verdict.PASS),
        _result(light.name, Verdict.FAIL),
        _result(quiet.name, Verdict.INCONCLUSIVE),  # no data: left out of the score
    ]
    report = score(results, checks)
    assert report.score == pytest.approx(80.0)
    assert report.classification == "marginal"
    settled = apply_score(results, checks)
    assert [r.verdict for r in settled] == [
        Verdict.PASS,
        Verdict.INCONCLUSIVE,
        Verdict.INCONCLUSIVE,
    ]
    assert settled[1].message == "m1 high; score 80 < pass 95, >= marginal 75: inconclusive"


def test_kayenta_score_below_marginal_is_explained() -> None:
    checks = _checks(3)
    results = [
        _result("m0", Verdict.PASS),
        _result("m1", Verdict.FAIL),
        _result("m2", Verdict.PASS),
    ]
    settled = apply_score(results, checks)
    assert settled[1].verdict is Verdict.FAIL
    assert settled[1].message == "m1 high; score 66.7 < marginal 75: fail"
    assert settled[0].message == "m0 high; score 66.7 < marginal 75"


def test_kayenta_critical_failing_check_fails_the_tick() -> None:
    # 19 of 20 metrics pass (score 95 would pass), but the failing one is critical.
    checks = _checks(20)
    checks[7] = checks[7].model_copy(update={"critical": True})
    results = [
        _result(c.name, Verdict.FAIL if i == 7 else Verdict.PASS) for i, c in enumerate(checks)
    ]
    report = score(results, checks)
    assert report.score == 0.0
    assert report.critical_failures == ("m7",)
    settled = apply_score(results, checks)
    assert settled[7].verdict is Verdict.FAIL
    assert "critical check 'm7' failed: score 0: fail" in settled[7].message
    assert all("critical check 'm7' failed" in r.message for r in settled)

    # Through the engine: the tick fails and counts against the failure limit.
    ticks = drive(_flagger_rollout(5), lambda status: (settled, []), max_ticks=12)
    assert ticks[0].failed_checks == 1
    assert ticks[0].phase is Phase.PROGRESSING
    assert "m7" in ticks[0].message
