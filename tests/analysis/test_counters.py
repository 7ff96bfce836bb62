"""Exact counts from counter points: increases between boundaries, resets, series born inside a
look, looks that add up, and a quantile shown with its bucket."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from canary.analysis.counters import bucket_quantile, increase, side_total


def test_the_increase_is_the_value_at_the_end_minus_the_value_at_the_start() -> None:
    points = [(0.0, 100.0), (5.0, 103.0), (10.0, 110.0), (15.0, 111.0)]
    assert increase(points, 5.0, 15.0) == 8.0
    assert increase(points, 0.0, 10.0) == 10.0
    assert increase(points, 12.0, 14.0) == 0.0  # no scrape inside: nothing counted yet


def test_a_reset_adds_what_the_counter_shows_after_it() -> None:
    points = [(0.0, 50.0), (5.0, 60.0), (10.0, 4.0), (15.0, 9.0)]
    assert increase(points, 0.0, 15.0) == 10.0 + 4.0 + 5.0


def test_a_series_born_inside_the_look_counts_from_zero() -> None:
    assert increase([(6.0, 3.0), (11.0, 8.0)], 5.0, 15.0) == 8.0


def test_a_gap_is_bridged_not_read_as_zero() -> None:
    points = [(0.0, 10.0), (5.0, 12.0), (20.0, 20.0)]  # scrapes at 10 and 15 failed
    assert increase(points, 0.0, 20.0) == 10.0
    assert increase([(0.0, 1.0), (5.0, math.nan), (10.0, 4.0)], 0.0, 10.0) == 3.0


def test_consecutive_looks_add_up_to_the_total_over_random_counters() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        times = np.cumsum(rng.uniform(0.5, 6.0, size=60))
        values, value = [], 0.0
        for _ in times:
            value = 0.0 if rng.random() < 0.05 else value + float(rng.poisson(3))
            values.append(value)
        points = list(zip(times.tolist(), values, strict=True))
        born = float(rng.uniform(0, times[-1]))
        points = [p for p in points if p[0] >= born]
        cuts = np.sort(rng.uniform(0, times[-1], size=8)).tolist()
        bounds = [0.0, *cuts, float(times[-1])]
        looks = sum(increase(points, a, b) for a, b in itertools.pairwise(bounds))
        assert looks == pytest.approx(increase(points, 0.0, float(times[-1])))


def test_a_side_sums_its_series() -> None:
    one = [(0.0, 1.0), (10.0, 3.0)]
    two = [(5.0, 7.0)]  # born inside
    assert side_total([one, two], 0.0, 10.0) == 2.0 + 7.0


def test_a_quantile_is_an_estimate_inside_its_bucket() -> None:
    buckets = {100.0: 90.0, 500.0: 98.0, 1000.0: 100.0, math.inf: 100.0}
    estimate = bucket_quantile(0.99, buckets)
    assert estimate is not None
    assert (estimate.low, estimate.high) == (500.0, 1000.0)
    assert 500.0 < estimate.value <= 1000.0
    assert "500-1000 ms bucket" in estimate.describe()


def test_a_quantile_in_the_open_bucket_says_over() -> None:
    estimate = bucket_quantile(0.99, {100.0: 50.0, math.inf: 100.0})
    assert estimate is not None
    assert estimate.describe() == "over 100 ms"


def test_no_observations_no_quantile() -> None:
    assert bucket_quantile(0.99, {100.0: 0.0, math.inf: 0.0}) is None
    assert bucket_quantile(0.99, {}) is None
