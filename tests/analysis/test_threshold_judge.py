"""The threshold judge: Flagger's fixed bounds per window, with evidence and a readable line."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from canary.analysis.judges import get_judge
from canary.analysis.judges.common import quantile_label
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


def test_latency_quantile_above_max_fails() -> None:
    result, _ = judge(
        LATENCY,
        SideSample(requests=300, failures=12, value=612.4),
        SideSample(requests=2700, failures=0, value=248.0),
    )
    assert result.verdict is Verdict.FAIL
    assert result.message == "canary p99 612ms (n=300) > max 500ms: fail (primary 248ms)"
    assert result.canary is not None
    assert result.canary.failures == 12


def test_latency_quantile_within_max_passes() -> None:
    result, _ = judge(LATENCY, SideSample(requests=300, failures=0, value=240.0))
    assert result.verdict is Verdict.PASS
    assert result.message == "canary p99 240ms (n=300) <= max 500ms: pass"


def test_latency_label_follows_the_quantile_query() -> None:
    check = LATENCY.model_copy(
        update={"quantile_query": "histogram_quantile(0.95, sum(rate(x_bucket[1m])) by (le))"}
    )
    assert quantile_label(check) == "p95"
    result, _ = judge(check, SideSample(requests=300, failures=0, value=240.0))
    assert result.message.startswith("canary p95 240ms")


@pytest.mark.parametrize("canary", [None, SideSample(requests=0, failures=0)])
def test_no_canary_data_is_inconclusive_never_pass(canary: SideSample | None) -> None:
    result, _ = judge(ERRORS, canary, SideSample(requests=1000, failures=5))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.no_data
    assert "no canary" in result.message


def test_latency_without_a_quantile_is_no_data() -> None:
    for value in (None, math.nan):
        result, _ = judge(LATENCY, SideSample(requests=300, failures=0, value=value))
        assert result.verdict is Verdict.INCONCLUSIVE
        assert result.no_data
        assert "no canary p99" in result.message


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
