"""Exact counts from counter series: each series' increase between a look's two boundaries.

A look counts, per series, what the counter gained from its value as of the look's start to
its value as of the look's end, over the points Prometheus gave (the latest sample at each
point of a fine grid). No extrapolation: a request is counted in the look whose end is the
first boundary after Prometheus scraped it, so consecutive looks add up to the total.

- A drop between two points is a counter reset (the process restarted): what the counter
  shows after it was all counted after the restart, so the new value is added. A restart
  after which the counter is back above its old value by the next point looks like growth
  (Prometheus' own increase() has the same blind spot).
- A series with no point at or before the start (within the lookback the query reaches back)
  was born inside the look: a new pod, or the first answer of a new kind (the first 503), so
  its first value was counted from zero. The assumption: Prometheus scraped its targets
  without a gap longer than the lookback; a series seen again after a longer gap would be
  counted from zero too (docs/policies.md). With Prometheus' created-timestamp ingestion the
  zero sample is there and nothing is assumed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Point = tuple[float, float]
"""(unix seconds, value)."""


def increase(points: Sequence[Point], start: float, end: float) -> float:
    """What a counter gained in (start, end], from its points sorted by time."""
    baseline: float | None = None
    gained = 0.0
    previous: float | None = None
    for time, value in points:
        if not math.isfinite(value) or time > end:
            continue
        if time <= start:
            baseline = value
            continue
        if previous is None:
            previous = 0.0 if baseline is None else baseline
        gained += value - previous if value >= previous else value
        previous = value
    return gained


def side_total(series: Iterable[Sequence[Point]], start: float, end: float) -> float:
    """The sum of several counters' increases: a side's count."""
    return sum(increase(points, start, end) for points in series)


@dataclass(frozen=True)
class QuantileEstimate:
    """A quantile read from histogram buckets: only the bucket is known for sure.

    ``value`` interpolates linearly inside the bucket (as Prometheus' histogram_quantile
    does); the truth lies anywhere in (``low``, ``high``]. ``high`` is infinite when the
    quantile falls in the last, open bucket (then ``value`` is ``low``).
    """

    value: float
    low: float
    high: float

    def describe(self, unit: str = "ms") -> str:
        if math.isinf(self.high):
            return f"over {self.low:g} {unit}"
        return f"~{self.value:.0f} {unit} (in the {self.low:g}-{self.high:g} {unit} bucket)"


def bucket_quantile(q: float, buckets: dict[float, float]) -> QuantileEstimate | None:
    """The ``q`` quantile of a histogram given as cumulative counts by upper bound (``le``).

    None without observations. The estimate is the position inside the bucket holding the
    quantile, as if the observations were spread evenly there.
    """
    bounds = sorted(buckets)
    if not bounds or not 0 <= q <= 1:
        return None
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank and count > below:
            if math.isinf(bound):
                return QuantileEstimate(value=lower, low=lower, high=bound)
            share = (rank - below) / (count - below)
            return QuantileEstimate(value=lower + (bound - lower) * share, low=lower, high=bound)
        lower, below = bound, max(below, count)
    return None
