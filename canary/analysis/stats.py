"""Anytime-valid tests on failure counts: the maths behind the sequential judge.

Every test is a mixture of likelihood ratios over a fixed grid of effects ``theta``, the
natural log of (alternative / null), so windows with different traffic shares multiply
exactly: each window adds its log-likelihood ratio at every grid point, and the running sums
are all a judge has to keep. The fail test mixes alternatives above the null; the pass test
(``log_evidence_below``) mixes alternatives below a tolerance against the tolerance; the
exposure (``exposure``) is what a window could have told about a given regression. The
``_batch`` variants compute the same for many analyses at once (tests, benchmarks). See
docs/analysis.md for the formulas.
"""

from __future__ import annotations

import math
from functools import lru_cache

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
    # split_loglik_batch's arithmetic for one row, without its broadcasting (the same floats).
    if canary_failures + primary_failures <= 0 or not 0.0 < share < 1.0:
        return np.zeros(GRID.size)
    s = min(max(share, 1e-300), 1.0 - 1e-16)
    z = np.log(s / (1.0 - s)) + math.log(null_ratio) + GRID
    x, y = float(canary_failures), float(primary_failures)
    ll = -x * np.logaddexp(0.0, -z) - y * np.logaddexp(0.0, z)
    return np.asarray(ll - ll[NULL_INDEX], dtype=np.float64)


def split_loglik_batch(
    canary_failures: NDArray[np.int64] | FloatArray,
    primary_failures: NDArray[np.int64] | FloatArray,
    share: FloatArray,
    null_ratio: float,
) -> FloatArray:
    """split_loglik for many windows at once (one row each): what the judge adds per window,
    for simulating many analyses side by side. A window without failures, or with a share of
    0 or 1, adds nothing."""
    x = np.asarray(canary_failures, dtype=np.float64)[:, None]
    y = np.asarray(primary_failures, dtype=np.float64)[:, None]
    s = np.asarray(share, dtype=np.float64)[:, None]
    valid = (x + y > 0) & (s > 0.0) & (s < 1.0)
    s = np.clip(s, 1e-300, 1.0 - 1e-16)
    z = np.log(s / (1.0 - s)) + math.log(null_ratio) + GRID[None, :]
    # log p = -softplus(-z), log(1 - p) = -softplus(z)
    ll = -x * np.logaddexp(0.0, -z) - y * np.logaddexp(0.0, z)
    ll = ll - ll[:, NULL_INDEX : NULL_INDEX + 1]
    return np.asarray(np.where(valid, ll, 0.0), dtype=np.float64)


def rate_loglik(failures: int, requests: int, null_rate: float) -> FloatArray:
    """Log-likelihood ratio of failures ~ Binomial(requests, q) at q = null_rate * exp(theta)
    against q = null_rate, at every grid point (-inf where q >= 1)."""
    per_success, possible = _rate_terms(null_rate)
    ll = failures * GRID + (requests - failures) * per_success
    return np.asarray(np.where(possible, ll, -np.inf), dtype=np.float64)


@lru_cache(maxsize=256)
def _rate_terms(null_rate: float) -> tuple[FloatArray, NDArray[np.bool_]]:
    """rate_loglik's terms that depend on the null rate only: what a request without a
    failure adds at each grid point (0 where q >= 1, which rate_loglik makes -inf), and
    where q < 1. Computed once per null rate; read-only."""
    q = null_rate * np.exp(GRID)
    possible = q < 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        per_success = np.where(possible, np.log1p(-q) - math.log1p(-null_rate), 0.0)
    per_success.flags.writeable = False
    possible.flags.writeable = False
    return per_success, possible


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
    alt = loglik[NULL_INDEX + 1 :] + HARM_LOG_PRIOR[: loglik.size - NULL_INDEX - 1]
    return float(np.logaddexp.reduce(alt) - loglik[NULL_INDEX])


def log_evidence_of_harm_batch(loglik: FloatArray) -> FloatArray:
    """log_evidence_of_harm for many running sums at once (one row each)."""
    alt = loglik[:, NULL_INDEX + 1 :] + HARM_LOG_PRIOR[None, : loglik.shape[1] - NULL_INDEX - 1]
    mixed = np.logaddexp.reduce(alt, axis=1) - loglik[:, NULL_INDEX]
    return np.asarray(mixed, dtype=np.float64)


def log_evidence_of_safety(loglik: FloatArray) -> float:
    """ln E: the e-value against 'at least as bad as the null' (the confidence sequence's
    upper end is below the null when E >= 1/alpha)."""
    return _mixture(loglik, NULL_INDEX, harm=False)


def exposure(
    primary_rate: float,
    canary_requests: int,
    primary_requests: int,
    null_ratio: float,
    ratio: float,
) -> float:
    """What a window could tell: the expected ln-likelihood ratio against the null (ratio
    ``null_ratio``) that a canary ``ratio`` times worse than its primary would give in a
    window with these requests, the primary failing at ``primary_rate``. Such a window has
    rate * (primary_requests + ratio * canary_requests) failures on average, and each adds
    KL(p(ratio) || p(null_ratio)) to the split's log-likelihood ratio. It depends on the
    traffic and the primary's rate, not on the canary's failures."""
    if primary_rate <= 0.0 or canary_requests <= 0 or primary_requests <= 0:
        return 0.0
    odds = canary_requests / primary_requests
    p_alt = odds * ratio / (1.0 + odds * ratio)
    p_null = odds * null_ratio / (1.0 + odds * null_ratio)
    failures = primary_rate * (primary_requests + ratio * canary_requests)
    return failures * rate_divergence(p_alt, p_null)


