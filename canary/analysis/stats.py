"""Anytime-valid tests on failure counts: the maths behind the sequential judge.

Both tests are mixtures of likelihood ratios over a fixed grid of effects ``theta``, the
natural log of (alternative / null), so windows with different traffic shares multiply
exactly: each window adds its log-likelihood ratio at every grid point, and the running sums
are all a judge has to keep. See docs/analysis.md for the formulas.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

GRID_STEP = 0.1
"""Spacing of the effect grid in log ratio (about 10% per point)."""

GRID = np.round(np.arange(-30, 71) * GRID_STEP, 10)
"""theta = ln(effect / null), from 1/20x to 1100x the null."""

NULL_INDEX = 30
"""GRID[NULL_INDEX] == 0: the null itself."""

HARM_PRIOR_MODE = math.log(3.0)
HARM_PRIOR_SD = 1.3
"""Mixing weights on theta > 0 (a worse canary): a normal on ln(ratio) centred on 3x; most
weight between 1.3x and 30x, some up to hundreds."""

SAFE_PRIOR_MODE = math.log(1.5)
SAFE_PRIOR_SD = 0.6
"""Mixing weights on theta < 0 (a better canary), mirrored: centred on 1/1.5x."""


def _prior(offsets: FloatArray, mode: float, sd: float) -> FloatArray:
    """Log weights of a discretised normal on the offsets (> 0), summing to one."""
    dens = -0.5 * ((offsets - mode) / sd) ** 2
    return np.asarray(dens - np.logaddexp.reduce(dens), dtype=np.float64)


_OFFSETS: FloatArray = np.arange(1, GRID.size, dtype=np.float64) * GRID_STEP
HARM_LOG_PRIOR = _prior(_OFFSETS, HARM_PRIOR_MODE, HARM_PRIOR_SD)
"""log weight of the alternative ``theta_null + _OFFSETS[k]``."""
SAFE_LOG_PRIOR = _prior(_OFFSETS, SAFE_PRIOR_MODE, SAFE_PRIOR_SD)
"""log weight of the alternative ``theta_null - _OFFSETS[k]``."""


def split_loglik(
    canary_failures: int, primary_failures: int, share: float, null_ratio: float
) -> FloatArray:
    """One window's log-likelihood ratio against the null at every grid point.

    Given m = x + y failures, the canary's x ~ Binomial(m, p(r)) with
    p(r) = s*r / (s*r + 1 - s): logit p = logit s + ln r, r = null_ratio * exp(theta).
    """
    if canary_failures + primary_failures == 0 or not 0.0 < share < 1.0:
        return np.zeros(GRID.size)
    z = math.log(share / (1.0 - share)) + math.log(null_ratio) + GRID
    # log p = -softplus(-z), log(1 - p) = -softplus(z)
    ll = -canary_failures * np.logaddexp(0.0, -z) - primary_failures * np.logaddexp(0.0, z)
    return np.asarray(ll - ll[NULL_INDEX], dtype=np.float64)


def rate_loglik(failures: int, requests: int, null_rate: float) -> FloatArray:
    """Log-likelihood ratio of failures ~ Binomial(requests, q) at q = null_rate * exp(theta)
    against q = null_rate, at every grid point (-inf where q >= 1)."""
    q = null_rate * np.exp(GRID)
    with np.errstate(invalid="ignore", divide="ignore"):
        ll = failures * GRID + (requests - failures) * (np.log1p(-q) - math.log1p(-null_rate))
    return np.asarray(np.where(q < 1.0, ll, -np.inf), dtype=np.float64)


def _mixture(loglik: FloatArray, index: int, harm: bool) -> float:
    """ln of the mixture e-value for the null at GRID[index] against worse (harm) or better
    alternatives. Alternatives off the grid are dropped, which only makes it smaller."""
    if harm:
        alt = loglik[index + 1 :]
        prior = HARM_LOG_PRIOR[: alt.size]
    else:
        alt = loglik[:index][::-1]
        prior = SAFE_LOG_PRIOR[: alt.size]
    terms = alt + prior
    top = float(terms.max()) if alt.size else -math.inf
    if not math.isfinite(top):
        return -math.inf
    return top + math.log(float(np.exp(terms - top).sum())) - float(loglik[index])


def log_evidence_of_harm(loglik: FloatArray) -> float:
    """ln E: the e-value against 'no worse than the null' (fail when E >= 1/alpha)."""
    return _mixture(loglik, NULL_INDEX, harm=True)


def log_evidence_of_safety(loglik: FloatArray) -> float:
    """ln E: the e-value against 'at least as bad as the null' (the confidence sequence's
    upper end is below the null when E >= 1/alpha)."""
    return _mixture(loglik, NULL_INDEX, harm=False)


_HARM_W = np.concatenate(([0.0], np.exp(HARM_LOG_PRIOR)))
_SAFE_W = np.concatenate(([0.0], np.exp(SAFE_LOG_PRIOR)))


def _rejected(loglik: FloatArray, alpha: float, harm: bool) -> NDArray[np.bool_]:
    """For every grid point taken as the null: does its one-sided mixture test (against worse
    alternatives if harm, better ones otherwise) reject at level alpha? A convolution of the
    likelihoods with the prior weights, so all points cost one pass."""
    finite = np.isfinite(loglik)
    top = float(loglik[finite].max())
    lik = np.where(finite, np.exp(np.where(finite, loglik, top) - top), 0.0)
    n = lik.size
    # harm: sum_k w_k * lik[j + k]; safe: sum_k w_k * lik[j - k]
    mixed = np.convolve(lik[::-1], _HARM_W)[:n][::-1] if harm else np.convolve(lik, _SAFE_W)[:n]
    return np.asarray((mixed > 0.0) & (mixed * alpha >= lik), dtype=np.bool_)


def confidence_bounds(loglik: FloatArray, alpha: float) -> tuple[float, float]:
    """The confidence sequence's ends for theta on the grid: the smallest and largest grid
    points that neither one-sided test (each at level alpha) has rejected.

    An end at the grid's edge means 'at most / at least that far': the grid spans
    1/20x to 1100x of the null.
    """
    finite = np.isfinite(loglik)
    kept_low = np.flatnonzero(finite & ~_rejected(loglik, alpha, harm=True))
    kept_high = np.flatnonzero(finite & ~_rejected(loglik, alpha, harm=False))
    if kept_low.size == 0 or kept_high.size == 0:  # every point rejected: the likeliest
        best = int(np.argmax(loglik))
        return float(GRID[best]), float(GRID[best])
    lo, hi = int(kept_low[0]), int(kept_high[-1])
    return float(GRID[lo]), float(GRID[max(hi, lo)])


def evalue(log_e: float) -> float:
    """exp(ln E), kept finite for display and JSON."""
    return math.exp(min(log_e, 700.0))
