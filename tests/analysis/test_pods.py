"""Few canary pods (canary.analysis.judges.pods): the primary pods' spread, the bound on what
a draw of canary pods can hide, Student's t, the bounded tally, and the judge using them."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from scipy import stats as scipy_stats

from canary.analysis import stats
from canary.analysis.judges import dispersion, get_judge, pods, promotion
from canary.analysis.judges.running import Running
from canary.analysis.samples import JudgeContext, PodCounts, SideSample, WindowSample
from canary.analysis.stats import FloatArray
from canary.model import CheckKind, CheckResult, CheckSpec, CheckState, JudgeName, Verdict

NOW = datetime(2026, 1, 1, tzinfo=UTC)
JUDGE = get_judge(JudgeName.SEQUENTIAL)
ERRORS = CheckSpec(name="error-rate", kind=CheckKind.ERROR_RATE, compare_to_primary=True)
LAST = JudgeContext(weight=50, min_requests=20, final_step=True, step_seconds=600.0)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 9, 10, 30, 63])
def test_student_t_matches_scipy(df: int) -> None:
    for value in (-3.0, -0.7, 0.0, 0.4, 1.5, 2.6, 8.0):
        assert pods.t_cdf(value, df) == pytest.approx(scipy_stats.t.cdf(value, df), abs=1e-12)
    for probability in (0.9, 0.975, 0.9875, 0.995):
        expected = scipy_stats.t.ppf(probability, df)
        assert pods.t_quantile(probability, df) == pytest.approx(expected, rel=1e-9)


def test_student_t_needs_a_degree_of_freedom() -> None:
    with pytest.raises(ValueError, match="degrees of freedom"):
        pods.t_cdf(1.0, 0)


def _primary_pods(
    rng: np.random.Generator, sd: float, failures_each: float
) -> list[tuple[float, float]]:
    factors = np.exp(rng.normal(-0.5 * sd * sd, sd, size=10))
    requests = 10_000.0
    rate = failures_each / requests
    return [(requests, float(rng.binomial(int(requests), rate * f))) for f in factors]


def test_the_spread_is_told_from_the_primary_pods_counts() -> None:
    """Seeded, 400 draws a case: with equal pods the spread is mostly 0 (counting noise is
    taken out); with a spread of 0.3 its median is near 0.3."""
    rng = np.random.default_rng(11)
    equal = [pods.spread(_primary_pods(rng, 0.0, 50.0)) for _ in range(400)]
    assert np.median(equal) < 0.08
    spread = [pods.spread(_primary_pods(rng, 0.3, 50.0)) for _ in range(400)]
    assert 0.22 < float(np.median(spread)) < 0.36


def test_the_spread_cannot_be_told_without_enough_failures_or_pods() -> None:
    assert pods.spread([(1000.0, 40.0)]) == math.inf  # one pod
    assert pods.spread([(1000.0, 0.0)] * 10) == math.inf  # no failures
    few = pods.MIN_POD_FAILURES - 1
    assert pods.spread([(1000.0, few)] * 10) == math.inf


def test_the_bound_is_none_without_pods_and_wider_for_fewer_canary_pods() -> None:
    primary = [(1000.0, 20.0 + 3 * i) for i in range(10)]
    assert pods.bound([], primary, 0.0125) is None
    assert pods.bound([(500.0, 5.0)], [], 0.0125) is None
    # one pod a side: no spread can be told, the tests stay as they are (assumption 2)
    assert pods.bound([(500.0, 5.0)], [(1000.0, 20.0)], 0.0125) is None
    assert pods.harm_margin([(500.0, 5.0)], [(1000.0, 20.0)], 0.025) == 0.0
    # as many canary pods: no margin here, the dispersion widens the tests instead
    assert pods.bound([(500.0, 5.0)] * 10, primary, 0.0125) is None
    assert pods.harm_margin([(500.0, 5.0)] * 10, primary, 0.025) == 0.0
    even = dispersion.dispersion([(500.0, 5.0)] * 10, [(1000.0, 10.0)] * 10, 0.05)
    assert even is not None
    assert even.spread == 0.0
    # counts closer than counting noise would put them: never more than the count tests' own
    assert even.ratio == even.rate == 1.0
    spread = dispersion.dispersion([(500.0, 5.0)] * 10, primary, 0.05)
    assert spread is not None
    assert 0 < spread.spread < pods.spread(primary)
    assert spread.ratio > spread.inflation
    assert dispersion.dispersion([(500.0, 5.0)], [(1000.0, 20.0)], 0.05) is None
    assert dispersion.dispersion([(500.0, 5.0)], primary, 0.05) is None  # fewer: pods.bound
    one = pods.bound([(500.0, 5.0)], primary, 0.0125)
    three = pods.bound([(500.0, 5.0)] * 3, primary, 0.0125)
    assert one is not None
    assert three is not None
    assert one.spread == three.spread > 0
    assert one.ratio_margin > three.ratio_margin > 0
    assert one.rate_margin > three.rate_margin > 0
    unknown = pods.bound([(500.0, 5.0)], [(1000.0, 1.0)] * 10, 0.0125)
    assert unknown is not None
    assert unknown.ratio_margin == math.inf


def test_the_bound_covers_the_draw_of_pods_at_its_share() -> None:
    """The promise the margin makes, seeded over 4,000 draws: the canary pods' mean rate over
    the primary pods' (a healthy version: both factors' populations are the same) falls under
    e^-margin at most ``share`` of the time (+ 3 standard errors), for 1 and 3 canary pods."""
    rng = np.random.default_rng(3)
    share, sd, draws = 0.025, 0.5, 4000
    for canary_pods in (1, 3):
        below = 0
        for _ in range(draws):
            canary = np.exp(rng.normal(-0.5 * sd * sd, sd, size=canary_pods))
            primary = np.exp(rng.normal(-0.5 * sd * sd, sd, size=10))
            counts = [(100_000.0, float(rng.poisson(2000 * f))) for f in primary]
            drawn = pods.bound([(1.0, 0.0)] * canary_pods, counts, share)
            assert drawn is not None
            below += canary.mean() / primary.mean() < math.exp(-drawn.ratio_margin)
        assert below / draws <= share + 3 * math.sqrt(share * (1 - share) / draws)


def test_the_pooled_spread_is_told_from_both_sides() -> None:
    """Seeded, 400 draws a case, 10 pods a side each about its own rate (the canary's twice
    the primary's: a version's rate is no spread): alike pods give a spread near 0, a spread
    of 0.3 comes out near 0.3, and the sides' degrees of freedom add up."""
    rng = np.random.default_rng(12)

    def draw(sd: float) -> float:
        primary = _primary_pods(rng, sd, 20.0)
        canary = _primary_pods(rng, sd, 40.0)
        told = dispersion.dispersion(canary, primary, 0.05)
        assert told is not None
        assert told.df == 18
        return told.spread

    assert np.median([draw(0.0) for _ in range(400)]) < 0.05
    assert 0.24 < float(np.median([draw(0.3) for _ in range(400)])) < 0.34


