"""The sequential judge: verdicts on crafted windows, its state, and its error rates.

The statistical tests at the end run 1,000 seeded analyses each, vectorised over the runs with
the same maths the judge uses (canary.analysis.stats); a smaller set goes through the judge
itself and must agree with the vectorised version tick for tick."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from canary.analysis import stats
from canary.analysis.judges import get_judge, promotion
from canary.analysis.judges.sequential import (
    ALPHA,
    HOLD_EVIDENCE,
    QUIET_SHARE,
    STEP_SECONDS,
    SUSPECT_EVIDENCE,
    SUSPECT_SECONDS,
    quiet_hold,
)
from canary.analysis.samples import JudgeContext, SideSample, WindowSample
from canary.model import CheckKind, CheckResult, CheckSpec, CheckState, JudgeName, Verdict

NOW = datetime(2026, 1, 1, tzinfo=UTC)
JUDGE = get_judge(JudgeName.SEQUENTIAL)
ERRORS = CheckSpec(name="error-rate", kind=CheckKind.ERROR_RATE, compare_to_primary=True)
LATENCY = CheckSpec(name="latency", kind=CheckKind.LATENCY, max=500.0)
AT_10 = JudgeContext(weight=10, min_requests=20)
LOOK = 20.0  # seconds between looks (the default look interval)
QUIET_LOOKS = math.ceil(STEP_SECONDS / LOOK)  # looks at a weight before a quiet step passes
BETA = 0.05  # the default spec.analysis.beta
TOLERANCE = 2.0  # the default spec.analysis.detect


def window(canary: tuple[int, int] | None, primary: tuple[int, int] | None) -> WindowSample:
    """(requests, failures) per side; None is a side without data."""
    return WindowSample(
        canary=SideSample(requests=canary[0], failures=canary[1]) if canary else None,
        primary=SideSample(requests=primary[0], failures=primary[1]) if primary else None,
    )


def run(
    windows: list[WindowSample],
    check: CheckSpec = ERRORS,
    context: JudgeContext = AT_10,
    state: CheckState | None = None,
    look: float | None = None,
) -> tuple[list[CheckResult], CheckState]:
    """The windows through the judge. With ``look``, one window per look: the context's
    seconds at the weight grow by ``look`` a window (from where the context has them)."""
    state = state or CheckState(name=check.name)
    results = []
    for i, w in enumerate(windows, start=1):
        if look is not None:
            held = context.step_seconds + i * look
            timed = context.model_copy(update={"look_interval": look, "step_seconds": held})
        else:
            timed = context
        result, state = JUDGE.judge(check, w, state, timed, NOW)
        results.append(result)
    return results, state


def test_the_judge_is_registered() -> None:
    assert JUDGE.name is JudgeName.SEQUENTIAL


def test_a_clearly_worse_canary_fails_within_a_few_windows() -> None:
    # 10% share, canary 5% errors, primary 1%: 100 canary and 900 primary requests a window
    results, _ = run([window((100, 5), (900, 9))] * 5)
    verdicts = [r.verdict for r in results]
    assert Verdict.FAIL in verdicts[:3]
    first = verdicts.index(Verdict.FAIL)
    assert all(v is Verdict.FAIL for v in verdicts[first:])
    failed = results[first]
    assert failed.statistic is not None
    assert failed.statistic >= 1 / ALPHA
    assert "canary errors 5% vs primary 1%" in failed.message
    assert "worse than the primary" in failed.message
    assert failed.message.endswith("fail")
    assert failed.canary is not None
    assert failed.canary.failures == 5 * (first + 1)
    assert failed.primary is not None
    assert failed.primary.requests == 900 * (first + 1)


def test_an_equal_canary_does_not_fail_and_passes_its_steps() -> None:
    results, state = run([window((100, 1), (900, 9))] * 30)
    assert all(r.verdict is Verdict.PASS for r in results)
    assert all(r.statistic is not None and r.statistic < HOLD_EVIDENCE for r in results)
    assert state.ticks == 30
    assert state.canary_requests == 3000
    assert state.primary_failures == 270


@pytest.mark.parametrize(
    ("sample", "missing"),
    [
        (window(None, (900, 9)), "canary"),
        (window((100, 1), None), "primary"),
        (WindowSample(), "canary"),
    ],
)
def test_missing_data_is_inconclusive_and_changes_nothing(
    sample: WindowSample, missing: str
) -> None:
    state = CheckState(name="error-rate")
    result, after = JUDGE.judge(ERRORS, sample, state, AT_10, NOW)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.no_data
    assert f"no {missing} data" in result.message
    assert after == state


def test_the_primary_is_not_needed_when_only_the_objective_is_judged() -> None:
    check = CheckSpec(
        name="error-rate", kind=CheckKind.ERROR_RATE, max=1.0, compare_to_primary=False
    )
    bad, _ = run([window((200, 10), None)] * 4, check)
    assert bad[-1].verdict is Verdict.FAIL
    assert "above the objective" in bad[-1].message
    good, _ = run([window((200, 0), None)] * 4, check)
    assert [r.verdict for r in good] == [Verdict.PASS] * 4


def test_a_canary_as_bad_as_its_primary_is_not_failed_for_the_objective() -> None:
    # both sides at 5% against a 1% objective: a common mode (a dependency down, a burst).
    # Comparing conditions on it, so the canary is not failed for what the primary shares;
    # it is not promoted either (not shown within the objective, nor yet not 2x worse)
    check = ERRORS.model_copy(update={"max": 1.0})
    results, _ = run([window((500, 25), (500, 25))] * 3, check)
    assert all(r.verdict is not Verdict.FAIL for r in results)
    assert "objective 1%" in results[-1].message
    # without a primary to compare with, the objective is the test: failed
    alone = check.model_copy(update={"compare_to_primary": False})
    results, _ = run([window((500, 25), None)] * 3, alone)
    assert results[-1].verdict is Verdict.FAIL
    assert "above the objective" in results[-1].message


def test_the_statistic_grows_with_the_canary_failures() -> None:
    statistics = []
    for failures in range(0, 21):
        results, _ = run([window((100, failures), (900, 9))])
        assert results[0].statistic is not None
        statistics.append(results[0].statistic)
    assert statistics == sorted(statistics)
    assert statistics[-1] > statistics[0]
    fewer, _ = run([window((100, 5), (900, 30))])
    more, _ = run([window((100, 5), (900, 3))])
    assert fewer[0].statistic is not None
    assert more[0].statistic is not None
    assert more[0].statistic > fewer[0].statistic


def test_identical_inputs_give_identical_results() -> None:
    windows = [window((100, 3), (900, 9)), window((150, 0), (850, 7)), window((0, 0), (900, 9))]
    first, state_a = run(windows)
    second, state_b = run(windows)
    assert first == second
    assert state_a == state_b


@pytest.mark.parametrize("via_json", [True, False])
def test_the_state_round_trips_and_later_verdicts_are_identical(via_json: bool) -> None:
    rng = np.random.default_rng(3)
    windows = []
    for _ in range(12):
        canary = int(rng.poisson(120))
        primary = int(rng.poisson(880))
        windows.append(
            window(
                (canary, int(rng.binomial(canary, 0.02))),
                (primary, int(rng.binomial(primary, 0.01))),
            )
        )
    straight, _ = run(windows)
    _, halfway = run(windows[:6])
    if via_json:
        restored = CheckState.model_validate_json(halfway.model_dump_json(by_alias=True))
    else:
        restored = CheckState.model_validate(halfway.model_dump(mode="json", by_alias=True))
    assert restored == halfway
    resumed, _ = run(windows[6:], state=restored)
    assert resumed == straight[6:]


def test_a_crossing_sticks_and_a_gap_in_the_data_does_not_undo_it() -> None:
    bad = [window((100, 10), (900, 9))] * 3
    good = [window((1000, 0), (9000, 200))] * 5
    results, state = run(bad + good)
    first = [r.verdict for r in results].index(Verdict.FAIL)
    assert all(r.verdict is Verdict.FAIL for r in results[first:])
    assert all(r.decisive for r in results[first:])
    assert not any(r.decisive for r in results[:first])
    gap, after = JUDGE.judge(ERRORS, window(None, (900, 9)), state, AT_10, NOW)
    assert gap.verdict is Verdict.FAIL
    assert after == state


def test_a_suspicious_canary_holds_its_weight() -> None:
    results, _ = run([window((100, 5), (900, 9))])  # 5x, but only 14 failures
    assert results[0].statistic is not None
    assert HOLD_EVIDENCE <= results[0].statistic < 1 / ALPHA
    assert results[0].verdict is Verdict.INCONCLUSIVE
    assert "holding for more data" in results[0].message


def test_a_quiet_step_passes_after_step_seconds_and_the_next_weight_counts_again() -> None:
    # no failures on either side: the windows could not show a 5x canary, so the step waits
    # STEP_SECONDS at its weight (the quiet-service rule), then passes with no sign of harm
    look = STEP_SECONDS / 2
    results, state = run([window((4, 0), (76, 0))] * 2, look=look)
    assert [r.verdict for r in results] == [Verdict.INCONCLUSIVE, Verdict.PASS]
    assert "gathering evidence" in results[0].message
    assert f"{look:.0f}s of {STEP_SECONDS:.0f}s at 10%" in results[0].message
    assert "too few failures to tell" in results[-1].message
    assert f"after {STEP_SECONDS:.0f}s at 10%" in results[-1].message
    # the next weight starts counting again (the engine restarts the step's seconds)
    next_step = JudgeContext(weight=20, min_requests=20, look_interval=look, step_seconds=look)
    result, _ = JUDGE.judge(ERRORS, window((20, 0), (80, 0)), state, next_step, NOW)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert f"{look:.0f}s of {STEP_SECONDS:.0f}s at 20%" in result.message


def test_the_last_step_never_passes_on_time_alone() -> None:
    # no failures anywhere and no objective: nothing can show the canary is not 2x worse, so
    # the last step waits however long, and says so
    final = JudgeContext(weight=50, min_requests=0, final_step=True)
    results, _ = run([window((50, 0), (50, 0))] * 30, context=final, look=LOOK)
    assert all(r.verdict is Verdict.INCONCLUSIVE for r in results)
    assert "cannot show the canary is not 2x worse at this traffic" in results[-1].message
    # a few failures: it says about how much more traffic a canary like its primary needs
    results, _ = run([window((50, 1), (50, 1))] * 3, context=final, look=LOOK)
    assert results[-1].verdict is Verdict.INCONCLUSIVE
    assert "more canary requests to show it is not 2x worse" in results[-1].message
    assert "at this traffic about" in results[-1].message


def test_the_quiet_rule_counts_seconds_whatever_the_look_interval() -> None:
    # a quiet step passes at the first look at least STEP_SECONDS after its weight was set
    for look in (10.0, 15.0, 20.0, 30.0, 60.0):
        results, _ = run([window((4, 0), (76, 0))] * 12, look=look)
        first = [r.verdict for r in results].index(Verdict.PASS)
        assert (first + 1) * look == math.ceil(STEP_SECONDS / look) * look


def test_a_suspect_canary_waits_longer_at_its_weight() -> None:
    # one canary failure at a 5% share and none on the primary: E of harm above
    # SUSPECT_EVIDENCE, below HOLD_EVIDENCE: the step waits SUSPECT_SECONDS, not STEP_SECONDS
    quiet = math.ceil(STEP_SECONDS / LOOK)  # the look at which an unsuspected step passes
    suspect = [window((5, 1), (95, 0))] + [window((5, 0), (95, 0))] * 20
    results, _ = run(suspect, look=LOOK)
    assert results[0].statistic is not None
    assert SUSPECT_EVIDENCE <= results[0].statistic < HOLD_EVIDENCE
    assert "(suspect)" in results[quiet - 1].message
    assert results[quiet - 1].verdict is Verdict.INCONCLUSIVE
    first = [r.verdict for r in results].index(Verdict.PASS)
    assert (first + 1) * LOOK == SUSPECT_SECONDS
    # primary failures clear the suspicion: the step passes at the next look
    cleared = [window((5, 1), (95, 0))] + [window((5, 0), (95, 8))] * 3
    results, _ = run(cleared, look=LOOK)
    assert results[0].verdict is Verdict.INCONCLUSIVE
    assert results[1].statistic is not None
    assert results[1].statistic < SUSPECT_EVIDENCE
    assert results[1].verdict is Verdict.PASS


def test_the_quiet_hold_fits_before_the_inconclusive_deadline() -> None:
    short = JudgeContext(weight=10, min_requests=20, inconclusive_deadline=60.0, look_interval=10)
    assert quiet_hold(short) == min(STEP_SECONDS, QUIET_SHARE * 60.0)
    assert quiet_hold(short, log_harm=10.0) == QUIET_SHARE * 60.0
    slow = JudgeContext(weight=10, min_requests=20, inconclusive_deadline=60.0, look_interval=60)
    assert quiet_hold(slow) == 60.0  # never less than a look
    usual = AT_10.model_copy(update={"look_interval": LOOK})
    assert quiet_hold(usual) == STEP_SECONDS
    assert quiet_hold(usual, log_harm=float(np.log(SUSPECT_EVIDENCE))) == SUSPECT_SECONDS


def test_a_step_exposed_to_a_5x_canary_passes_at_once() -> None:
    # 9 primary failures in 900 requests at a 10% share: a 5x canary would show itself here
    result, _ = JUDGE.judge(ERRORS, window((100, 0), (900, 9)), CheckState(name="e"), AT_10, NOW)
    assert result.verdict is Verdict.PASS
    assert "the traffic at 10% would have shown a 5x canary" in result.message
    assert "e+" not in result.message  # no raw exponentials: the exposure is put in words


def test_exposure_comes_from_the_traffic_and_the_primary_not_from_the_canary() -> None:
    base = stats.exposure(0.01, 100, 900, 1.0, 5.0)
    assert base > 0
    assert stats.exposure(0.01, 100, 900, 1.0, 5.0) == base
    assert stats.exposure(0.02, 100, 900, 1.0, 5.0) == pytest.approx(2 * base)
    assert stats.exposure(0.0, 100, 900, 1.0, 5.0) == 0.0  # no failures: nothing to see
    assert stats.exposure(0.01, 0, 900, 1.0, 5.0) == 0.0
    # the same expected failures tell more at a larger canary share (up to an even split)
    assert stats.exposure(0.01, 500, 500, 1.0, 5.0) > stats.exposure(0.01, 50, 950, 1.0, 5.0)


def test_promotion_holds_a_canary_the_data_lean_against() -> None:
    # margin 1 (null 2x, T 2.2x); the canary shows 2.5x, never enough to fail it, and never
    # shown better than T: the last step holds; an earlier step is not passed by exposure
    check = ERRORS.model_copy(update={"margin": 1.0})
    final = JudgeContext(weight=50, min_requests=20, final_step=True)
    results, _ = run([window((1000, 25), (1000, 10))] * 3, check, final)
    assert [r.verdict for r in results] == [Verdict.INCONCLUSIVE] * 3
    assert "promotion evidence" in results[-1].message
    step = JudgeContext(weight=50, min_requests=20)
    results, _ = run([window((1000, 25), (1000, 10))] * 3, check, step)
    assert all(r.verdict is Verdict.INCONCLUSIVE for r in results)


def test_a_step_without_canary_requests_never_passes() -> None:
    results, _ = run([window((0, 0), (100, 1))] * (QUIET_LOOKS + 20), look=LOOK)
    assert all(r.verdict is Verdict.INCONCLUSIVE for r in results)
    assert not any(r.no_data for r in results)


def test_promotion_needs_positive_evidence_and_the_crossing_sticks() -> None:
    # an equal canary with many failures on both sides is shown not 2x worse: it passes
    final = JudgeContext(weight=50, min_requests=100_000, final_step=True)
    results, state = run([window((5000, 50), (5000, 50))] * 3, context=final)
    passed = [r.verdict for r in results].index(Verdict.PASS)
    assert "shown within" in results[passed].message
    assert f"crossed {1 / BETA:g}" in results[passed].message
    # the crossing sticks: later windows that lean the other way do not undo it
    later, _ = run([window((5000, 80), (5000, 50))], context=final, state=state)
    assert later[0].verdict is Verdict.PASS
    # a canary well within its objective passes on that route alone, primary or not
    check = CheckSpec(
        name="error-rate", kind=CheckKind.ERROR_RATE, max=5.0, compare_to_primary=False
    )
    results, _ = run([window((2000, 2), None)] * 3, check, final)
    assert results[-1].verdict is Verdict.PASS


def test_the_promotion_evidence_is_the_mean_until_the_objective_is_out_of_reach() -> None:
    def routes(primary: float, objective: float) -> list[promotion.Route]:
        return [
            promotion.Route("primary", "2x", 0.0, math.log(primary)),
            promotion.Route("objective", "1%", 0.0, math.log(objective), 0.01),
        ]

    combined = promotion.Combined()
    assert combined.add(routes(30.0, 10.0), only_primary=False) == pytest.approx(math.log(20.0))
    # the objective out of reach: from here C moves with the comparison alone
    assert combined.add(routes(60.0, 5.0), only_primary=True) == pytest.approx(math.log(40.0))
    # and back: C moves with the sum of the routes
    later = combined.add(routes(60.0, 20.0), only_primary=False)
    assert later == pytest.approx(math.log(40.0 * 80.0 / 65.0))
    # the primary's totals decide whether the objective is out of reach, before the look
    # (at a 50% share, T 2x, against a 1% objective)
    assert promotion.objective_out_of_reach(12, 1000, 0.5, 2.0, routes(1, 1))  # at 1.2%
    assert promotion.objective_out_of_reach(19, 2000, 0.5, 2.0, routes(1, 1))  # at 0.95%
    assert not promotion.objective_out_of_reach(9, 900, 0.5, 2.0, routes(1, 1))  # too few
    assert not promotion.objective_out_of_reach(12, 2400, 0.5, 2.0, routes(1, 1))  # at 0.5%


def test_an_objective_of_zero_is_judged_without_a_pass_test() -> None:
    check = CheckSpec(
        name="error-rate", kind=CheckKind.ERROR_RATE, max=0.0, compare_to_primary=False
    )
    clean, _ = run([window((100, 0), None)] * QUIET_LOOKS, check, look=LOOK)
    assert [r.verdict for r in clean][-1] is Verdict.PASS
    dirty, _ = run([window((100, 1), None)] * 3, check)
    assert dirty[-1].verdict is Verdict.FAIL


def test_a_changed_margin_restarts_the_test() -> None:
    _, state = run([window((100, 10), (900, 9))] * 3)
    lenient = ERRORS.model_copy(update={"margin": 10.0})
    result, after = JUDGE.judge(lenient, window((100, 1), (900, 9)), state, AT_10, NOW)
    assert result.verdict is not Verdict.FAIL
    assert after.ticks == state.ticks + 1


def test_latency_counts_slow_requests() -> None:
    results, _ = run([window((100, 20), (900, 18))] * 3, LATENCY)
    assert results[-1].verdict is Verdict.FAIL
    assert "canary slow (>500ms) 20% vs primary 2%" in results[-1].message


def test_custom_checks_fall_back_to_thresholds() -> None:
    check = CheckSpec(name="saturation", kind=CheckKind.CUSTOM, query="q", max=0.8)
    high = WindowSample(canary=SideSample(requests=0, failures=0, value=0.9))
    result, state = JUDGE.judge(check, high, CheckState(name="saturation"), AT_10, NOW)
    assert result.verdict is Verdict.FAIL
    assert "threshold rule" in result.message
    assert state == CheckState(name="saturation")
    low = WindowSample(canary=SideSample(requests=0, failures=0, value=0.5))
    assert JUDGE.judge(check, low, state, AT_10, NOW)[0].verdict is Verdict.PASS
    missing = JUDGE.judge(check, WindowSample(), state, AT_10, NOW)[0]
    assert missing.verdict is Verdict.INCONCLUSIVE
    assert missing.no_data


def test_the_confidence_sequence_brackets_the_estimate() -> None:
    loglik = stats.split_loglik(40, 90, 0.1, 1.0)  # ratio 4x
    low, high = stats.confidence_bounds(loglik, ALPHA)
    assert low < np.log(4.0) < high
    assert low > 0.0  # excludes 1x: matches the crossing of the test
    assert stats.log_evidence_of_harm(loglik) >= np.log(1 / ALPHA)


# --- error rates over many seeded analyses ------------------------------------------------

RUNS = 1_000
TOLERANCE_3SE = 3 * (ALPHA * (1 - ALPHA) / RUNS) ** 0.5
"""Stated tolerance of the A/A tests: a true rate of ALPHA exceeds ALPHA + 3 standard errors
over 1,000 runs with probability about 0.1%, so a failure here means the rate is above alpha,
not bad luck (the seeds are fixed, so a pass is reproducible too)."""


def _traffic(
    runs: int, windows: int, rate: float, share: float, error: float, ratio: float, seed: int
) -> tuple[np.ndarray, ...]:
    """Per window and run: canary requests and failures, primary requests and failures.
    Requests are Poisson (``rate`` a window, both sides), the canary's share binomial, and
    failures binomial: the primary's at ``error``, the canary's at ``ratio`` times that."""
    rng = np.random.default_rng(seed)
    total = rng.poisson(rate, size=(windows, runs))
    canary = rng.binomial(total, share)
    primary = total - canary
    return (
        canary,
        rng.binomial(canary, min(error * ratio, 1.0)),
        primary,
        rng.binomial(primary, error),
    )


def _first_crossing(traffic: tuple[np.ndarray, ...], null_ratio: float) -> np.ndarray:
    """Per run, the first window (1-based) at which the judge's fail test reaches 1/ALPHA; 0
    for never. The judge's maths, vectorised over the runs."""
    canary, c_fail, primary, p_fail = traffic
    windows, runs = canary.shape
    loglik = np.zeros((runs, stats.GRID.size))
    first = np.zeros(runs, dtype=int)
    for t in range(windows):
        both = canary[t] + primary[t]
        share = np.where(primary[t] > 0, canary[t] / np.maximum(both, 1), 0.0)
        loglik += stats.split_loglik_batch(c_fail[t], p_fail[t], share, null_ratio)
        crossed = stats.log_evidence_of_harm_batch(loglik) >= np.log(1 / ALPHA)
        first = np.where((first == 0) & crossed, t + 1, first)
    return first


