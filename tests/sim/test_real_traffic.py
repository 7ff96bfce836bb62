"""The default judge under real traffic: bursts common to both versions, a traffic cycle, a
canary failing one endpoint, and pods whose error rates differ. Seeded runs of the istio
example through the simulator; each world must keep the judge's stated rates (false
rollbacks by a judgement <= alpha, promotions of a 2x canary <= beta, + 3 standard errors),
or, for the breaches docs/analysis.md states as assumptions, show them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from canary.model.loader import load_rollout
from canary.sim import simulate
from canary.sim.scenario import Scenario
from canary.sim.summary import Summary, summarise
from canary.sim.weather import Weather

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "podinfo-istio.yaml"
RUNS = 300
BOUND = 0.05 + 3 * (0.05 * 0.95 / RUNS) ** 0.5
BURSTS = {"bursts_per_hour": 20, "burst_seconds": 20, "burst_error_multiplier": 20}
CYCLE = {"cycle_amplitude": 0.6, "cycle_minutes": 20}


def _run(rpm: float, errors: float, ratio: float, runs: int = RUNS, **world: Any) -> Summary:
    rollout = load_rollout(EXAMPLE)
    scenario = Scenario(
        name="world",
        requests_per_minute=rpm,
        primary_error_percent=errors,
        canary_error_multiplier=ratio,
        **world,
    )
    results = [simulate(rollout, scenario, s, record_timeline=False) for s in range(runs)]
    return summarise(results, 0)


@pytest.mark.parametrize("world", [BURSTS, CYCLE], ids=["bursts", "cycle"])
@pytest.mark.parametrize(("rpm", "errors"), [(600, 0.5), (3000, 1.0)])
def test_common_modes_keep_both_rates(world: dict[str, float], rpm: float, errors: float) -> None:
    """Bursts and cycles scale both versions alike; comparing on the split of each look's
    failures conditions them away. (Before the objective stopped failing compared canaries,
    short bursts rolled back 50-60% of healthy canaries here.)"""
    healthy = _run(rpm, errors, 1.0, **world)
    assert healthy.rolled_back_by_judgement / RUNS <= BOUND
    if rpm == 3000:
        assert healthy.promoted / RUNS >= 0.9
    worse = _run(rpm, errors, 2.0, **BURSTS) if world is BURSTS else None
    if worse is not None:
        assert worse.promoted / RUNS <= BOUND


@pytest.mark.parametrize(("rpm", "errors", "ratio"), [(3000, 0.1, 10.0), (600, 0.5, 2.0)])
def test_a_cycle_does_not_promote_a_canary_at_its_objective(
    rpm: float, errors: float, ratio: float
) -> None:
    """A canary at the 1% objective and at least 2x its primary under a 20-minute cycle of
    +-60% (requests and both error rates): in a trough it looks within its objective. Judged
    against the primary's usual rate (its hour before the analysis) the objective route no
    longer promotes it more than beta allows. Before: 10% of 10x canaries at 3,000/min and
    0.1%, 8% of 2x ones at 600/min and 0.5% (500 seeds)."""
    runs = 500
    bound = 0.05 + 2 * (0.05 * 0.95 / runs) ** 0.5
    worse = _run(rpm, errors, ratio, runs=runs, **CYCLE)
    assert worse.promoted / runs <= bound


def test_a_cycle_costs_healthy_canaries_little() -> None:
    """The guard scales the objective by the primary's dip: healthy canaries under the cycle
    are still promoted about as often as in calm traffic at 600/min and 0.5% (61% before)."""
    healthy = _run(600, 0.5, 1.0, **CYCLE)
    assert healthy.promoted / RUNS >= 0.45
    assert healthy.rolled_back_by_judgement / RUNS <= BOUND


def test_a_daily_cycle_keeps_both_rates() -> None:
    """A day's cycle (+-60% over 24 hours) with the default baseline, the day before: the
    analysis sits at one phase of the day, and the guard judges the objective at the day's
    rate. (With only the hour before, a trough's hour is the usual rate: 12% of 2x canaries
    promoted.)"""
    day = {"cycle_amplitude": 0.6, "cycle_minutes": 1440}
    assert _run(600, 0.5, 2.0, **day).promoted / RUNS <= BOUND
    assert _run(3000, 0.1, 10.0, **day).promoted / RUNS <= BOUND
    assert _run(600, 0.5, 1.0, **day).rolled_back_by_judgement / RUNS <= BOUND


def test_a_new_service_is_judged_at_the_analysis_rate_and_says_so() -> None:
    """No history (a new service): nothing tells a trough, and the objective is judged at the
    rate during the analysis (assumption 3 unchecked); an undecided run says so, and healthy
    canaries are promoted as before the baseline."""
    rollout = load_rollout(EXAMPLE)
    scenario = Scenario(
        name="new", requests_per_minute=600, primary_error_percent=0.5, history_minutes=0
    )
    reasons = [simulate(rollout, scenario, s, record_timeline=False).reason for s in range(20)]
    undecided = [r for r in reasons if "undecided" in r]
    assert undecided
    assert all("judged at the rate during the analysis" in r for r in undecided)
    healthy = _run(600, 0.5, 1.0, history_minutes=0)
    assert healthy.promoted / RUNS >= 0.55


def test_a_canary_failing_one_endpoint_is_judged_on_its_whole_rate() -> None:
    """11x on an endpoint that takes a tenth of the requests is 2x overall: not promoted."""
    worse = _run(3000, 1.0, 11.0, endpoint_share=0.1)
    assert worse.promoted / RUNS <= BOUND
    assert worse.rolled_back_by_judgement / RUNS >= 0.9


def test_pods_of_the_same_size_with_small_spread_keep_the_rates() -> None:
    """The canary runs as many pods as the primary (canary_replicas); with a per-pod spread
    of 0.3 in log rate over 10 pods a side the stated rates hold."""
    pods = {"canary_pods": 10, "primary_pods": 10, "pod_error_sd": 0.3}
    assert _run(3000, 1.0, 1.0, **pods).rolled_back_by_judgement / RUNS <= BOUND
    assert _run(3000, 1.0, 2.0, **pods).promoted / RUNS <= BOUND


@pytest.mark.parametrize(
    ("pods", "rpm", "errors", "ratio"),
    [(2, 600, 0.5, 2.0), (2, 3000, 1.0, 1.0), (10, 3000, 1.0, 2.0)],
    ids=["2-2-600-2x", "2-2-3000-1x", "10-10-3000-2x"],
)
def test_as_many_pods_a_side_with_wide_spread_keep_both_rates(
    pods: int, rpm: float, errors: float, ratio: float
) -> None:
    """As many canary pods as primary pods, spread by 0.5 in log rate: with the tests
    unadjusted, 2 pods a side promoted 19% of 2x versions at 600/min and rolled back 19% of
    healthy ones by a judgement at 3,000/min, and 10 a side promoted 16% of 2x versions.
    Both sides' pods now tell the spread, and the tests carry it: both rates hold."""
    world = {"canary_pods": pods, "primary_pods": pods, "pod_error_sd": 0.5}
    summary = _run(rpm, errors, ratio, **world)
    if ratio >= 2.0:  # at least T = 2x worse, and at or over the 1% objective
        assert summary.promoted / RUNS <= BOUND
    else:
        assert summary.rolled_back_by_judgement / RUNS <= BOUND
    assert summary.promoted + summary.rolled_back_by_judgement + summary.undecided == RUNS


