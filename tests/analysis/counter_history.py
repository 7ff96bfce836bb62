"""Awkward counter histories for the exact-count tests: pods that come and go, restarts
(counter resets) inside looks, missed scrapes and gaps longer than the lookback, a failures
series born at the first failure, jittered scrape times, a NaN sample. Seeded.

Each series is (part, labels, samples); `openmetrics` writes them for promtool, and
`MiniPrometheus` answers the provider's exact-count subqueries from them over a real socket,
evaluating each point as Prometheus does (the latest sample at or before it, within the
5-minute lookback delta, none after a staleness marker).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_support import FakePrometheus, Recorded

from canary.analysis.exact import TAG

STALE = "stale"
LOOKBACK_DELTA = 300.0
_SUBQUERY = re.compile(r"\)\[(\d+(?:\.\d+)?)s:(\d+(?:\.\d+)?)s\]\s*$")
_PART = re.compile(r'"__canary_series",\s*"(\w+)"')


@dataclass
class Series:
    part: str  # requests, failures or quantile
    name: str
    labels: dict[str, str]
    samples: list[tuple[float, float | str]]  # (unix seconds, value or STALE)


def history(seed: int, start: float, span: float) -> list[Series]:
    """A canary ("app") and a primary ("app-primary") served by pods that come and go."""
    rng = random.Random(seed)
    out: list[Series] = []
    for side in ("app", "app-primary"):
        for pod in range(rng.randint(2, 4)):
            born = start + rng.choice([0.0, rng.uniform(0, span * 0.7)])
            died = born + rng.uniform(span * 0.2, span) if rng.random() < 0.5 else math.inf
            out.extend(_pod(rng, side, f"{side}-{pod}", born, min(died, start + span)))
    return out


def _pod(rng: random.Random, side: str, pod: str, born: float, died: float) -> list[Series]:
    scrape = rng.choice([5.0, 7.0, 10.0, 15.0])
    labels = {"app": side, "pod": pod}
    requests = Series("requests", "requests_total", {**labels, "code": "200"}, [])
    failures = Series("failures", "requests_total", {**labels, "code": "503"}, [])
    total = failing = 0
    t = born + rng.uniform(0, scrape)
    while t < died:
        if rng.random() < 0.01:  # a restart: the counters start again from (near) zero
            total, failing = 0, 0
        total += rng.randint(0, 40)
        if rng.random() < 0.15:
            failing += rng.randint(1, 3)
        missed = rng.random() < 0.08
        if not missed:
            at = round(t + rng.uniform(-0.3, 0.3), 3)
            requests.samples.append((at, float(total)))
            if failing or failures.samples:  # born at the first failure
                failures.samples.append((at, float(failing)))
        # now and then a gap: a few scrapes, or longer than the lookback
        t += scrape * (rng.choice([3, 30]) if rng.random() < 0.02 else 1)
    if math.isfinite(died) and requests.samples:
        for one in (requests, failures):
            if one.samples:
                one.samples.append((died, STALE))
    if requests.samples and rng.random() < 0.3:  # one NaN sample (a broken exporter)
        index = rng.randrange(len(requests.samples))
        if requests.samples[index][1] != STALE:
            requests.samples[index] = (requests.samples[index][0], math.nan)
    return [s for s in (requests, failures) if s.samples]


def openmetrics(series: list[Series]) -> str:
    """The samples as OpenMetrics for promtool (a staleness marker is not expressible: the
    series just ends)."""
    lines = ["# TYPE requests_total unknown"]
    for one in series:
        labels = ",".join(f'{k}="{v}"' for k, v in one.labels.items())
        for at, value in one.samples:
            if value == STALE:
                continue
            shown = "NaN" if isinstance(value, float) and math.isnan(value) else f"{value:.15g}"
            lines.append(f"{one.name}{{{labels}}} {shown} {at:.3f}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def value_at(samples: list[tuple[float, float | str]], t: float) -> float | None:
    """What an instant query sees at ``t``: the latest sample at or before it within the
    lookback delta; nothing after a staleness marker."""
    found: float | str | None = None
    for at, value in samples:
        if at > t:
            break
        if at > t - LOOKBACK_DELTA:
            found = value
    return None if found is None or found == STALE else float(found)


class MiniPrometheus:
    """Answers an exact-count subquery ``(...)[<range>s:<step>s]`` at ``time`` with every
    series of the parts it names: points on the step's grid in the range (``left_open``: the
    range's first instant excluded, as Prometheus 3; else included, as 2)."""

    def __init__(self, series: list[Series], left_open: bool) -> None:
        self.series = series
        self.left_open = left_open

    def answer(self, sent: Recorded) -> tuple[int, dict[str, Any], float]:
        query = sent.params["query"]
        found = _SUBQUERY.search(query)
        assert found is not None, query
        span, step = float(found.group(1)), float(found.group(2))
        end = float(sent.params["time"])
        first = math.ceil((end - span) / step - 1e-9) * step
        if self.left_open and abs(first - (end - span)) < 1e-6:
            first += step
        grid = [first + k * step for k in range(round((end - first) / step) + 1)]
        parts = set(_PART.findall(query))
        result = []
        for one in self.series:
            if one.part not in parts:
                continue
            values = [(t, value_at(one.samples, t)) for t in grid]
            points = [[t, _shown(v)] for t, v in values if v is not None]
            if points:
                result.append({"metric": {**one.labels, TAG: one.part}, "values": points})
        return 200, {"status": "success", "data": {"resultType": "matrix", "result": result}}, 0.0


def _shown(value: float) -> str:
    return "NaN" if math.isnan(value) else f"{value:.15g}"


@contextmanager
def serving(series: list[Series], left_open: bool) -> Iterator[FakePrometheus]:
    with FakePrometheus(MiniPrometheus(series, left_open).answer) as fake:
        yield fake