@pytest.mark.parametrize(
    ("rate", "share", "error", "margin"),
    [
        (1000, 0.01, 0.01, 0.0),  # canary shares 1% to 10%
        (1000, 0.05, 0.01, 0.0),
        (1000, 0.10, 0.01, 0.0),
        (1000, 0.50, 0.01, 0.0),
        (10, 0.10, 0.01, 0.0),  # 10 requests a minute
        (10, 0.50, 0.05, 0.0),
        (200, 0.05, 0.05, 0.0),
        (10_000, 0.05, 0.001, 0.0),
        (1000, 0.05, 0.01, 0.2),  # the built-in error-rate check's margin
    ],
)
def test_aa_false_fail_rate_stays_within_alpha(
    rate: float, share: float, error: float, margin: float
) -> None:
    """1,000 seeded A/A runs of 30 one-minute windows (``rate`` requests a window), the canary
    exactly at the null (margin 0 is the hardest case: equal canaries sit on the boundary).
    The share of runs ever failed must stay within ALPHA, tolerance 3 standard errors."""
    traffic = _traffic(RUNS, 30, rate, share, error, 1.0 + margin, seed=11)
    failed = float(np.mean(_first_crossing(traffic, 1.0 + margin) > 0))
    assert failed <= ALPHA + TOLERANCE_3SE