def rate_divergence(alternative: float, null: float) -> float:
    """KL(Bernoulli(alternative) || Bernoulli(null)): the expected ln-likelihood ratio one
    request adds for a canary failing at ``alternative`` against the rate ``null``."""
    a, n = alternative, null
    return a * math.log(a / n) + (1.0 - a) * math.log((1.0 - a) / (1.0 - n))


def tolerance_index(null_ratio: float, tolerance: float) -> int:
    """Grid index of the largest grid ratio at or below ``tolerance`` (a ratio to the same
    baseline as ``null_ratio``), at least one step above the null and at most the grid's end.
    Rounding down only widens the null of the tolerance test ("at least that bad"), which
    keeps it valid for the tolerance asked."""
    steps = math.floor(math.log(tolerance / null_ratio) / GRID_STEP + 1e-9)
    return NULL_INDEX + min(max(steps, 1), GRID.size - 1 - NULL_INDEX)


def log_evidence_below(loglik: FloatArray, index: int, centre: float, sd: float) -> float:
    """ln E against "the effect is at least GRID[index]" (a canary that bad or worse), mixing
    the alternatives below it with a normal on theta centred on ``centre``, normalised over
    those grid points. Each alternative's likelihood ratio against GRID[index] is a
    supermartingale for any effect at or above it (the binomial family is ordered), so the
    mixture is an e-value for that whole null: it reaches 1/beta with probability at most
    beta, ever, when the canary is at least that bad."""
    at = float(loglik[index])
    if not math.isfinite(at):
        return -math.inf
    mixed = np.logaddexp.reduce(loglik[:index] + _below_weights(index, centre, sd))
    return float(mixed - at)


@lru_cache(maxsize=256)
def _below_weights(index: int, centre: float, sd: float) -> FloatArray:
    """log weights of log_evidence_below's alternatives (read-only, computed once)."""
    dens = -0.5 * ((GRID[:index] - centre) / sd) ** 2
    weights = np.asarray(dens - np.logaddexp.reduce(dens), dtype=np.float64)
    weights.flags.writeable = False
    return weights


def log_evidence_below_batch(
    loglik: FloatArray, index: int, centre: float, sd: float
) -> FloatArray:
    """log_evidence_below for many running sums at once (one row each)."""
    weights = _below_weights(index, centre, sd)
    with np.errstate(invalid="ignore"):
        mixed = np.logaddexp.reduce(loglik[:, :index] + weights[None, :], axis=1)
        out = mixed - loglik[:, index]
    return np.asarray(np.where(np.isfinite(loglik[:, index]), out, -np.inf), dtype=np.float64)


def _shifted(weights: FloatArray, harm: bool) -> FloatArray:
    """The prior weights as a matrix on the grid: row j mixes the likelihoods of the points
    k steps above j (harm) or below it (otherwise) with weight ``weights[k - 1]``."""
    index = np.arange(GRID.size)
    steps = index[None, :] - index[:, None]  # column - row
    if not harm:
        steps = -steps
    padded = np.concatenate(([0.0], weights))  # 0 steps (and fewer) weigh nothing
    return np.asarray(padded[np.clip(steps, 0, None)], dtype=np.float64)


_MIXERS = np.concatenate(
    (_shifted(np.exp(HARM_LOG_PRIOR), harm=True), _shifted(np.exp(SAFE_LOG_PRIOR), harm=False))
)
"""Both one-sided mixtures at every grid point as one product: the harm tests' rows, then
the safe tests'."""
_MIXERS.flags.writeable = False


def confidence_bounds(loglik: FloatArray, alpha: float) -> tuple[float, float]:
    """The confidence sequence's ends for theta on the grid: the smallest and largest grid
    points that neither one-sided test (each at level alpha) has rejected.

    Remembered for the last thousand running sums: a look whose window adds no failure
    leaves them as they were, and so do the first looks of every analysis."""
    return _confidence_bounds(np.asarray(loglik, dtype=np.float64).tobytes(), alpha)


@lru_cache(maxsize=1024)
def _confidence_bounds(raw: bytes, alpha: float) -> tuple[float, float]:
    """confidence_bounds of the running sums ``raw`` (float64 bytes).

    Every grid point taken as the null has two one-sided mixture tests, against worse and
    against better alternatives: the likelihoods, relative to the largest, times the prior
    weights (one matrix product for all of them), held against the point's own at alpha.
    An end at the grid's edge means 'at most / at least that far': the grid spans
    1/20x to 1100x of the null.
    """
    loglik = np.frombuffer(raw, dtype=np.float64)
    finite = np.isfinite(loglik)
    if finite.all():  # the comparison's sums always are
        lik = np.exp(loglik - loglik.max())
    else:
        top = float(loglik[finite].max())
        lik = np.where(finite, np.exp(np.where(finite, loglik, top) - top), 0.0)
    mixed = (_MIXERS @ lik).reshape(2, -1)
    kept_low, kept_high = finite & ((mixed <= 0.0) | (mixed * alpha < lik))
    if not kept_low.any() or not kept_high.any():  # every point rejected: the likeliest
        best = int(np.argmax(loglik))
        return float(GRID[best]), float(GRID[best])
    lo = int(kept_low.argmax())  # the first kept point
    hi = kept_high.size - 1 - int(kept_high[::-1].argmax())  # the last
    return float(GRID[lo]), float(GRID[max(hi, lo)])


def evalue(log_e: float) -> float:
    """exp(ln E), kept finite for display and JSON."""
    return math.exp(min(log_e, 700.0))
