"""The sequential judge's maths for one analysis (canary.analysis.stats) against the vectorised
versions the tests and benchmarks use, and the confidence sequence against a plain
convolution: the judge's faster paths must give the very same floats (or bounds), so that a
simulated rollout comes out the same with them as without."""

from __future__ import annotations

import math

import numpy as np
import pytest

from canary.analysis import stats
from canary.analysis.stats import GRID, NULL_INDEX, FloatArray


def _sums(rng: np.random.Generator, null_ratio: float) -> FloatArray:
    """Running sums of the split test after a few windows of varied shares and failures."""
    total = np.zeros(GRID.size)
    for _ in range(int(rng.integers(1, 12))):
        x = int(rng.poisson(rng.uniform(0.0, 6.0)))
        y = int(rng.poisson(rng.uniform(0.0, 40.0)))
        total = total + stats.split_loglik(x, y, float(rng.uniform(0.01, 0.6)), null_ratio)
    return total


def _plain_bounds(loglik: FloatArray, alpha: float) -> tuple[float, float]:
    """The confidence sequence as first written: two convolutions with the prior weights."""
    finite = np.isfinite(loglik)
    top = float(loglik[finite].max())
    lik = np.where(finite, np.exp(np.where(finite, loglik, top) - top), 0.0)
    n = lik.size
    harm_w = np.concatenate(([0.0], np.exp(stats.HARM_LOG_PRIOR)))
    safe_w = np.concatenate(([0.0], np.exp(stats.SAFE_LOG_PRIOR)))
    kept = []
    for mixed in (np.convolve(lik[::-1], harm_w)[:n][::-1], np.convolve(lik, safe_w)[:n]):
        kept.append(np.flatnonzero(finite & ~((mixed > 0.0) & (mixed * alpha >= lik))))
    if kept[0].size == 0 or kept[1].size == 0:
        best = int(np.argmax(loglik))
        return float(GRID[best]), float(GRID[best])
    lo, hi = int(kept[0][0]), int(kept[1][-1])
    return float(GRID[lo]), float(GRID[max(hi, lo)])


@pytest.mark.parametrize("null_ratio", [1.0, 1.2])
def test_one_window_is_the_batch_row(null_ratio: float) -> None:
    rng = np.random.default_rng(11)
    for _ in range(2000):
        x, y = int(rng.integers(0, 50)), int(rng.integers(0, 300))
        share = float(rng.choice([rng.uniform(0.0, 1.0), rng.uniform(0.0, 1e-4), 0.0, 1.0]))
        one = stats.split_loglik(x, y, share, null_ratio)
        batch = stats.split_loglik_batch(
            np.array([x]), np.array([y]), np.array([share]), null_ratio
        )
        assert np.array_equal(one, batch[0])


def test_the_e_values_are_the_batch_rows() -> None:
    rng = np.random.default_rng(12)
    for _ in range(1000):
        sums = _sums(rng, 1.2)
        assert stats.log_evidence_of_harm(sums) == stats.log_evidence_of_harm_batch(sums[None])[0]
        index = int(rng.integers(NULL_INDEX + 1, GRID.size))
        centre, sd = float(rng.normal(0.0, 1.0)), float(rng.choice([0.5, 1.0]))
        one = stats.log_evidence_below(sums, index, centre, sd)
        assert one == stats.log_evidence_below_batch(sums[None], index, centre, sd)[0]


def test_the_objective_sums_are_the_direct_formula() -> None:
    rng = np.random.default_rng(13)
    for _ in range(1000):
        requests = int(rng.integers(0, 100_000))
        failures = int(rng.integers(0, min(requests, 40) + 1))
        rate = float(rng.choice([0.01, 0.001, 0.0, 0.5, rng.uniform(0.0, 1.0)]))
        q = rate * np.exp(GRID)
        with np.errstate(invalid="ignore", divide="ignore"):
            direct = failures * GRID + (requests - failures) * (np.log1p(-q) - math.log1p(-rate))
        expected = np.where(q < 1.0, direct, -np.inf)
        assert np.array_equal(stats.rate_loglik(failures, requests, rate), expected)
        if 0.0 < rate < 1.0:
            got = stats.log_evidence_below(expected, NULL_INDEX, -2.0, 1.0)
            want = stats.log_evidence_below_batch(expected[None], NULL_INDEX, -2.0, 1.0)[0]
            assert got == want or (math.isnan(got) and math.isnan(want))


def test_the_confidence_sequence_is_the_convolution() -> None:
    rng = np.random.default_rng(14)
    for i in range(3000):
        sums = _sums(rng, 1.0 if i % 2 else 1.2)
        assert stats.confidence_bounds(sums, 0.05) == _plain_bounds(sums, 0.05)
        assert stats.confidence_bounds(sums, 0.05) == _plain_bounds(sums, 0.05)  # remembered
    rates = [stats.rate_loglik(int(f), 2000, 0.01) for f in rng.integers(0, 60, 300)]
    for sums in rates:  # -inf where the rate would pass 1
        assert stats.confidence_bounds(sums, 0.05) == _plain_bounds(sums, 0.05)


def test_remembered_arrays_cannot_be_changed() -> None:
    per_success, possible = stats._rate_terms(0.01)
    with pytest.raises(ValueError, match="read-only"):
        per_success[0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        possible[0] = False
    sums = stats.rate_loglik(1, 100, 0.01)
    sums[0] = 5.0  # a fresh array every time
    assert stats.rate_loglik(1, 100, 0.01)[0] != 5.0