def _first_promotion(
    traffic: tuple[np.ndarray, ...], null_ratio: float, objective: float
) -> np.ndarray:
    """Per run, the first window (1-based) at which the judge's promotion evidence (the mean
    of the route against the primary, T = TOLERANCE, and the route against ``objective``)
    reaches 1/BETA; 0 for never. The judge's maths, vectorised over the runs."""
    canary, c_fail, primary, p_fail = traffic
    windows, runs = canary.shape
    loglik = np.zeros((runs, stats.GRID.size))
    first = np.zeros(runs, dtype=int)
    index = stats.tolerance_index(null_ratio, TOLERANCE)
    per_success = np.log1p(-np.minimum(objective * np.exp(stats.GRID), 1 - 1e-12))
    per_success = per_success - np.log1p(-objective)
    possible = objective * np.exp(stats.GRID) < 1.0
    failures, requests = np.zeros(runs), np.zeros(runs)
    for t in range(windows):
        both = canary[t] + primary[t]
        share = np.where(primary[t] > 0, canary[t] / np.maximum(both, 1), 0.0)
        loglik += stats.split_loglik_batch(c_fail[t], p_fail[t], share, null_ratio)
        along = stats.log_evidence_below_batch(loglik, index, -np.log(null_ratio), promotion.OK_SD)
        failures, requests = failures + c_fail[t], requests + canary[t]
        rate_ll = failures[:, None] * stats.GRID + (requests - failures)[:, None] * per_success
        rate_ll = np.where(possible[None, :], rate_ll, -np.inf)
        centre = promotion.objective_centre(objective)
        below = stats.log_evidence_below_batch(rate_ll, stats.NULL_INDEX, centre, promotion.SLO_SD)
        log_e = np.logaddexp(along, below) - np.log(2.0)
        first = np.where((first == 0) & (log_e >= np.log(1 / BETA)), t + 1, first)
    return first


