"""The number the threshold and Mann-Whitney judges decide on, for each kind of check.

- error-rate: the side's failed requests in percent of its requests;
- latency: the side's requests slower than the objective (``max`` ms), in percent of its
  requests: counted from the histogram's bucket at the objective, so exact where the counts
  are (canary.analysis.exact). A quantile read from the buckets (the p99 shown beside it) is
  an interpolation inside one bucket, an estimate, and decides nothing;
- custom: the query's value.

"p99 within ``max``" and "at most 1% of requests slower than ``max``" are the same statement
about the requests counted, so the latency limit is ``LATENCY_LIMIT_PERCENT`` of requests (the
sequential judge's objective for a latency check, canary.analysis.judges.sequential).
"""

from __future__ import annotations

import math

from canary.analysis.judges.sequential import LATENCY_SLOW_SHARE
from canary.analysis.samples import SideSample
from canary.model.analysis import CheckKind, CheckSpec

LATENCY_LIMIT_PERCENT = 100.0 * LATENCY_SLOW_SHARE
"""At most this percent of requests may be slower than a latency check's objective."""


def judged_value(kind: CheckKind, side: SideSample | None) -> float | None:
    """The side's judged number, or None when it has none (no data, no requests, NaN)."""
    if side is None:
        return None
    if kind is CheckKind.CUSTOM:
        value = side.value
        return None if value is None or math.isnan(value) else value
    return side.failure_percent


def format_judged(kind: CheckKind, value: float) -> str:
    """``1.25%`` for a share, ``42`` for a custom value."""
    if kind is CheckKind.CUSTOM:
        return f"{value:g}"
    return f"{value:.2f}%"


def judged_subject(check: CheckSpec, kind: CheckKind) -> str:
    """What the number is, for messages: ``canary errors``, ``canary slow (>500ms)``."""
    if kind is CheckKind.ERROR_RATE:
        return "canary errors"
    if kind is CheckKind.LATENCY:
        objective = f">{check.max:g}ms" if check.max is not None else "slow"
        return f"canary slow ({objective})"
    return f"canary {check.name}"