def _one_look(
    rng: np.random.Generator, each: int, sd: float, ratio: float, failures: float
) -> tuple[FloatArray, list[tuple[float, float]], list[tuple[float, float]]]:
    """One look at ``each`` pods a side (equal shares) of a version ``ratio`` times worse,
    pods spread by ``sd``: the split test's log-likelihoods and each side's pods' counts."""
    requests = 100_000.0
    canary = np.exp(rng.normal(-0.5 * sd * sd, sd, size=each)) * ratio
    primary = np.exp(rng.normal(-0.5 * sd * sd, sd, size=each))
    rate = failures / requests
    c_counts = [(requests, float(rng.poisson(requests * rate * f))) for f in canary]
    p_counts = [(requests, float(rng.poisson(requests * rate * f))) for f in primary]
    c_fail = int(sum(x for _, x in c_counts))
    p_fail = int(sum(x for _, x in p_counts))
    return stats.split_loglik(c_fail, p_fail, 0.5, 1.0), c_counts, p_counts


@pytest.mark.parametrize(("each", "failures"), [(2, 200.0), (10, 30.0), (10, 200.0)])
def test_the_dispersion_keeps_both_bounds_at_a_look(each: int, failures: float) -> None:
    """The guarantee at one look, seeded over 3,000 draws a case, pods spread by 0.5 and as
    many a side: a healthy version's tempered e-value of harm reaches 20 at most alpha of the
    time, and a 2x version's tempered evidence of "not 2x" reaches 20 at most beta (+ 3
    standard errors). The untempered tests breach both here: the case has the power to
    catch a regression to them."""
    rng = np.random.default_rng(each * 1000 + int(failures))
    draws, bar, bound = 3000, math.log(20.0), 0.05 + 3 * math.sqrt(0.05 * 0.95 / 3000)
    index = stats.tolerance_index(1.0, 2.0)
    centre = 0.0
    tempered = {"harm": 0, "promote": 0}
    bare = {"harm": 0, "promote": 0}
    for _ in range(draws):
        loglik, canary, primary = _one_look(rng, each, 0.5, 1.0, failures)
        told = dispersion.dispersion(canary, primary, 0.05)
        assert told is not None
        tempered["harm"] += stats.log_evidence_of_harm(loglik / told.ratio) >= bar
        bare["harm"] += stats.log_evidence_of_harm(loglik) >= bar
        loglik, canary, primary = _one_look(rng, each, 0.5, 2.0, failures)
        told = dispersion.dispersion(canary, primary, 0.05)
        assert told is not None
        ok = stats.log_evidence_below(loglik / told.ratio, index, centre, promotion.OK_SD)
        tempered["promote"] += ok >= bar
        raw = stats.log_evidence_below(loglik, index, centre, promotion.OK_SD)
        bare["promote"] += raw >= bar
    assert tempered["harm"] / draws <= bound
    assert tempered["promote"] / draws <= bound
    assert max(bare.values()) / draws > bound


