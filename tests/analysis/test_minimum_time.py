"""The fastest any test could promote a healthy canary (canary.analysis.judges.minimum_time):
the exact fixed-sample tests checked against an independent solver over every test on small
cases, Wald's floor against a brute-force search of the bad worlds, and a seeded check that
the sequential judge's healthy canaries never beat the floor on average."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linprog
from scipy.stats import binom

from canary.analysis.judges import minimum_time as mt
from canary.model.loader import load_rollout
from canary.model.status import Phase
from canary.sim import simulate
from canary.sim.scenario import Scenario
from canary.sim.traffic import side_models

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "podinfo-istio.yaml"


def best_power_over_every_test(bad: np.ndarray, healthy: np.ndarray, beta: float) -> float:
    """The most powerful test of any form (phi: outcome -> chance of promoting) with size at
    most beta, by linear programming over all such functions: no Neyman-Pearson assumed."""
    found = linprog(
        c=-healthy, A_ub=bad[np.newaxis, :], b_ub=[beta], bounds=[(0.0, 1.0)] * bad.size
    )
    assert found.success
    return float(-found.fun)


def test_binomial_pmf_is_exact_on_small_cases() -> None:
    for n, p in [(0, 0.3), (1, 0.5), (7, 0.1), (30, 0.66), (12, 0.0), (5, 1.0)]:
        expected = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
        assert mt.binomial_pmf(n, p) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("n", "share", "ratio"), [(6, 0.5, 3.0), (10, 0.2, 2.0), (14, 0.5, 2.0)])
def test_the_threshold_test_is_the_most_powerful_of_all_tests(
    n: int, share: float, ratio: float
) -> None:
    bad = mt.binomial_pmf(n, share * ratio / (share * ratio + 1 - share))
    healthy = mt.binomial_pmf(n, share)
    for beta in (0.01, 0.05, 0.2):
        ours = mt.lower_tail_power(bad, healthy, beta)
        assert ours == pytest.approx(best_power_over_every_test(bad, healthy, beta), abs=1e-9)
        # without randomisation it can only be weaker
        assert mt.lower_tail_power(bad, healthy, beta, randomised=False) <= ours + 1e-12


def test_with_earlier_steps_the_canarys_total_is_all_a_test_needs() -> None:
    """Two steps at different shares: the best test over every function of (x1, x2) is no
    more powerful than the threshold on x1 + x2 (the total is sufficient for the ratio)."""
    errors = mt.Errors(alpha=0.2, beta=0.1, tolerance=3.0)
    (n1, s1), (n2, s2) = (4, 0.1), (7, 0.5)
    outcomes = list(itertools.product(range(n1 + 1), range(n2 + 1)))

    def joint(ratio: float) -> np.ndarray:
        first = mt.binomial_pmf(n1, s1 * ratio / (s1 * ratio + 1 - s1))
        second = mt.binomial_pmf(n2, s2 * ratio / (s2 * ratio + 1 - s2))
        return np.array([first[a] * second[b] for a, b in outcomes])

    every = best_power_over_every_test(joint(errors.tolerance), joint(1.0), errors.beta)
    ours = mt.comparison_power([(n1, s1)], n2, s2, errors)
    assert ours == pytest.approx(every, abs=1e-9)


def test_the_fewest_failures_match_a_search_over_every_test() -> None:
    """The smallest n at which some test (any form) has size beta and power 1 - alpha, found
    by solving the linear programme at n = 0, 1, 2, ...; against fewest()'s bisection."""
    for share, errors in [
        (0.5, mt.Errors(alpha=0.1, beta=0.1, tolerance=4.0)),
        (0.2, mt.Errors(alpha=0.2, beta=0.05, tolerance=5.0)),
        (0.5, mt.Errors(alpha=0.05, beta=0.05, tolerance=3.0)),
    ]:
        bad_p = share * errors.tolerance / (share * errors.tolerance + 1 - share)
        n = 0
        while (
            best_power_over_every_test(
                mt.binomial_pmf(n, bad_p), mt.binomial_pmf(n, share), errors.beta
            )
            < 1 - errors.alpha
        ):
            n += 1

        def power(k: int, share: float = share, errors: mt.Errors = errors) -> float:
            return mt.comparison_power([], k, share, errors)

        assert mt.fewest(power, 1 - errors.alpha) == n


