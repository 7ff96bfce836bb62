"""Exact counts for a check with a ``sideLabel``: one query, every counter series, our sums.

The check's requestsQuery and failuresQuery select counter series as they are (no
``increase()``, no ``sum``), each keeping the ``sideLabel`` whose value names the side. The
provider asks for all of them at once, tagged by part, as a subquery at a fine resolution that
reaches from a lookback before the look's start to its end::

    topk(<maxSeries + 1>,
      label_replace((<requestsQuery>), "__canary_series", "requests", "", "")
      or label_replace((<failuresQuery>), "__canary_series", "failures", "", "")
      or label_replace((<quantileQuery>), "__canary_series", "quantile", "", "")
    )[<lookback + window>s:<resolution>s]

and counts each series' increase between the look's boundaries in canary.analysis.counters
(resets handled, a series born inside the look counted from zero, no extrapolation), then
sums them by side. The quantileQuery (display only) may give bucket counts by side and ``le``,
which become a quantile estimate with its bucket, or one value per side.

When every requests series of a side carries a pod label (``pod``, as Prometheus' Kubernetes
service discovery is usually relabelled, or ``kubernetes_pod_name``), the side's counts are
kept per pod as well (canary.analysis.samples.PodCounts): the sequential judge bounds what few
canary pods can hide with them (canary.analysis.judges.pods).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from canary.analysis.counters import (
    Point,
    QuantileEstimate,
    bucket_quantile,
    increase,
    side_total,
)
from canary.analysis.provider import QueryError
from canary.analysis.samples import PodCounts, SideSample, WindowSample
from canary.model.analysis import CheckKind, CheckSpec

TAG = "__canary_series"
QUANTILE = 0.99
POD_LABELS = ("pod", "kubernetes_pod_name")
"""Labels that name the pod a series was scraped from, in the order they are looked for."""
_FIELDS = {"requests": "requestsQuery", "failures": "failuresQuery", "quantile": "quantileQuery"}


@dataclass(frozen=True)
class SeriesPoints:
    """One series of a range answer: its labels and its points (unix seconds, value)."""

    labels: dict[str, str]
    points: list[Point]


@dataclass(frozen=True)
class Look:
    """The look's boundaries and how the query reaches them (all unix seconds)."""

    start: float
    end: float
    resolution: float
    lookback: float

    @property
    def reach(self) -> float:
        """How far before ``end`` the query reads: the look and the lookback, plus a point."""
        return self.end - self.start + self.lookback + self.resolution


def combine(parts: Mapping[str, str], max_series: int) -> str:
    """One instant-vector expression answering every part, each series tagged with its part."""
    union = "\nor\n".join(
        f'label_replace((\n{query}\n), "{TAG}", "{part}", "", "")' for part, query in parts.items()
    )
    return f"topk({max_series + 1},\n{union}\n)"


def subquery(expression: str, look: Look, since: float | None = None) -> str:
    """``expression`` read at every ``resolution`` seconds over the look and its lookback, or
    from ``since`` (on the resolution's grid) to the look's end."""
    reach = look.reach if since is None else look.end - since + look.resolution
    return f"({expression})[{_seconds(reach)}s:{_seconds(look.resolution)}s]"


def range_seconds(look: Look) -> float:
    """The range of the look's whole subquery, as written in it."""
    return float(_seconds(look.reach))


def _seconds(value: float) -> str:
    return f"{math.ceil(value)}" if value >= 1 else f"{value:g}"


def split(
    check: CheckSpec,
    series: Sequence[SeriesPoints],
    variables: Mapping[str, str],
    look: Look,
    max_series: int,
) -> WindowSample:
    """The check's window from the subquery's answer: per series increases, summed by side."""
    if len({_identity(s.labels) for s in series}) > max_series:
        raise QueryError(
            f"check '{check.name}' selected more than {max_series} series (maxSeries): narrow "
            "its queries' selectors, or raise the provider's maxSeries"
        )
    label = check.side_label or ""
    sides = {variables.get("primary"): "primary", variables.get("canary"): "canary"}
    found: dict[str, dict[str, list[SeriesPoints]]] = {
        "canary": defaultdict(list),
        "primary": defaultdict(list),
    }
    for one in series:
        part = one.labels.get(TAG)
        if part is None:
            continue
        if label not in one.labels:
            raise QueryError(
                f"{_FIELDS.get(part, part)} of check '{check.name}' gave a series without its "
                f"sideLabel '{label}' (labels: {', '.join(sorted(one.labels)) or 'none'}): keep "
                "that label on every series (select the series as they are, no sum)"
            )
        side = sides.get(one.labels[label])
        if side is not None:
            found[side][part].append(one)
    return WindowSample(
        canary=_side(check, found["canary"], variables.get("canary", ""), look),
        primary=_side(check, found["primary"], variables.get("primary", ""), look),
    )


