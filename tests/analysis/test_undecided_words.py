"""What an undecided sequential check says it is missing (issue #11 point 2): a held canary
that leans towards harm gets a figure (canary requests, and minutes at the step's traffic,
to be rolled back if it keeps failing as it has); few canary pods whose draw cannot be
bounded get a plain reason with what would fix it. Seeded simulations check that every run
undecided at the deadline says one or the other."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from canary.analysis.judges import get_judge, holding, pods
from canary.analysis.samples import JudgeContext, PodCounts, SideSample, WindowSample
from canary.model import CheckKind, CheckSpec, CheckState, JudgeName, Verdict
from canary.model.loader import load_rollout
from canary.sim import simulate
from canary.sim.scenario import Scenario

NOW = datetime(2026, 1, 1, tzinfo=UTC)
JUDGE = get_judge(JudgeName.SEQUENTIAL)
ERRORS = CheckSpec(name="error-rate", kind=CheckKind.ERROR_RATE, compare_to_primary=True)
OBJECTIVE = CheckSpec(
    name="error-rate", kind=CheckKind.ERROR_RATE, compare_to_primary=False, max=1.0
)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "podinfo-istio.yaml"
NEEDS = re.compile(r"needs about ([\d,]+) more canary requests to be rolled back")


def _sides(canary: tuple[int, int], primary: tuple[int, int] | None) -> WindowSample:
    return WindowSample(
        canary=SideSample(requests=canary[0], failures=canary[1]),
        primary=SideSample(requests=primary[0], failures=primary[1]) if primary else None,
    )


def _held_then_failed(
    check: CheckSpec, sample: WindowSample, context: JudgeContext
) -> tuple[str, float, float]:
    """The same window a minute until the check fails: the first holding message, the
    requests it said a rollback needs, and the canary requests it took from there."""
    state = CheckState(name=check.name)
    said: tuple[str, float, int] | None = None
    for look in range(1, 400):
        timed = context.model_copy(update={"step_seconds": 60.0 * look})
        result, state = JUDGE.judge(check, sample, state, timed, NOW)
        if said is None and "holding for more data" in result.message:
            found = NEEDS.search(result.message)
            assert found, result.message
            said = (result.message, float(found.group(1).replace(",", "")), look)
        if result.verdict is Verdict.FAIL:
            assert said is not None, "failed without holding first"
            assert sample.canary is not None
            return said[0], said[1], float((look - said[2]) * sample.canary.requests)
    raise AssertionError("never failed")


@pytest.mark.parametrize(
    ("check", "sample", "weight"),
    [
        (ERRORS, _sides((20, 1), (180, 2)), 10),  # 4.5x at 10%
        (ERRORS, _sides((50, 1), (450, 2)), 10),  # 4.5x, fewer failures a request
        (ERRORS, _sides((100, 1), (100, 0)), 50),  # a primary without failures
        (OBJECTIVE, _sides((100, 2), None), 10),  # 2% against an objective of 1%
    ],
)
def test_a_held_canary_says_how_many_requests_would_roll_it_back(
    check: CheckSpec, sample: WindowSample, weight: int
) -> None:
    """The figure is an estimate (a point alternative; the mixture gains a little less):
    a canary that keeps failing as it has is rolled back within 0.7-2x of it (plus a window,
    as the judge looks once a window)."""
    context = JudgeContext(weight=weight, min_requests=20)
    message, said, took = _held_then_failed(check, sample, context)
    assert sample.canary is not None
    assert 0.7 * said <= took <= 2.0 * said + sample.canary.requests, message
    assert "at this traffic about" in message


def test_the_hold_says_when_the_deadline_is_too_short_for_it() -> None:
    """2% against 1% at 100 requests a window: a rollback takes longer than the deadline
    leaves, and the message says what deadline would do."""
    context = JudgeContext(weight=10, min_requests=20, inconclusive_deadline=300.0)
    message, _, _ = _held_then_failed(OBJECTIVE, _sides((100, 2), None), context)
    assert "inconclusiveDeadline leaves at this step" in message


def test_the_growth_to_fail_is_zero_unless_the_rates_lean_towards_harm() -> None:
    equal = CheckState(
        name="e", canary_requests=100, canary_failures=1, primary_requests=900, primary_failures=9
    )
    assert holding.growth_to_fail(equal, 0.1, 1.0, None) == 0.0
    assert holding.growth_to_fail(equal, 0.1, 1.0, 0.02) == 0.0  # 1% is under the objective
    worse = equal.model_copy(update={"canary_failures": 5})
    assert holding.growth_to_fail(worse, 0.1, 1.0, None) > 0.0
    assert holding.growth_to_fail(worse, 0.1, 10.0, None) == 0.0  # a null the data do not pass
    assert holding.requests_to_fail(math.log(5.0), 20.0, 0.0) == math.inf
    assert "more failures of either side will tell" in holding.describe_fail_needs(math.inf, 10.0)


def test_the_growth_to_fail_is_the_split_divergence() -> None:
    """5% against 1% at a 10% share: per canary request 0.05 + 0.01·9 = 0.14 failures, of
    which the canary's share is 5/14 against 1/10 under the null."""
    totals = CheckState(
        name="e", canary_requests=100, canary_failures=5, primary_requests=900, primary_failures=9
    )
    q, q0 = 5 / 14, 0.1
    expected = 0.14 * (q * math.log(q / q0) + (1 - q) * math.log((1 - q) / (1 - q0)))
    assert holding.growth_to_fail(totals, 0.1, 1.0, None) == pytest.approx(expected)