@pytest.mark.parametrize(
    ("share", "error", "power"), [(0.05, 0.005, 0.5), (0.5, 0.005, 0.9), (0.1, 0.001, 0.2)]
)
def test_a_canary_at_the_boundary_of_bad_is_rarely_promoted(
    share: float, error: float, power: float
) -> None:
    """The promotion guarantee at its hardest point: a canary exactly T times worse than its
    primary (T on the grid: 1.98x for the built-in check's null 1.2) *and* exactly at its
    objective (``max`` set to the canary's own rate) reaches 1/BETA in at most BETA of 1,000
    runs of 30 windows (tolerance 3 standard errors); a canary as good as its primary gets
    there in at least ``power`` of them (few failures at 0.1%: the guarantee costs time)."""
    null_ratio = 1.2  # the built-in error-rate check's margin
    index = stats.tolerance_index(null_ratio, TOLERANCE)
    boundary = null_ratio * float(np.exp(stats.GRID[index]))
    assert boundary <= TOLERANCE
    bad = _traffic(RUNS, 30, 2000, share, error, boundary, seed=17)
    objective = error * boundary
    promoted = float(np.mean(_first_promotion(bad, null_ratio, objective) > 0))
    assert promoted <= BETA + 3 * (BETA * (1 - BETA) / RUNS) ** 0.5
    good = _traffic(RUNS, 30, 2000, share, error, 1.0, seed=17)
    good_promoted = float(np.mean(_first_promotion(good, null_ratio, objective) > 0))
    print(f"promoted: bad {promoted:.3f}, good {good_promoted:.3f}")
    assert good_promoted >= power


