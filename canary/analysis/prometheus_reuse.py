"""Consecutive exact-count looks share all but their own seconds: the next one asks only for those.

A check's look starts where its previous look ended, and its subquery reads every series a
point per ``resolution`` from a lookback before that start (canary.analysis.exact): ~130
points a series for a 10-s look and the default 120-s lookback, of which the previous look
already read all but ~10. What the counts take from before the look's start is, per series,
only the last finite point at or before it (the baseline) and whether the series is there at
all (a side with a series has data; a latency side with requests needs a failures series;
maxSeries counts series). So after each look the provider keeps a summary of its answer:

- per series, every point of the last ``overlap`` seconds (the *tail*), and before them only
  the last finite point and the last point of any value;
- the answer's end, and from when it is complete: every series with a point after ``floor``
  is in it (series whose last point is older than any later look can reach are dropped).

The next look of the same query (same expression, resolution and lookback) then asks only
from the tail's start to its end. Its answer is the full subquery's from there (the same
expression at the same absolute points), the summary stands for the rest. Before the summary
is used the new answer's points over the tail must equal the kept ones, series for series: a
difference means Prometheus changed what it held since (a late scrape, out-of-order or
backfilled samples, another replica of an HA pair answering), and the look asks for its
whole range as it would without this. So do a summary point on the edge of what the full
range would include, a look further on than the lookback, a look that starts before the
tail, and a cold start (a restart, a shard just taken over): nothing here is ever needed,
only saved. Bounded: at most ``reusePoints`` points kept over all summaries, each series
counted as SERIES_COST points more (the least recently used summaries dropped first), none of
an answer with more than maxSeries series.

Identical to reading the whole range unless Prometheus changes a sample older than the tail
between two looks and leaves the tail as it was, for a series with no point in the tail
(which is the only kind whose baseline or presence the summary supplies).
"""

from __future__ import annotations

import bisect
import math
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from canary.analysis.counters import Point
from canary.analysis.exact import Look, SeriesPoints, range_seconds

Identity = tuple[tuple[str, str], ...]
Key = tuple[str, float, float]
Fetch = Callable[[float | None], list[SeriesPoints]]
"""Reads the look's query from a time on (None: its whole range)."""
SERIES_COST = 32
"""A series kept costs this many points against the bound besides its own (its labels, ~500
bytes, against a point's 16), so many series of few points cannot go past the bound."""
_EDGE = 1e-3
"""Seconds either side of the full range's first point within which a kept point may or may
not be in it (Prometheus versions differ on whether a range includes its start): a doubt."""


def identity(labels: dict[str, str]) -> Identity:
    return tuple(sorted(labels.items()))


@dataclass(frozen=True)
class _Record:
    labels: dict[str, str]
    older: tuple[Point, ...]
    """Before the tail: the last finite point and the last point (one point if the same)."""
    tail: array[float]
    """The points from the tail's start on, flat: time, value, time, value..."""

    @property
    def size(self) -> int:
        """What it costs against the bound, in points (its labels counted as SERIES_COST)."""
        return SERIES_COST + len(self.older) + len(self.tail) // 2


@dataclass(frozen=True)
class _Summary:
    end: float
    cut: float
    """The tail's start: points at or after it are kept as they are."""
    floor: float
    """Every series with a point after this is in ``records``."""
    records: dict[Identity, _Record]
    points: int


class LookCache:
    """Summaries of the last answer per query (expression, resolution, lookback), at most
    ``max_points`` points in all, none of an answer with more than ``max_series`` series."""

    def __init__(self, overlap: float, max_points: int, max_series: int) -> None:
        self.overlap = overlap
        self.max_points = max_points
        self.max_series = max_series
        self._kept: OrderedDict[Key, _Summary] = OrderedDict()
        self._points = 0
        self._lock = threading.Lock()
        self.reused = 0
        """Looks read from their tail on (for tests and benchmarks)."""
        self.doubted = 0
        """Looks whose tail differed from the kept one, read whole again."""
        self.edges = 0
        """Looks read whole again for a kept point on the whole range's first instant."""

    @property
    def points(self) -> int:
        """Points kept now, over all summaries."""
        return self._points

    def __len__(self) -> int:
        return len(self._kept)

    def read(
        self, expression: str, look: Look, fetch: Fetch, max_series: int | None = None
    ) -> list[SeriesPoints]:
        """The answer to ``expression`` over ``look``'s whole range, as a full read gives it
        (the points before the tail summarised); ``max_series``: the most series of an answer
        kept (default the cache's; a batch of checks' answer may hold that many a check)."""
        limit = self.max_series if max_series is None else max_series
        key = (expression, look.resolution, look.lookback)
        summary = self._get(key) if self.max_points > 0 else None
        if summary is not None and _usable(summary, look):
            if _on_edge(summary, look):
                self.edges += 1
            else:
                fresh = _from_cut(summary, fetch(summary.cut))
                if _same_tails(summary, fresh):
                    self.reused += 1
                    merged = _merge(summary, fresh, look)
                    self._put(key, self._summarise(merged, look, summary.floor, limit))
                    return merged
                self.doubted += 1
        answer = fetch(None)
        if self.max_points > 0:
            self._put(key, self._summarise(answer, look, _full_start(look), limit))
        return answer

    def _summarise(
        self, answer: Sequence[SeriesPoints], look: Look, floor: float, max_series: int
    ) -> _Summary | None:
        if len(answer) > max_series:
            return None  # the check is refused (maxSeries); nothing worth keeping
        cut = _on_grid(look.end - self.overlap, look.resolution)
        # no later look that can use this summary reaches a point older than this
        reach = cut - look.lookback - look.resolution - 2.0
        records = {}
        for series in answer:
            if not series.points or series.points[-1][0] < reach:
                continue
            split = bisect.bisect_left(series.points, (cut, -math.inf))
            older, tail = series.points[:split], series.points[split:]
            flat = array("d", [x for point in tail for x in point])
            records[identity(series.labels)] = _Record(series.labels, _last_two(older), flat)
        points = sum(r.size for r in records.values())
        return _Summary(look.end, cut, max(floor, reach), records, points)

    def _get(self, key: Key) -> _Summary | None:
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
            return found

    def _put(self, key: Key, summary: _Summary | None) -> None:
        with self._lock:
            old = self._kept.pop(key, None)
            if old is not None:
                self._points -= old.points
            if summary is None or summary.points > self.max_points:
                return
            self._kept[key] = summary
            self._points += summary.points
            while self._points > self.max_points:
                _, dropped = self._kept.popitem(last=False)
                self._points -= dropped.points