def test_alike_pods_pay_only_for_the_degrees_of_freedom() -> None:
    """Ten alike pods a side: the tests are divided by about K(18) (1.2), not by a spread they
    would first have to learn; two pods a side pay K(2) (4.8): too few to tell a spread."""
    rng = np.random.default_rng(21)
    values = []
    for _ in range(400):
        _, canary, primary = _one_look(rng, 10, 0.0, 1.0, 30.0)
        told = dispersion.dispersion(canary, primary, 0.05)
        assert told is not None
        values.append(told.ratio)
    assert 1.0 <= float(np.median(values)) < 1.5
    assert dispersion.inflation(18, 0.05) == pytest.approx(1.149, abs=0.001)
    assert dispersion.inflation(2, 0.05) == pytest.approx(4.82, abs=0.01)


def test_two_pods_a_side_say_how_many_would_do() -> None:
    """Two pods a side that differ widely: however many requests, a healthy canary's limit
    evidence against 2x stays under 20; the fewest pods a side that would reach it."""
    spread = 0.6
    assert dispersion.limit_evidence(spread, 2, 2.0, 0.05) < math.log(20.0)
    enough = dispersion.pods_a_side_needed(spread, 2.0, 0.05)
    assert enough is not None
    assert 2 < enough <= pods.MAX_PODS
    assert dispersion.limit_evidence(spread, enough, 2.0, 0.05) >= 2 * math.log(20.0)
    assert dispersion.limit_evidence(spread, enough - 1, 2.0, 0.05) < 2 * math.log(20.0)


def test_the_tally_is_bounded_and_survives_a_restart() -> None:
    tally = pods.PodTally()
    tally.add(PodCounts(name=f"pod-{i}", requests=10, failures=1) for i in range(100))
    tally.add([PodCounts(name="pod-0", requests=5, failures=9)])  # failures capped at requests
    assert len(tally.pods) == pods.MAX_PODS
    loaded, used = pods.PodTally.load(tally.dump())
    assert loaded.pods == tally.pods
    assert used == 1 + 3 * pods.MAX_PODS
    assert sorted(tally.serving())[0] == (10.0, 1.0)
    assert (15.0, 6.0) in tally.serving()
    assert pods.PodTally.load([5.0, 1.0])[0].pods == {}  # malformed: starts empty


def _side(total: int, rates: list[float], prefix: str) -> SideSample:
    each = total // len(rates)
    counts = [
        PodCounts(name=f"{prefix}-{i}", requests=each, failures=round(each * r))
        for i, r in enumerate(rates)
    ]
    return SideSample(
        requests=each * len(rates), failures=sum(c.failures for c in counts), pods=tuple(counts)
    )


PRIMARY_RATES = [0.01 * f for f in (0.55, 0.7, 0.8, 0.9, 1.0, 1.0, 1.1, 1.3, 1.6, 2.0)]


def _judged(sample: WindowSample, looks: int) -> tuple[CheckResult, CheckState]:
    """The verdict after ``looks`` looks at ``sample``, from a fresh analysis."""
    state = CheckState(name="error-rate")
    for _ in range(looks):
        result, state = JUDGE.judge(ERRORS, sample, state, LAST, NOW)
    return result, state


def _without_pods(sample: WindowSample) -> WindowSample:
    """The same counts as a policy without a pod label reports them."""
    return WindowSample(
        canary=sample.canary.model_copy(update={"pods": ()}) if sample.canary else None,
        primary=sample.primary.model_copy(update={"pods": ()}) if sample.primary else None,
    )


