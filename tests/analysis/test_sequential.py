"""The sequential judge: verdicts on crafted windows, its state, and its error rate on A/A data."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from canary.analysis import stats
from canary.analysis.judges import get_judge
from canary.analysis.judges.sequential import ALPHA, HOLD_EVIDENCE, STEP_TICKS
from canary.analysis.samples import JudgeContext, SideSample, WindowSample
from canary.model import CheckKind, CheckResult, CheckSpec, CheckState, JudgeName, Verdict

NOW = datetime(2026, 1, 1, tzinfo=UTC)
JUDGE = get_judge(JudgeName.SEQUENTIAL)
ERRORS = CheckSpec(name="error-rate", kind=CheckKind.ERROR_RATE, compare_to_primary=True)
LATENCY = CheckSpec(name="latency", kind=CheckKind.LATENCY, max=500.0)
AT_10 = JudgeContext(weight=10, min_requests=20)


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
) -> tuple[list[CheckResult], CheckState]:
    state = state or CheckState(name=check.name)
    results = []
    for w in windows:
        result, state = JUDGE.judge(check, w, state, context, NOW)
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


def test_the_objective_fails_a_canary_as_bad_as_its_primary() -> None:
    check = ERRORS.model_copy(update={"max": 1.0})
    results, _ = run([window((500, 25), (500, 25))] * 3, check)
    assert results[-1].verdict is Verdict.FAIL
    assert "objective 1%" in results[-1].message
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


def test_a_step_waits_for_min_requests_or_a_few_ticks_at_low_traffic() -> None:
    slow = [window((4, 0), (76, 1))] * STEP_TICKS
    results, state = run(slow)
    assert [r.verdict for r in results] == [Verdict.INCONCLUSIVE] * (STEP_TICKS - 1) + [
        Verdict.PASS
    ]
    assert "waiting for traffic" in results[0].message
    # the next weight starts counting again; 25 requests pass it in one tick
    next_step = JudgeContext(weight=20, min_requests=20)
    result, _ = JUDGE.judge(ERRORS, window((25, 0), (75, 1)), state, next_step, NOW)
    assert result.verdict is Verdict.PASS


def test_a_step_without_canary_requests_never_passes() -> None:
    results, _ = run([window((0, 0), (100, 1))] * (STEP_TICKS + 2))
    assert all(r.verdict is Verdict.INCONCLUSIVE for r in results)
    assert not any(r.no_data for r in results)


def test_promotion_needs_min_requests_in_all() -> None:
    final = JudgeContext(weight=50, min_requests=20, final_step=True)
    results, _ = run([window((5, 0), (5, 0))] * STEP_TICKS, context=final)
    assert results[-1].verdict is Verdict.INCONCLUSIVE
    assert "waiting to promote" in results[-1].message
    results, _ = run([window((5, 0), (5, 0))] * 4, context=final)
    assert results[-1].verdict is Verdict.PASS


def test_a_canary_shown_no_worse_passes_at_once() -> None:
    check = ERRORS.model_copy(update={"margin": 1.0})
    final = JudgeContext(weight=50, min_requests=100_000, final_step=True)
    result, _ = JUDGE.judge(check, window((5000, 50), (5000, 50)), CheckState(name="e"), final, NOW)
    assert result.verdict is Verdict.PASS
    assert "shown no worse" in result.message


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


def _aa_false_fail_rate(
    runs: int, windows: int, rate: float, share: float, error: float, seed: int
) -> float:
    """Share of A/A runs (same error rate on both sides) the judge ever fails."""
    rng = np.random.default_rng(seed)
    failed = 0
    for _ in range(runs):
        state = CheckState(name="error-rate")
        for _ in range(windows):
            total = int(rng.poisson(rate))
            canary = int(rng.binomial(total, share))
            sample = window(
                (canary, int(rng.binomial(canary, error))),
                (total - canary, int(rng.binomial(total - canary, error))),
            )
            result, state = JUDGE.judge(ERRORS, sample, state, AT_10, NOW)
            if result.verdict is Verdict.FAIL:
                failed += 1
                break
    return failed / runs


@pytest.mark.parametrize(
    ("rate", "share", "error"),
    [(1000, 0.1, 0.01), (1000, 0.5, 0.01), (200, 0.05, 0.05), (10, 0.1, 0.01)],
)
def test_aa_false_fail_rate_stays_within_alpha(rate: float, share: float, error: float) -> None:
    """400 seeded A/A runs of 30 windows with no margin (the hardest null: the boundary).
    Tolerance: alpha + 3 standard errors of a rate of alpha over 400 runs (~3.3 points)."""
    observed = _aa_false_fail_rate(400, 30, rate, share, error, seed=11)
    assert observed <= ALPHA + 3 * (ALPHA * (1 - ALPHA) / 400) ** 0.5


def test_a_5x_regression_is_caught_in_nearly_every_run() -> None:
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