def test_the_judge_agrees_with_the_vectorised_maths() -> None:
    """The same windows through the judge itself: it fails at the same tick in every run."""
    traffic = _traffic(60, 30, 1000, 0.1, 0.01, 1.8, seed=5)
    expected = _first_crossing(traffic, 1.0)
    canary, c_fail, primary, p_fail = traffic
    for r in range(60):
        state, first = CheckState(name="error-rate"), 0
        for t in range(30):
            sample = window(
                (int(canary[t, r]), int(c_fail[t, r])), (int(primary[t, r]), int(p_fail[t, r]))
            )
            result, state = JUDGE.judge(ERRORS, sample, state, AT_10, NOW)
            if result.verdict is Verdict.FAIL:
                first = t + 1
                break
        assert first == expected[r]
    assert 0 < np.count_nonzero(expected) < 60


@pytest.mark.parametrize(("share", "error"), [(0.1, 0.01), (0.05, 0.01), (0.5, 0.001)])
def test_a_5x_regression_is_caught(share: float, error: float) -> None:
    """1,000 seeded runs of 1,000 requests a window: a canary failing 5x as often as its
    primary is failed in nearly every run, within a few windows (the oracle SPRT needs about
    ln 20 / KL of the split: 2 to 8 windows here)."""
    traffic = _traffic(RUNS, 30, 1000, share, error, 5.0, seed=5)
    first = _first_crossing(traffic, 1.0)
    assert np.mean(first > 0) >= 0.98
    assert np.median(first[first > 0]) <= {0.1: 3, 0.05: 4, 0.5: 8}[share]


