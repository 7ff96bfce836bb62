"""The Mann-Whitney judge: its state (JSON round trip, bounded), determinism, samples, and the
weighted score applied by the analysis tick."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import pytest

from canary.analysis.analyse import analyse
from canary.analysis.judges import get_judge
from canary.analysis.judges.mann_whitney import (
    EXACT_MAX_SIZE,
    MAX_WINDOWS,
    MannWhitneyJudge,
    Samples,
    compare,
    mann_whitney_u,
)
from canary.analysis.provider import Targets
from canary.analysis.samples import JudgeContext, SideSample, WindowSample
from canary.model import (
    CheckKind,
    CheckResult,
    CheckSpec,
    CheckState,
    JudgeName,
    Rollout,
    RolloutStatus,
    Verdict,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ERRORS = CheckSpec(name="error-rate", kind=CheckKind.ERROR_RATE, max=1.0)
LATENCY = CheckSpec(name="latency", kind=CheckKind.LATENCY, max=500.0)
CONTEXT = JudgeContext(weight=10, min_requests=20)


def latency(canary: float | None, primary: float | None, requests: int = 10_000) -> WindowSample:
    """A latency window: ``canary`` and ``primary`` slow requests of ``requests`` each (so the
    judged slow share is that many hundredths of a percent). The p99 each side shows is an
    estimate that the judge must not read: it is the same for both sides."""
    return WindowSample(
        canary=None
        if canary is None
        else SideSample(requests=requests, failures=round(canary), value=480.0),
        primary=None
        if primary is None
        else SideSample(requests=requests * 9, failures=round(primary) * 9, value=480.0),
    )


def errors(canary_failures: int, primary_failures: int, requests: int = 1000) -> WindowSample:
    return WindowSample(
        canary=SideSample(requests=requests, failures=canary_failures),
        primary=SideSample(requests=requests, failures=primary_failures),
    )


def run(
    check: CheckSpec,
    windows: Iterable[WindowSample],
    state: CheckState | None = None,
    context: JudgeContext = CONTEXT,
) -> tuple[list[CheckResult], CheckState]:
    """Feed the windows tick by tick, threading the state; every result and the last state."""
    judge = MannWhitneyJudge()
    state = state or CheckState(name=check.name)
    results = []
    for window in windows:
        result, state = judge.judge(check, window, state, context, NOW)
        results.append(result)
    return results, state


def wobble(base: float, n: int, step: float = 3.0) -> list[float]:
    return [base + step * ((i * 7) % 11 - 5) for i in range(n)]


def test_registered_under_its_name() -> None:
    assert get_judge(JudgeName.MANN_WHITNEY).name is JudgeName.MANN_WHITNEY


def test_state_round_trips_through_json_with_identical_later_verdicts() -> None:
    canary = wobble(300.0, 12)
    primary = wobble(250.0, 12)
    windows = [latency(c, p) for c, p in zip(canary, primary, strict=True)]
    straight, _ = run(LATENCY, windows)

    first, saved = run(LATENCY, windows[:5])
    # As the controller stores it: the whole status, as JSON, and back.
    status = RolloutStatus(analysis=[saved])
    restored = RolloutStatus.model_validate(json.loads(status.model_dump_json(by_alias=True)))
    assert restored.analysis[0] == saved
    resumed, _ = run(LATENCY, windows[5:], restored.analysis[0])

    assert [r.model_dump() for r in first + resumed] == [r.model_dump() for r in straight]
    assert straight[-1].verdict is Verdict.FAIL  # the run reached a decision worth comparing


def test_state_is_a_flat_list_of_finite_floats() -> None:
    _, state = run(ERRORS, [errors(3, 1), errors(0, 2), errors(5, 5)])
    assert all(isinstance(v, float) and math.isfinite(v) for v in state.judge_state)
    assert json.loads(json.dumps(state.judge_state)) == state.judge_state


def test_state_is_bounded_and_keeps_the_latest_windows() -> None:
    # A long analysis: a healthy start, then the canary gets slower for the last 60 windows.
    windows = [latency(250.0 + i % 5, 250.0 + i % 7) for i in range(140)]
    windows += [latency(400.0 + i % 5, 250.0 + i % 7) for i in range(MAX_WINDOWS)]
    results, state = run(LATENCY, windows)
    assert len(state.judge_state) == 4 + 2 * MAX_WINDOWS
    samples = Samples.load(state.judge_state, CheckKind.LATENCY)
    assert len(samples.canary) == len(samples.primary) == MAX_WINDOWS
    assert min(samples.canary) >= 4.0  # only the latest windows are kept (percent)
    # The verdict is the one a fresh judge gives on the last MAX_WINDOWS windows alone.
    fresh, _ = run(LATENCY, windows[-MAX_WINDOWS:])
    assert results[-1].message == fresh[-1].message
    assert results[-1].verdict is Verdict.FAIL


def test_same_inputs_same_outputs() -> None:
    windows = [latency(c, p) for c, p in zip(wobble(260, 8), wobble(250, 8), strict=True)]
    one, state_one = run(LATENCY, windows)
    two, state_two = run(LATENCY, windows)
    assert [r.model_dump() for r in one] == [r.model_dump() for r in two]
    assert state_one == state_two


def test_totals_are_kept_like_the_other_judges() -> None:
    _, state = run(ERRORS, [errors(3, 1), errors(0, 2)])
    assert (state.ticks, state.canary_requests, state.canary_failures) == (2, 2000, 3)
    assert (state.primary_requests, state.primary_failures) == (2000, 3)


def test_a_window_missing_a_side_is_no_data_even_with_enough_samples() -> None:
    windows = [latency(250.0 + i, 250.0 - i) for i in range(5)]
    results, state = run(LATENCY, [*windows, latency(None, 250.0)])
    last = results[-1]
    assert last.verdict is Verdict.INCONCLUSIVE
    assert last.no_data
    assert "no-data: no canary data in the window" in last.message
    # The primary's window still counts as a sample.
    samples = Samples.load(state.judge_state, CheckKind.LATENCY)
    assert (len(samples.canary), len(samples.primary)) == (5, 6)


@pytest.mark.parametrize("value", [None, math.nan, math.inf])
def test_latency_samples_are_slow_shares_whatever_the_p99_estimate(value: float | None) -> None:
    window = WindowSample(
        canary=SideSample(requests=400, failures=6, value=value),
        primary=SideSample(requests=4000, failures=8, value=value),
    )
    results, state = run(LATENCY, [window])
    samples = Samples.load(state.judge_state, CheckKind.LATENCY)
    assert (samples.canary, samples.primary) == ([1.5], [0.2])
    assert "canary slow (>500ms) median 1.50% vs primary 0.20%" in results[0].message or (
        "1 canary and 1 primary windows so far" in results[0].message
    )
    assert all(math.isfinite(v) for v in state.judge_state)


def test_a_latency_state_of_p99_samples_starts_over() -> None:
    """States saved when the samples were p99s in ms (kind code 2) are not mixed with shares."""
    old = CheckState(name="latency", judge_state=[1.0, 2.0, 3.0, 3.0, 612, 640, 650, 250, 260, 240])
    results, new = run(LATENCY, [latency(300.0, 250.0)], old)
    assert "1 canary and 1 primary windows so far" in results[0].message
    assert Samples.load(new.judge_state, CheckKind.LATENCY).canary == [3.0]


def test_windows_below_min_requests_are_not_samples() -> None:
    results, state = run(ERRORS, [errors(1, 1, requests=10)])
    assert results[0].verdict is Verdict.INCONCLUSIVE
    assert not results[0].no_data  # the data is there, just too little of it
    assert "canary served 10 requests, fewer than minRequests 20" in results[0].message
    assert Samples.load(state.judge_state, CheckKind.ERROR_RATE).canary == []


def test_zero_requests_are_no_data_not_zero_errors() -> None:
    window = WindowSample(
        canary=SideSample(requests=0, failures=0), primary=SideSample(requests=900, failures=1)
    )
    results, _ = run(ERRORS, [window], context=JudgeContext(weight=5, min_requests=0))
    assert results[0].verdict is Verdict.INCONCLUSIVE
    assert results[0].no_data


def test_state_of_another_kind_starts_over() -> None:
    _, state = run(ERRORS, [errors(3, 1), errors(0, 2), errors(5, 5)])
    results, state = run(LATENCY, [latency(300.0, 250.0)], state)
    assert "1 canary and 1 primary windows so far" in results[0].message


def test_corrupt_state_starts_over() -> None:
    state = CheckState(name="latency", judge_state=[1.0, 2.0, 5.0, 5.0, 1.0])
    results, new = run(LATENCY, [latency(300.0, 250.0)], state)
    assert "1 canary and 1 primary windows so far" in results[0].message
    assert len(new.judge_state) == 6


def test_custom_check_reads_the_value_and_a_floor_makes_low_bad() -> None:
    throughput = CheckSpec(name="orders", kind=CheckKind.CUSTOM, query="x", min=10.0)
    windows = [
        WindowSample(
            canary=SideSample(requests=0, failures=0, value=50.0 + i),
            primary=SideSample(requests=0, failures=0, value=100.0 + i),
        )
        for i in range(5)
    ]
    results, _ = run(throughput, windows)
    assert results[-1].verdict is Verdict.FAIL
    assert results[-1].message.endswith("low → fail")
    # The margin tolerates a decrease for a floor: allowed 1 / (1 + 1) = 0.5x.
    tolerant = throughput.model_copy(update={"margin": 1.0})
    results, _ = run(tolerant, windows)
    assert results[-1].verdict is Verdict.PASS
    assert "within allowed 0.5x" in results[-1].message
    ceiling = throughput.model_copy(update={"min": None, "max": 1000.0})
    results, _ = run(ceiling, windows)
    assert results[-1].verdict is Verdict.PASS
    assert results[-1].message.endswith("low → pass")


def test_evidence_and_statistic() -> None:
    windows = [latency(600.0 + i, 250.0 + i) for i in range(5)]
    results, _ = run(LATENCY, windows)
    last = results[-1]
    assert last.judge == "mann-whitney"
    assert last.canary is not None
    assert last.canary.value == pytest.approx(6.04)  # percent slower than 500 ms
    assert last.primary is not None
    assert last.primary.requests == 90_000
    assert last.statistic == pytest.approx(2 / 252)  # the p-value
    assert not last.decisive


# The test itself: scipy's mannwhitneyu (method "auto", two-sided), computed without scipy.


def _cases(seed: int, count: int) -> list[tuple[list[float], list[float]]]:
    """Samples as the judge sees them: small and large, continuous (no ties) and failure
    percents with many ties (mostly zeros), canary shifted or not."""
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        shape = rng.randrange(4)
        n_c, n_p = rng.randint(1, MAX_WINDOWS), rng.randint(1, MAX_WINDOWS)
        if shape == 0:  # one side small enough for the exact distribution
            n_c, n_p = rng.randint(1, EXACT_MAX_SIZE + 2), rng.randint(1, MAX_WINDOWS)
            if rng.random() < 0.5:
                n_c, n_p = n_p, n_c
        shift = rng.choice([0.0, 0.3, 1.0, 3.0])
        if shape == 1:  # failure percents: ties
            canary = [float(rng.choice([0, 0, 0, 1, 2, 5])) for _ in range(n_c)]
            primary = [float(rng.choice([0, 0, 0, 0, 1, 2])) for _ in range(n_p)]
        else:
            canary = [rng.gauss(shift, 1.0) for _ in range(n_c)]
            primary = [rng.gauss(0.0, 1.0) for _ in range(n_p)]
        cases.append((canary, primary))
    return cases


def test_u_and_p_match_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    exact = asymptotic = 0
    for canary, primary in _cases(seed=7, count=3000):
        theirs = stats.mannwhitneyu(canary, primary, alternative="two-sided", method="auto")
        u, p, tied = mann_whitney_u(canary, primary)
        expected = float(theirs.pvalue)
        expected = 1.0 if math.isnan(expected) else expected  # every value tied
        assert u == float(theirs.statistic)
        assert tied == (len(set(canary) | set(primary)) < len(canary) + len(primary))
        if tied or min(len(canary), len(primary)) > EXACT_MAX_SIZE:
            asymptotic += 1
            assert p == pytest.approx(expected, rel=1e-13, abs=1e-300)
        else:  # the exact distribution, summed as scipy sums it: the same floats
            exact += 1
            assert p == expected
    assert exact > 500
    assert asymptotic > 1500


@pytest.mark.parametrize(
    ("canary", "primary", "p"),
    [
        ([5.0, 6.0, 7.0, 8.0, 9.0], [0.0, 1.0, 2.0, 3.0, 4.0], 2 / 252),  # all above: 2/C(10,5)
        ([1.0, 2.0, 3.0], [1.5, 2.5, 3.5], 0.7),  # exact, interleaved
        ([2.0, 2.0, 2.0], [2.0, 2.0, 2.0, 2.0], 1.0),  # every value tied
        ([1.0], [2.0], 1.0),
    ],
)
def test_known_p_values(canary: list[float], primary: list[float], p: float) -> None:
    assert mann_whitney_u(canary, primary)[1] == pytest.approx(p)


def test_compare_reads_the_direction_from_u() -> None:
    outcome = compare([5.0, 6.0, 7.0, 8.0, 9.0], [0.0, 1.0, 2.0, 3.0, 4.0], 1.0)
    assert outcome.u_canary == 25.0
    assert outcome.u == 0.0
    assert outcome.canary_higher
    assert outcome.classification.value == "high"


def test_the_controller_does_not_import_scipy() -> None:
    """scipy is a test dependency only (it would add ~60 MiB to every controller process)."""
    code = (
        "import sys, canary.cli.main, canary.controller, canary.analysis.analyse, canary.sim\n"
        "sys.exit('scipy' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# The analysis tick applies the weighted score to the mann-whitney verdicts.

TARGETS = Targets(namespace="test", target="podinfo", canary="podinfo", primary="podinfo-primary")


class Fixed:
    """A provider that answers every check's query with a fixed window."""

    def __init__(self, answers: Mapping[str, WindowSample]) -> None:
        self.answers = answers

    def window(self, check: CheckSpec, variables: Mapping[str, str], at: datetime) -> WindowSample:
        return self.answers[check.name]