def _identity(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def _side(
    check: CheckSpec, parts: Mapping[str, list[SeriesPoints]], workload: str, look: Look
) -> SideSample | None:
    if not parts.get("requests"):
        return None
    requests = round(side_total((s.points for s in parts["requests"]), look.start, look.end))
    estimate = _quantile(parts.get("quantile", []), look)
    value = estimate.value if estimate is not None else _last_value(parts.get("quantile", []), look)
    low = estimate.low if estimate is not None else None
    high = estimate.high if estimate is not None else None
    failing = parts.get("failures", [])
    if not failing and check.kind is CheckKind.LATENCY and requests > 0:
        raise QueryError(no_failures_message(check, workload, requests))
    failures = round(side_total((s.points for s in failing), look.start, look.end))
    return SideSample(
        requests=max(0, requests),
        failures=min(max(0, requests), max(0, failures)),
        value=value,
        quantile_low=low,
        quantile_high=high,
        pods=_pods(parts["requests"], failing, look),
    )


def no_failures_message(check: CheckSpec, workload: str, count: int) -> str:
    """Why a side with requests but no failures series cannot be judged: for a latency check,
    an objective that is no bucket boundary (there are no slow counts, and no judge may pass
    it on its p99 estimate); otherwise a failures query that is absent, not 0, when nothing
    failed (estimated counts)."""
    head = f"failuresQuery found no series for {workload} though requestsQuery counted {count}"
    if check.kind is CheckKind.LATENCY:
        objective = f"max {check.max:g} ms" if check.max is not None else "max"
        return (
            f"{head}: the latency objective ({objective}) must be a bucket boundary (le) of "
            "the histogram; pick one of its buckets (see docs/policies.md)"
        )
    return f"{head}: make it 0 when nothing failed, e.g. '<errors> or 0 * <requests>'"


def _pod_of(labels: Mapping[str, str]) -> str | None:
    return next((labels[name] for name in POD_LABELS if labels.get(name)), None)


def _pods(
    requesting: Sequence[SeriesPoints], failing: Sequence[SeriesPoints], look: Look
) -> tuple[PodCounts, ...]:
    """The side's counts per pod, when every requests series names its pod (else none)."""
    names = [_pod_of(s.labels) for s in requesting]
    if any(name is None for name in names):
        return ()
    by_pod: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for one, name in zip(requesting, names, strict=True):
        by_pod[str(name)][0] += increase(one.points, look.start, look.end)
    for one in failing:
        name = _pod_of(one.labels)
        if name in by_pod:
            by_pod[name][1] += increase(one.points, look.start, look.end)
    counts = []
    for name, (requests, failures) in sorted(by_pod.items()):
        served = max(0, round(requests))
        counts.append(
            PodCounts(name=name, requests=served, failures=min(served, max(0, round(failures))))
        )
    return tuple(c for c in counts if c.requests > 0)


def _last_points(series: Sequence[SeriesPoints], end: float) -> list[tuple[dict[str, str], float]]:
    out = []
    for one in series:
        kept = [v for t, v in one.points if t <= end and math.isfinite(v)]
        if kept:
            out.append((one.labels, kept[-1]))
    return out


def _quantile(series: Sequence[SeriesPoints], look: Look) -> QuantileEstimate | None:
    """The p99 from bucket counts by ``le`` at the look's end (None without buckets)."""
    buckets: dict[float, float] = defaultdict(float)
    for labels, value in _last_points(series, look.end):
        bound = labels.get("le")
        if bound is None:
            return None
        try:
            buckets[float(bound)] += value
        except ValueError:
            continue
    return bucket_quantile(QUANTILE, dict(buckets)) if buckets else None


def _last_value(series: Sequence[SeriesPoints], look: Look) -> float | None:
    values = [v for _, v in _last_points(series, look.end)]
    return values[-1] if len(values) == 1 else None