def test_a_5x_regression_is_caught_by_the_judge() -> None:
    rng = np.random.default_rng(5)
    caught = []
    for _ in range(100):
        state = CheckState(name="error-rate")
        for tick in range(1, 31):
            canary = int(rng.binomial(1000, 0.1))
            sample = window(
                (canary, int(rng.binomial(canary, 0.05))),
                (1000 - canary, int(rng.binomial(1000 - canary, 0.01))),
            )
            result, state = JUDGE.judge(ERRORS, sample, state, AT_10, NOW)
            if result.verdict is Verdict.FAIL:
                caught.append(tick)
                break
    assert len(caught) >= 98
    assert float(np.median(caught)) <= 3


WEIGHTS = (5, 10, 20, 50)
DEADLINE_SECONDS = 600.0  # the default inconclusiveDeadline


def _rollout(rate: float, error: float, ratio: float, seed: int) -> tuple[str, float, int]:
    """A canary rollout through the istio example's weights with the built-in error-rate
    check (margin 0.2), driven like the engine at the default 20-second look: a pass steps up
    (or promotes at the last weight), a fail rolls back at once (decisive), checks
    inconclusive for DEADLINE_SECONDS roll back. ``rate`` is requests a minute. Returns
    (outcome, minutes of analysis, canary failures served)."""
    rng = np.random.default_rng(seed)
    check = ERRORS.model_copy(update={"margin": 0.2, "max": 1.0})
    state, step, held, served = CheckState(name="error-rate"), 0, 0.0, 0
    hour = int(rng.poisson(rate * 60))  # the primary's hour before: its usual failure rate
    history = SideSample(requests=hour, failures=int(rng.binomial(hour, error)))
    inconclusive_since: float | None = None
    for look in range(1, 600):
        now, held = look * LOOK, held + LOOK
        weight = WEIGHTS[step]
        total = int(rng.poisson(rate * LOOK / 60))
        canary = int(rng.binomial(total, weight / 100))
        c_fail = int(rng.binomial(canary, min(error * ratio, 1.0)))
        served += c_fail
        sample = window(
            (canary, c_fail), (total - canary, int(rng.binomial(total - canary, error)))
        ).model_copy(update={"baseline": history})
        context = JudgeContext(
            weight=weight,
            min_requests=20,
            final_step=step == len(WEIGHTS) - 1,
            look_interval=LOOK,
            step_seconds=held,
            analysis_seconds=now,
        )
        result, state = JUDGE.judge(check, sample, state, context, NOW)
        if result.verdict is Verdict.FAIL:
            return "failed", now / 60, served
        if result.verdict is Verdict.PASS:
            inconclusive_since = None
            if context.final_step:
                return "promoted", now / 60, served
            step, held = step + 1, 0.0
        else:
            inconclusive_since = now if inconclusive_since is None else inconclusive_since
            if now - inconclusive_since >= DEADLINE_SECONDS:
                return "deadline", now / 60, served
    return "stuck", now / 60, served