def _rollout(judge: str) -> Rollout:
    return Rollout.model_validate(
        {
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"name": "podinfo"},
                "service": {"port": 9898},
                "provider": {"name": "istio"},
                "analysis": {"judge": judge, "minRequests": 10},
            },
        }
    )


def _analyse_ticks(
    rollout: Rollout, checks: list[CheckSpec], windows: Mapping[str, list[WindowSample]]
) -> list[CheckResult]:
    status = RolloutStatus(canary_weight=10)
    results: list[CheckResult] = []
    for tick in range(len(next(iter(windows.values())))):
        provider = Fixed({name: series[tick] for name, series in windows.items()})
        results, states = analyse(rollout, status, checks, provider, TARGETS, 60, NOW)
        status = status.model_copy(update={"analysis": states})
    return results


def test_analyse_scores_mann_whitney_and_leaves_other_judges_alone() -> None:
    slow = [latency(600.0 + i, 250.0 + i) for i in range(5)]
    fine = [latency(250.0 + i, 250.0 + i) for i in range(5)]
    checks = [
        LATENCY.model_copy(update={"weight": 1.0}),
        CheckSpec(name="p50", kind=CheckKind.LATENCY, max=500.0, weight=4.0),
    ]
    results = _analyse_ticks(_rollout("mann-whitney"), checks, {"latency": slow, "p50": fine})
    # 4 of 5 weights passed: 80, marginal: the failing check holds instead of failing.
    assert [r.verdict for r in results] == [Verdict.INCONCLUSIVE, Verdict.PASS]
    assert "score 80 < pass 95, >= marginal 75: inconclusive" in results[0].message
    assert results[1].message.endswith("; score 80 < pass 95, >= marginal 75")

    # A threshold judge's verdicts count in the score but are never changed by it.
    mixed = [LATENCY, checks[1].model_copy(update={"judge": JudgeName.THRESHOLD})]
    over = [latency(600.0, 250.0)] * 5
    results = _analyse_ticks(_rollout("mann-whitney"), mixed, {"latency": over, "p50": over})
    assert [r.judge for r in results] == ["mann-whitney", "threshold"]
    assert [r.verdict for r in results] == [Verdict.FAIL, Verdict.FAIL]
    assert "score" not in results[1].message
    assert "score 0 < marginal 75: fail" in results[0].message


def test_analyse_without_mann_whitney_is_unchanged() -> None:
    fine = [latency(50.0, 50.0)]  # 0.5% slower than 500 ms: within the 1%
    results = _analyse_ticks(_rollout("threshold"), [LATENCY], {"latency": fine})
    assert results[0].verdict is Verdict.PASS
    assert "score" not in results[0].message


def test_windows_all_alike_pass_once_an_untied_test_could_have_rejected() -> None:
    """Neither side had a slow request in any window: every sample is 0. No arrangement of
    them differs, so the tie rule alone would never let the check pass; they pass once there
    are as many windows as a test without ties needs to be able to reject (5 a side)."""
    quiet = [latency(0.0, 0.0)] * 5
    results, _ = run(LATENCY, quiet)
    assert [r.verdict for r in results[:4]] == [Verdict.INCONCLUSIVE] * 4
    assert all(r.no_data for r in results[:4])
    assert results[4].verdict is Verdict.PASS
    # one slow request on the canary's side: ties again, judged as before
    results, _ = run(LATENCY, [*quiet[:4], latency(1.0, 0.0)])
    assert results[-1].verdict is Verdict.INCONCLUSIVE