def _usable(summary: _Summary, look: Look) -> bool:
    """Whether a read from ``summary``'s tail on and the summary make ``look``'s answer: the
    look starts in or after the tail, ends after it, and the summary holds every series the
    whole range can show; and reading from the tail is the shorter read."""
    return (
        summary.cut <= look.start
        and summary.end <= look.end
        and summary.floor < _full_start(look) - _EDGE
        and look.end - summary.cut + look.resolution < range_seconds(look)
    )


def _full_start(look: Look) -> float:
    """Where the whole range's read starts: its first point is at or just after this."""
    return look.end - range_seconds(look)


def _on_grid(unix: float, resolution: float) -> float:
    return math.floor((unix + 1e-6) / resolution) * resolution


def _last_two(points: Sequence[Point]) -> tuple[Point, ...]:
    """The last finite point and the last point, in time order (one if they are the same)."""
    if not points:
        return ()
    last = points[-1]
    finite = next((p for p in reversed(points) if math.isfinite(p[1])), None)
    if finite is None or finite == last:
        return (last,)
    return (finite, last)


def _from_cut(summary: _Summary, fresh: Iterable[SeriesPoints]) -> dict[Identity, SeriesPoints]:
    """The fresh read by series, its points from the tail's start on."""
    got: dict[Identity, SeriesPoints] = {}
    for series in fresh:
        points = [p for p in series.points if p[0] >= summary.cut]
        if points:
            got[identity(series.labels)] = SeriesPoints(series.labels, points)
    return got


def _on_edge(summary: _Summary, look: Look) -> bool:
    """Whether a kept point is on the whole range's first instant, which Prometheus' versions
    do not agree is in the range (2 includes it, 3 does not)."""
    full_start = _full_start(look)
    return any(
        abs(t - full_start) <= _EDGE for record in summary.records.values() for t, _ in record.older
    )


def _merge(summary: _Summary, got: dict[Identity, SeriesPoints], look: Look) -> list[SeriesPoints]:
    """The whole range's answer from ``summary`` and the read from its tail on (by series)."""
    full_start = _full_start(look)
    merged = []
    # in the order a whole read gives: the fresh answer's, then series seen only before
    order = [*got, *(key for key in summary.records if key not in got)]
    for key in order:
        record = summary.records.get(key)
        older = record.older if record is not None else ()
        points = [p for p in older if p[0] > full_start]
        seen = got.get(key)
        if seen is not None:
            points.extend(seen.points)
        if points:
            labels = seen.labels if seen is not None else summary.records[key].labels
            merged.append(SeriesPoints(labels, points))
    return merged


def _same_tails(summary: _Summary, got: dict[Identity, SeriesPoints]) -> bool:
    """Whether the fresh read (by series, from the tail's start) holds exactly the kept points
    over the kept tail."""
    for key, record in summary.records.items():
        seen = got.get(key)
        flat = array(
            "d", [x for p in seen.points if p[0] <= summary.end for x in p] if seen else []
        )
        if flat != record.tail and not _same(flat, record.tail):  # NaN != NaN for arrays too
            return False
    return all(
        key in summary.records or series.points[0][0] > summary.end for key, series in got.items()
    )


def _same(a: Sequence[float], b: Sequence[float]) -> bool:
    """The same numbers (a NaN equals a NaN: Prometheus' NaN samples are values too)."""
    return len(a) == len(b) and all(
        x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True)
    )