def test_the_objective_route_against_scipy_and_every_test() -> None:
    rate, objective, alpha, beta = 0.001, 0.01, 0.05, 0.05
    check = mt.Check("errors", rate, objective, compare=False)
    schedule = mt.Schedule(600.0, (0.5,), 20.0)
    route = mt.objective_minimum(check, schedule, mt.Errors(alpha, beta, 2.0))
    m = int(route.units)
    assert route.minutes == pytest.approx(m / 300.0)

    def best(requests: int) -> float:
        k = np.arange(requests + 1)
        bad, healthy = binom.pmf(k, requests, objective), binom.pmf(k, requests, rate)
        return best_power_over_every_test(bad, healthy, beta)

    assert best(m) >= 1 - alpha - 1e-9
    assert best(m - 1) < 1 - alpha
    assert mt.objective_power(m, rate, objective, beta) == pytest.approx(best(m), abs=1e-9)


def test_earlier_steps_count_and_the_minutes_follow_the_traffic() -> None:
    check = mt.Check("errors", 0.01, None)
    errors = mt.Errors(0.05, 0.05, 2.0)
    alone = mt.comparison_minimum(check, mt.Schedule(3000, (0.5,), 20.0), errors)
    stepped = mt.comparison_minimum(check, mt.Schedule(3000, (0.05, 0.1, 0.2, 0.5), 20.0), errors)
    assert stepped.units < alone.units  # 30 earlier failures at 5-20% carry some evidence
    assert alone.minutes == pytest.approx(alone.units / 30.0)
    assert stepped.minutes == pytest.approx(1.0 + stepped.units / 30.0)
    slower = mt.comparison_minimum(check, mt.Schedule(300, (0.5,), 20.0), errors)
    assert slower.units == alone.units
    assert slower.minutes == pytest.approx(10 * alone.minutes)


def test_routes_that_cannot_promote_are_out_of_reach() -> None:
    errors = mt.Errors(0.05, 0.05, 2.0)
    schedule = mt.Schedule(600, (0.1, 0.5), 20.0)
    at_objective = mt.check_minimum(mt.Check("e", 0.01, 0.01), schedule, errors)
    assert [r.route for r in at_objective.routes] == ["primary", "objective"]
    assert math.isinf(at_objective.routes[1].minutes)
    assert at_objective.fixed is at_objective.routes[0]
    no_failures = mt.check_minimum(mt.Check("e", 0.0, None), schedule, errors)
    assert no_failures.fixed is None
    assert math.isinf(no_failures.fixed_minutes)
    assert math.isinf(no_failures.wald_minutes)


def test_bad_inputs_name_what_is_wrong() -> None:
    with pytest.raises(mt.MinimumTimeError, match="shares"):
        mt.Schedule(600, (0.0, 0.5), 20.0)
    with pytest.raises(mt.MinimumTimeError, match="tolerance"):
        mt.Errors(0.05, 0.05, 1.0)
    with pytest.raises(mt.MinimumTimeError, match="alpha and beta"):
        mt.Errors(0.6, 0.05, 2.0)