SEEDS = 500
BOUND = 0.05 + 3 * (0.05 * 0.95 / SEEDS) ** 0.5
"""alpha or beta (both 0.05 by default) plus 3 standard errors over SEEDS runs."""


@pytest.mark.parametrize(
    ("rate", "error", "ratio", "promoted", "minutes"),
    [
        (1000, 0.01, 1.0, 0.7, 7),  # A/A: promoted on evidence; the rest reach the deadline
        (10_000, 0.001, 1.0, 0.95, 3),  # shown within the 1% objective within minutes
        (100, 0.01, 1.0, 0.0, None),  # at its objective, 1 failure a minute: mostly undecided
    ],
)
def test_healthy_rollouts_through_the_istio_weights(
    rate: float, error: float, ratio: float, promoted: float, minutes: float | None
) -> None:
    """SEEDS seeded rollouts through the judge: a healthy canary is rolled back by a
    judgement (a crossing of 1/alpha) in at most alpha of them (+ 3 standard errors); where
    the traffic allows, it is promoted, and the median promotion time is bounded."""
    outcomes = [_rollout(rate, error, ratio, seed) for seed in range(SEEDS)]
    assert sum(o == "failed" for o, _, _ in outcomes) / SEEDS <= BOUND
    assert sum(o == "promoted" for o, _, _ in outcomes) / SEEDS >= promoted
    if minutes is not None:
        assert np.median([t for o, t, _ in outcomes if o == "promoted"]) <= minutes