def test_as_many_alike_pods_a_side_are_still_promoted() -> None:
    """Ten alike pods a side at 600/min and 0.5%: the spread is not learnt before anything
    promotes (an earlier attempt promoted 18% of these healthy canaries instead of 61%); the
    price of telling it from 18 degrees of freedom is small (docs/analysis.md: 60%)."""
    world = {"canary_pods": 10, "primary_pods": 10, "pod_error_sd": 0.0}
    healthy = _run(600, 0.5, 1.0, **world)
    assert healthy.promoted / RUNS >= 0.45
    assert healthy.rolled_back_by_judgement / RUNS <= BOUND


@pytest.mark.parametrize("canary_pods", [1, 2, 3])
def test_few_canary_pods_keep_the_promotion_bound(canary_pods: int) -> None:
    """One to three canary pods against ten primary pods whose error rates spread by 0.5 in
    log rate: without per-pod counts 33% of 2x versions were promoted here (one pod is a
    draw, not the version). With each pod's counts the judge bounds the draw from the
    primary's pods and asks the comparison to rule out less than 2x: at most beta."""
    pods = {"canary_pods": canary_pods, "primary_pods": 10, "pod_error_sd": 0.5}
    worse = _run(3000, 1.0, 2.0, **pods)
    assert worse.promoted / RUNS <= BOUND


@pytest.mark.parametrize("canary_pods", [1, 2, 3])
def test_few_canary_pods_keep_the_false_rollback_bound(canary_pods: int) -> None:
    """The same pods, a healthy version: a canary pod drawn high is not harm. Without the
    widened null 12% of them were rolled back by a judgement with one canary pod."""
    pods = {"canary_pods": canary_pods, "primary_pods": 10, "pod_error_sd": 0.5}
    healthy = _run(3000, 1.0, 1.0, **pods)
    assert healthy.rolled_back_by_judgement / RUNS <= BOUND


@pytest.mark.parametrize("canary_pods", [1, 2, 3])
def test_few_canary_pods_of_a_healthy_version_are_still_promoted(canary_pods: int) -> None:
    """The bound costs time, not every promotion: with a spread of 0.2 most healthy versions
    on one to three canary pods are promoted before the deadline, few rolled back by a
    judgement (the rest end undecided: docs/analysis.md gives the shares)."""
    pods = {"canary_pods": canary_pods, "primary_pods": 10, "pod_error_sd": 0.2}
    healthy = _run(3000, 1.0, 1.0, **pods)
    assert healthy.promoted / RUNS >= 0.4
    assert healthy.rolled_back_by_judgement / RUNS <= BOUND
    assert healthy.promoted + healthy.rolled_back_by_judgement + healthy.undecided == RUNS


def test_a_calm_world_draws_what_it_drew_before() -> None:
    """Weather has a stream of its own: without bursts, cycle or pods nothing changes."""
    calm = Weather.draw(Scenario(name="calm"), 5, 3600.0)
    assert calm.burst_starts == ()
    assert calm.volume(0.0, 60.0) == 1.0
    assert calm.error_factor(0.0, 60.0) == 1.0
    assert calm.canary_pod_factor == calm.primary_pod_factor == 1.0


def test_bursts_and_cycle_shape_the_windows() -> None:
    bursty = Weather.draw(Scenario(name="b", bursts_per_hour=60, burst_seconds=30), 1, 3600.0)
    assert 30 <= len(bursty.burst_starts) <= 100
    start = bursty.burst_starts[0]
    assert bursty.error_factor(start, start + 30.0) == pytest.approx(10.0)
    assert bursty.error_factor(start, start + 60.0) >= 5.0
    cyclic = Weather.draw(Scenario(name="c", cycle_amplitude=0.5, cycle_minutes=10), 1, 3600.0)
    assert cyclic.volume(0.0, 600.0) == pytest.approx(1.0, abs=1e-9)  # a whole period
    samples = [cyclic.volume(t, t + 10.0) for t in range(0, 600, 10)]
    assert max(samples) > 1.45
    assert min(samples) < 0.55