@pytest.mark.parametrize(
    ("rate", "objective", "compare"),
    [(0.005, 0.01, True), (0.01, 0.01, True), (0.001, 0.01, True), (0.005, None, True)],
)
def test_the_least_favourable_world_matches_a_brute_force_search(
    rate: float, objective: float | None, compare: bool
) -> None:
    """Over a grid of bad (primary p', canary c') pairs, c' free above its bound (the grid
    holds the bound itself: the nearest bad canary is often on it)."""
    check = mt.Check("e", rate, objective, compare)
    schedule = mt.Schedule(600, (0.05, 0.2, 0.5), 20.0)
    errors = mt.Errors(0.05, 0.05, 2.0)
    ours = mt.least_favourable_rate(check, schedule, errors)
    lowest = math.inf
    for primary in np.geomspace(1e-5, 0.4, 1500):
        bound = max(errors.tolerance * primary, objective or 0.0)
        for canary in [bound, *np.geomspace(1e-5, 0.9, 200)]:
            if canary < errors.tolerance * primary or (objective and canary < objective):
                continue
            kl_c = mt.bernoulli_divergence(rate, canary)
            kl_p = mt.bernoulli_divergence(rate, primary)
            fastest = max(600 * (s * kl_c + (1 - s) * kl_p) for s in (0.05, 0.5))
            lowest = min(lowest, fastest)
    assert ours <= lowest * (1 + 1e-9)  # ours searches finer, never a worse world
    assert ours == pytest.approx(lowest, rel=0.01)


def test_wald_needs_less_than_the_fixed_sample_but_not_nothing() -> None:
    errors = mt.Errors(0.05, 0.05, 2.0)
    schedule = mt.Schedule(3000, (0.5,), 20.0)
    check = mt.Check("e", 0.01, None)
    figures = mt.check_minimum(check, schedule, errors)
    sprt_failures = mt.decision_divergence(0.95, 0.05) / mt.bernoulli_divergence(0.5, 2 / 3)
    # the split's divergence per failure is the rare-failure limit of the per-request one
    assert figures.wald_minutes == pytest.approx(sprt_failures / 30.0, rel=0.02)
    assert 0.3 * figures.fixed_minutes < figures.wald_minutes < 0.7 * figures.fixed_minutes
    assert mt.decision_divergence(0.04, 0.05) == 0.0  # promoting less than beta costs nothing
    assert mt.wald_minutes(check, schedule, errors, promoted=0.5) < figures.wald_minutes


def _decision_minutes(scenario: Scenario, seed: int) -> tuple[float, bool]:
    """The judge's analysis minutes (canary ready to the decision) and whether it promoted."""
    rollout = load_rollout(EXAMPLE)
    result = simulate(rollout, scenario, seed)
    decided = next(
        e.time for e in result.timeline if e.phase in (Phase.PROMOTING, Phase.ROLLING_BACK)
    )
    return (decided - scenario.canary_ready_seconds) / 60.0, result.phase is Phase.SUCCEEDED


@pytest.mark.parametrize(("rpm", "errors"), [(3000, 1.0), (3000, 0.5), (600, 0.1), (600, 1.0)])
def test_the_judge_never_beats_walds_floor_on_average(rpm: float, errors: float) -> None:
    """Healthy canaries, seeds 0-59: the mean analysis time of the default judge is at least
    Wald's floor for a test promoting as often as it did. A judge below it would be promoting
    on less evidence than any test holding beta could have (docs/benchmarks.md)."""
    scenario = Scenario(name="aa", requests_per_minute=rpm, primary_error_percent=errors)
    runs = [_decision_minutes(scenario, seed) for seed in range(60)]
    promoted = sum(p for _, p in runs) / len(runs)
    stable, _ = side_models(scenario)
    floor = mt.for_rollout(
        load_rollout(EXAMPLE),
        rpm,
        errors / 100,
        lambda ms: 1.0 - stable.share_within(ms),
        promoted=promoted,
    ).wald_minutes
    mean = sum(m for m, _ in runs) / len(runs)
    assert promoted > 0.5
    assert floor > 0.2
    assert mean >= floor, (mean, floor, promoted)


def test_large_convolutions_by_fft_agree_with_the_direct_sum() -> None:
    first, second = mt.binomial_pmf(1500, 0.3), mt.binomial_pmf(900, 0.6)
    assert first.size * second.size > mt._DIRECT_LIMIT  # the FFT path
    direct = np.convolve(first, second)
    assert mt.convolve(first, second) == pytest.approx(direct, abs=1e-12)