@pytest.mark.parametrize(
    ("rate", "error", "ratio"),
    [
        (1000, 0.01, 2.0),  # T times worse, over the 1% objective
        (3000, 0.005, 2.0),  # T times worse and exactly at the objective: the hardest case
        (300, 0.005, 2.0),
        (1000, 0.01, 5.0),
        (100, 0.01, 3.0),
    ],
)
def test_bad_rollouts_through_the_istio_weights_are_rarely_promoted(
    rate: float, error: float, ratio: float
) -> None:
    """The promotion guarantee through whole rollouts (weights changing, looks every 20 s,
    the deadline): a canary at least T = 2 times worse than its primary and at or over its
    objective is promoted in at most beta of SEEDS runs (+ 3 standard errors)."""
    outcomes = [_rollout(rate, error, ratio, seed) for seed in range(SEEDS)]
    assert sum(o == "promoted" for o, _, _ in outcomes) / SEEDS <= BOUND


def test_the_baseline_keeps_a_trough_from_showing_a_canary_within_its_objective() -> None:
    """The primary usually fails at 0.5% (its day before) but at 0.1% during the analysis (a
    trough, a fifth of usual); the canary at 0.2% is 2x its primary and, at usual conditions,
    at 1%, its objective: bad. Judged at the moment's rate it looks well within 1% and is
    promoted; with the baseline the guard scales the objective by the trough and it is not.
    Without a baseline the message says the objective is judged at the analysis' rate."""
    check = ERRORS.model_copy(update={"margin": 0.2, "max": 1.0})
    last = JudgeContext(weight=50, min_requests=20, final_step=True)
    windows = [window((1000, 2), (1000, 1)) for _ in range(20)]
    alone, _ = run(windows, check, last)
    assert alone[0].verdict is Verdict.PASS
    assert "judged at the rate during the analysis" in alone[0].message
    history = SideSample(requests=86_400, failures=432)
    based, _ = run([w.model_copy(update={"baseline": history}) for w in windows], check, last)
    assert not any(r.verdict is Verdict.PASS for r in based)
    assert "judged at the rate" not in based[-1].message


def test_a_baseline_lets_the_comparison_rule_out_the_objectives_ratio() -> None:
    """A healthy canary at 0.1% beside a primary usually at 0.1% (objective 1%): the
    comparison rules out q0 / p-upper (about 7x) instead of 2x, and says so."""
    check = ERRORS.model_copy(update={"margin": 0.2, "max": 1.0})
    last = JudgeContext(weight=50, min_requests=20, final_step=True)
    history = SideSample(requests=60_000, failures=60)
    windows = [window((1000, 1), (1000, 1)).model_copy(update={"baseline": history})] * 50
    based, _ = run(windows, check, last)
    passed = [r for r in based if r.verdict is Verdict.PASS]
    assert passed
    assert "7.2x of the primary (its objective at the primary's usual 0.1%)" in passed[0].message