def test_one_lucky_canary_pod_is_not_promoted_on_its_draw() -> None:
    """A version 2x worse on one lucky pod (1.2% against the primary pods' mean 1.1%, which
    spread widely): without per-pod counts the judge promotes it; with them it holds and says
    why, naming the pods and how many canary pods would do."""
    sample = WindowSample(
        canary=_side(20_000, [0.012], "canary"), primary=_side(20_000, PRIMARY_RATES, "primary")
    )
    blind, _ = _judged(_without_pods(sample), 6)
    assert blind.verdict is Verdict.PASS
    seen, state = _judged(sample, 6)
    assert seen.verdict is Verdict.INCONCLUSIVE
    assert "1 canary vs 10 primary pods" in seen.message
    assert "canary pods a healthy canary could show it" in seen.message
    run = Running.load(state.judge_state, 1.0, 0.0)
    assert len(run.canary_pods.pods) == 1
    assert len(run.primary_pods.pods) == 10


def test_as_many_even_pods_a_side_are_promoted_as_before() -> None:
    """Ten canary pods against ten, every pod alike: the pods' bound is narrow and the
    healthy canary is promoted."""
    even = [0.01] * 10
    sample = WindowSample(
        canary=_side(20_000, even, "canary"), primary=_side(20_000, even, "primary")
    )
    result, _ = _judged(sample, 10)
    assert result.verdict is Verdict.PASS


def test_two_pods_a_side_that_differ_widely_hold_and_say_why() -> None:
    """Two canary pods against two primary pods, each side's pods 2.5x apart: a healthy
    version's canary cannot be told from a 2x one on a lucky draw (two degrees of freedom),
    and the message says so and how many pods a side would do."""
    primary = _side(20_000, [0.006, 0.015], "primary")
    canary = _side(20_000, [0.006, 0.015], "canary")
    result, _ = _judged(WindowSample(canary=canary, primary=primary), 10)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "2 canary vs 2 primary pods" in result.message
    assert "2 pods a side cannot show a version is not 2x worse apart from their own draw" in (
        result.message
    )
    assert "pods a side would)" in result.message


def test_few_alike_pods_a_side_say_what_more_pods_would_do() -> None:
    """Two alike pods a side: the spread is told from 2 degrees of freedom, so each failure
    counts for less; the message says so and how many pods a side would count it half."""
    even = [0.01] * 2
    sample = WindowSample(canary=_side(3000, even, "canary"), primary=_side(3000, even, "primary"))
    result, _ = _judged(sample, 1)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "2 pods a side tell their spread from 2 degrees of freedom" in result.message
    assert "pods a side would count it at least half as much" in result.message


def test_the_fail_test_at_no_margin_is_the_unadjusted_one() -> None:
    loglik = stats.split_loglik(7, 40, 0.1, 1.0) + stats.split_loglik(2, 30, 0.2, 1.0)
    assert pods.log_harm_above(loglik, 0.0) == pytest.approx(stats.log_evidence_of_harm(loglik))
    assert pods.log_harm_above(loglik, 0.35) < pods.log_harm_above(loglik, 0.0)


def test_one_unlucky_canary_pod_of_a_healthy_version_is_not_failed_on_its_draw() -> None:
    """A canary pod at 2% beside primary pods spread from 0.55% to 2%: the draw explains it.
    Without per-pod counts the judge fails it; with them it does not."""
    sample = WindowSample(
        canary=_side(4_000, [0.02], "canary"), primary=_side(20_000, PRIMARY_RATES, "primary")
    )
    blind, _ = _judged(_without_pods(sample), 3)
    assert blind.verdict is Verdict.FAIL
    seen, _ = _judged(sample, 3)
    assert seen.verdict is not Verdict.FAIL


def test_the_promotion_evidence_never_chains_across_moving_nulls() -> None:
    """While the pods' bound moves the routes' nulls, C is the mean of the look's values, and
    so is it at the first look after (a product across the change would mix two nulls)."""
    combined = promotion.Combined()

    def routes(primary: float, objective: float) -> list[promotion.Route]:
        return [
            promotion.Route("primary", "2x", 0.0, primary),
            promotion.Route("objective", "1%", 0.0, objective, 0.01),
        ]

    mean = promotion.mean_of(routes(-40.0, 1.0))
    assert mean == pytest.approx(1.0 - math.log(2.0), abs=1e-9)
    assert combined.take(routes(-40.0, 1.0), only_primary=False, moving=True) == mean
    settled = routes(2.0, 1.5)
    assert combined.take(settled, only_primary=True, moving=False) == promotion.mean_of(settled)
    # from here on it runs as a product: only the comparison's growth counts (objective idle)
    after = combined.take(routes(2.5, 1.5), only_primary=True, moving=False)
    assert after == pytest.approx(promotion.mean_of(settled) + 0.5)
