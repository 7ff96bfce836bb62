"""The threshold judge: Flagger's fixed bounds per window, with evidence and a readable line."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from canary.analysis.judges import get_judge
from canary.analysis.judges.threshold import ThresholdJudge
from canary.analysis.samples import JudgeContext, SideSample, WindowSample
from canary.model import CheckKind, CheckResult, CheckSpec, CheckState, JudgeName, Verdict

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ERRORS = CheckSpec(name="error-rate", kind=CheckKind.ERROR_RATE, max=1.0)
LATENCY = CheckSpec(name="latency", kind=CheckKind.LATENCY, max=500.0)
CONTEXT = JudgeContext(weight=10, min_requests=20)


def judge(
    check: CheckSpec,
    canary: SideSample | None,
    primary: SideSample | None = None,
    *,
    state: CheckState | None = None,
    context: JudgeContext = CONTEXT,
) -> tuple[CheckResult, CheckState]:
    window = WindowSample(canary=canary, primary=primary)
    return ThresholdJudge().judge(check, window, state or CheckState(name=check.name), context, NOW)


def test_registered_under_its_name() -> None:
    assert get_judge(JudgeName.THRESHOLD).name is JudgeName.THRESHOLD


def test_error_rate_within_max_passes_with_evidence() -> None:
    result, _ = judge(
        ERRORS, SideSample(requests=812, failures=4), SideSample(requests=9000, failures=45)
    )
    assert result.verdict is Verdict.PASS
    assert result.judge == "threshold"
    assert result.canary is not None
    assert result.primary is not None
    assert (result.canary.requests, result.canary.failures) == (812, 4)
    assert result.canary.value == pytest.approx(100 * 4 / 812)
    assert result.primary.value == pytest.approx(0.5)
    assert result.message == "canary errors 0.49% (n=812) <= max 1.00%: pass (primary 0.50%)"
    assert result.time == NOW
    assert result.weight == 10
    assert not result.no_data


def test_error_rate_above_max_fails_and_says_so() -> None:
    result, _ = judge(
        ERRORS, SideSample(requests=812, failures=19), SideSample(requests=9000, failures=45)
    )
    assert result.verdict is Verdict.FAIL
    assert result.statistic == pytest.approx(100 * 19 / 812)
    assert result.message == "canary errors 2.34% (n=812) > max 1.00%: fail (primary 0.50%)"


def test_exactly_at_max_passes() -> None:
    result, _ = judge(ERRORS, SideSample(requests=100, failures=1))
    assert result.verdict is Verdict.PASS


def test_error_rate_below_min_fails() -> None:
    check = CheckSpec(name="success", kind=CheckKind.ERROR_RATE, min=1.0, max=5.0)
    result, _ = judge(check, SideSample(requests=100, failures=0))
    assert result.verdict is Verdict.FAIL
    assert "< min 1.00%" in result.message
    passing, _ = judge(check, SideSample(requests=100, failures=2))
    assert passing.verdict is Verdict.PASS
    assert "within 1.00%..5.00%" in passing.message


def test_latency_judges_the_slow_share_not_the_p99_estimate() -> None:
    # 12 of 300 slower than 500 ms: 4%, over the 1% a p99 within 500 ms allows, although the
    # p99 interpolated inside its bucket reads 480 ms.
    result, _ = judge(
        LATENCY,
        SideSample(requests=300, failures=12, value=480.0, quantile_low=250, quantile_high=500),
        SideSample(requests=2700, failures=0, value=248.0),
    )
    assert result.verdict is Verdict.FAIL
    assert result.message == (
        "canary slow (>500ms) 4.00% (n=300) > max 1.00% (p99 over the objective): fail "
        "(primary 0.00%)"
    )
    assert result.statistic == pytest.approx(4.0)
    assert result.canary is not None
    assert (result.canary.failures, result.canary.value) == (12, pytest.approx(4.0))


def test_latency_within_the_slow_share_passes_whatever_the_estimate_says() -> None:
    # 3 of 300 slow (1%): within; the estimate in the 500-1000 ms bucket would have failed it.
    result, _ = judge(
        LATENCY,
        SideSample(requests=300, failures=3, value=612.0, quantile_low=500, quantile_high=1000),
    )
    assert result.verdict is Verdict.PASS
    assert result.message == "canary slow (>500ms) 1.00% (n=300) <= max 1.00%: pass"


def test_latency_needs_no_quantile_only_counts() -> None:
    for value in (None, math.nan):
        result, _ = judge(LATENCY, SideSample(requests=300, failures=0, value=value))
        assert result.verdict is Verdict.PASS
        assert result.statistic == 0.0


def test_latency_without_an_objective_is_inconclusive() -> None:
    check = CheckSpec(name="latency", kind=CheckKind.LATENCY, min=5.0)
    result, _ = judge(check, SideSample(requests=300, failures=300))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "needs max" in result.message


def test_latency_verdict_is_the_true_p99_against_max_over_many_seeded_windows() -> None:
    """'p99 <= max' on the requests themselves is 'at most 1% slower than max': the counts
    from the bucket at the objective decide exactly that, in every window; the p99 interpolated
    inside a bucket (as histogram_quantile does) does not."""
    from canary.analysis.counters import bucket_quantile

    bounds = [100.0, 250.0, 500.0, 1000.0, 2500.0, math.inf]
    rng = np.random.default_rng(12)
    for _ in range(400):
        latencies = rng.lognormal(math.log(rng.uniform(120, 260)), rng.uniform(0.4, 1.0), 400)
        slow = int((latencies > 500).sum())
        buckets = {b: float((latencies <= b).sum()) for b in bounds}
        estimate = bucket_quantile(0.99, buckets)
        assert estimate is not None
        result, _ = judge(LATENCY, SideSample(requests=400, failures=slow, value=estimate.value))
        truth = float(np.quantile(latencies, 0.99, method="inverted_cdf")) <= 500
        assert (result.verdict is Verdict.PASS) == truth, (slow, estimate)


@pytest.mark.parametrize("canary", [None, SideSample(requests=0, failures=0)])
def test_no_canary_data_is_inconclusive_never_pass(canary: SideSample | None) -> None:
    result, _ = judge(ERRORS, canary, SideSample(requests=1000, failures=5))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.no_data
    assert "no canary" in result.message


def test_below_min_requests_is_inconclusive_but_not_missing_data() -> None:
    # 19 requests with 19 errors: too few to judge, however bad they look.
    result, _ = judge(ERRORS, SideSample(requests=19, failures=19))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert not result.no_data
    assert result.message == "canary served 19 requests, fewer than minRequests 20"


def test_min_requests_zero_judges_any_traffic() -> None:
    result, _ = judge(
        ERRORS, SideSample(requests=3, failures=1), context=JudgeContext(weight=5, min_requests=0)
    )
    assert result.verdict is Verdict.FAIL


def test_custom_check_is_judged_on_its_value_without_request_counts() -> None:
    check = CheckSpec(name="cpu", kind=CheckKind.CUSTOM, query="x", min=0.1, max=0.8)
    high, _ = judge(check, SideSample(requests=0, failures=0, value=0.93))
    assert high.verdict is Verdict.FAIL
    assert high.message == "canary cpu 0.93 > max 0.8: fail"
    fine, _ = judge(check, SideSample(requests=0, failures=0, value=0.5))
    assert fine.verdict is Verdict.PASS


def test_a_check_without_bounds_or_kind_is_inconclusive() -> None:
    unbounded = CheckSpec(name="error-rate", kind=CheckKind.ERROR_RATE)
    result, _ = judge(unbounded, SideSample(requests=100, failures=0))
    assert result.verdict is Verdict.INCONCLUSIVE
    kindless = CheckSpec(name="error-rate", max=1.0)
    result, _ = judge(kindless, SideSample(requests=100, failures=0))
    assert result.verdict is Verdict.INCONCLUSIVE


def test_state_accumulates_the_window_counts() -> None:
    state = CheckState(
        name="error-rate",
        ticks=2,
        canary_requests=100,
        canary_failures=1,
        primary_requests=900,
        primary_failures=4,
    )
    _, new = judge(
        ERRORS,
        SideSample(requests=50, failures=2),
        SideSample(requests=450, failures=3),
        state=state,
    )
    assert (new.ticks, new.canary_requests, new.canary_failures) == (3, 150, 3)
    assert (new.primary_requests, new.primary_failures) == (1350, 7)
    assert state.ticks == 2  # the input state is left alone
    _, after_gap = judge(ERRORS, None, None, state=new)
    assert (after_gap.ticks, after_gap.canary_requests) == (4, 150)