def _pod_side(prefix: str, pods_failures: list[tuple[int, int]]) -> SideSample:
    counts = tuple(
        PodCounts(name=f"{prefix}-{i}", requests=n, failures=x)
        for i, (n, x) in enumerate(pods_failures)
    )
    return SideSample(
        requests=sum(c.requests for c in counts),
        failures=sum(c.failures for c in counts),
        pods=counts,
    )


LAST = JudgeContext(weight=50, min_requests=20, final_step=True, step_seconds=600.0)


def test_too_few_primary_failures_say_how_many_more_tell_the_spread() -> None:
    """Ten primary pods with 12 failures between them (2 a pod are needed): the message says
    about 8 more, and 8 more do tell it."""
    primary = [(1000, 1 if i < 8 else 2) for i in range(10)]
    sample = WindowSample(canary=_pod_side("c", [(1000, 1)]), primary=_pod_side("p", primary))
    result, _ = JUDGE.judge(ERRORS, sample, CheckState(name="error-rate"), LAST, NOW)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "failed 12 times, too few to measure their spread" in result.message
    assert "after about 8 more primary failures" in result.message
    assert "as many pods as the primary (10)" in result.message
    more = [(n, x + 1) if i < 8 else (n, x) for i, (n, x) in enumerate(primary)]
    assert pods.spread([(float(n), float(x)) for n, x in primary]) == math.inf
    assert math.isfinite(pods.spread([(float(n), float(x)) for n, x in more]))


def test_too_few_primary_pods_say_so() -> None:
    text = holding.spread_shortfall([(1000.0, 5.0), (1000.0, 6.0)])
    assert f"at least {pods.MIN_PRIMARY_PODS} primary pods" in text
    assert "2 have had some" in text


def test_a_spread_no_pod_count_can_beat_says_to_match_the_primary() -> None:
    """Primary pods spread from 0.2% to 5%: no count of canary pods under the primary's 6
    would keep a 2x version from hiding, and the message says to give the canary as many
    pods as the primary."""
    rates = [0.002, 0.004, 0.008, 0.015, 0.03, 0.05]
    primary = _pod_side("p", [(4000, round(4000 * r)) for r in rates])
    sample = WindowSample(canary=_pod_side("c", [(4000, 60)]), primary=primary)
    state = CheckState(name="error-rate")
    for _ in range(3):
        result, state = JUDGE.judge(ERRORS, sample, state, LAST, NOW)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "fewer canary pods than the primary's would not let" in result.message
    assert "as many pods as the primary (6)" in result.message


SAID = (
    "needs about ",  # a figure: canary requests and minutes
    "canary pods a healthy canary could show it",  # few pods: how many would do
    "as many pods as the primary",  # few pods: the fix when no fewer would do
)
WORLDS = [
    Scenario(
        name="low", requests_per_minute=100, primary_error_percent=1.0, canary_error_multiplier=3
    ),
    Scenario(
        name="none", requests_per_minute=100, primary_error_percent=0.1, canary_error_multiplier=3
    ),
    Scenario(
        name="pods",
        requests_per_minute=600,
        primary_error_percent=0.5,
        canary_pods=1,
        primary_pods=10,
        pod_error_sd=0.5,
    ),
]


@pytest.mark.parametrize("scenario", WORLDS, ids=lambda s: s.name)
def test_every_undecided_run_says_what_is_missing(scenario: Scenario) -> None:
    """Seeds 0-24 of worlds where runs end undecided on a hold or on few canary pods: each
    deadline message carries a figure ("needs about N more canary requests", or how many
    canary pods would do) or the pods' plain reason with its fix."""
    rollout = load_rollout(EXAMPLE)
    undecided = 0
    for seed in range(25):
        result = simulate(rollout, scenario, seed, judge=JudgeName.SEQUENTIAL)
        if "inconclusiveDeadline" not in result.reason:
            continue
        undecided += 1
        said = any(words in result.reason for words in SAID)
        assert said, result.reason
    assert undecided >= 5  # the worlds do reach the deadline: the check is not vacuous
