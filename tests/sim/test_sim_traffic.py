"""The synthetic traffic: shares per strategy, and latency draws that agree with themselves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from canary.engine import Route
from canary.model.strategy import CookieMatch, MatchRule
from canary.sim import SCENARIOS
from canary.sim.traffic import (
    AB_MATCH_SHARE,
    LOAD_TEST_SHARE,
    SideModel,
    canary_load,
    draw_latency,
    serve,
    side_models,
)


def test_weighted_route_sends_its_weight() -> None:
    assert canary_load(Route(canary_weight=20), blue_green=False, canary_ready=True) == (0.2, 0.0)
    assert canary_load(Route(), blue_green=False, canary_ready=True) == (0.0, 0.0)


def test_ab_route_sends_the_matching_share() -> None:
    route = Route(match=(MatchRule(cookie=CookieMatch(name="canary", value="always")),))
    assert canary_load(route, blue_green=False, canary_ready=True) == (AB_MATCH_SHARE, 0.0)


def test_blue_green_canary_gets_a_load_test_and_mirrored_copies() -> None:
    assert canary_load(Route(), blue_green=True, canary_ready=True) == (0.0, LOAD_TEST_SHARE)
    live, extra = canary_load(Route(mirror_percentage=50), blue_green=True, canary_ready=True)
    assert (live, extra) == (0.0, pytest.approx(0.5 + LOAD_TEST_SHARE))
    assert canary_load(Route(), blue_green=True, canary_ready=False) == (0.0, 0.0)
    # After the switch the canary takes all live traffic and no load test.
    assert canary_load(Route(canary_weight=100), blue_green=True, canary_ready=True) == (1.0, 0.0)


def test_side_that_is_not_up_fails_every_request() -> None:
    rng = np.random.default_rng(0)
    counts = serve(rng, SideModel.of(0.5, 100, 0.4), 100.0, up=False)
    assert counts.requests > 0
    assert counts.errors == counts.requests


def test_scenario_latencies() -> None:
    stable, _ = side_models(SCENARIOS["healthy"])
    _, slow = side_models(SCENARIOS["latency-regression"])
    p99 = 0.99
    assert stable.latency_at(p99) == pytest.approx(254, abs=2)
    assert slow.latency_at(p99) > 600
    assert 1 - slow.share_within(500) == pytest.approx(0.042, abs=0.005)
    _, errors = side_models(SCENARIOS["error-regression"])
    assert errors.error_probability == pytest.approx(0.025)


def test_quantile_agrees_with_the_slow_count() -> None:
    """The window's p99 is above the objective exactly when more than 1% of it was slow."""
    rng = np.random.default_rng(3)
    model = SideModel.of(0.5, 250, 0.4)
    seen_above = seen_below = 0
    for requests in (1, 7, 50, 100, 333, 1000):
        rank = math.ceil(0.99 * requests - 1e-9)
        for _ in range(200):
            slow, p99 = draw_latency(rng, model, requests, 500.0)
            assert p99 is not None
            assert 0 <= slow <= requests
            above = p99 > 500.0
            assert above == (rank > requests - slow)
            seen_above += above
            seen_below += not above
    assert seen_above
    assert seen_below
    assert draw_latency(rng, model, 0, 500.0) == (0, None)


def test_quantile_draws_match_the_distribution() -> None:
    rng = np.random.default_rng(5)
    model = SideModel.of(0.5, 100, 0.4)
    values = [draw_latency(rng, model, 10_000, 500.0)[1] for _ in range(200)]
    assert np.median(values) == pytest.approx(model.latency_at(0.99), rel=0.02)
