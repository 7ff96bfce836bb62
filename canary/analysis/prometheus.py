"""Prometheus as a metrics provider: one instant query per check and tick, for both sides.

The check's queries are rendered with the tick's ``{{ variables }}`` (escaped for where they
stand), tagged by part with ``label_replace`` and joined with ``or`` into one expression,
evaluated at the end of the window. The answer is split by part, and by side on the one label
the queries aggregate by (``sum by (<workload label>)``): ``{{ canary }}`` or ``{{ primary }}``.
Counts are rounded, never negative, failures never above requests; a side without a series, or
with NaN or an infinity, has no data (None), never zero. Connection errors, timeouts, 429 and
5xx are retried with exponential backoff, then MetricsUnavailableError; 400/422 (bad PromQL)
is a QueryError at once. docs/policies.md describes the contract a policy's queries follow.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from canary.analysis import exact, prometheus_batch
from canary.analysis.prometheus_api import (
    BasicAuth,
    PrometheusClient,
    PrometheusSettings,
    RetrySettings,
    Series,
    TlsSettings,
    _RetryableError,
)
from canary.analysis.prometheus_reuse import LookCache
from canary.analysis.prometheus_template import escape_regex, escape_string, render
from canary.analysis.provider import Asked, MetricsError, MetricsUnavailableError, QueryError
from canary.analysis.samples import SideSample, WindowSample
from canary.model.analysis import CheckKind, CheckSpec
from canary.model.duration import format_duration, parse_duration

__all__ = [
    "TAG",
    "BasicAuth",
    "PrometheusClient",
    "PrometheusProvider",
    "PrometheusSettings",
    "RetrySettings",
    "Series",
    "TlsSettings",
    "escape_regex",
    "escape_string",
    "render",
    "render_check",
    "split",
]


TAG = exact.TAG
"""The synthetic label telling which of the check's queries a series answers."""

_FIELDS = {
    "requests": "requestsQuery",
    "failures": "failuresQuery",
    "quantile": "quantileQuery",
    "value": "query",
}


def query_parts(check: CheckSpec) -> dict[str, str]:
    """The check's queries by part: requests, failures (and quantile), or a custom value."""
    if check.kind is CheckKind.CUSTOM and check.query:
        return {"value": check.query}
    counted = check.kind in (CheckKind.ERROR_RATE, CheckKind.LATENCY)
    if counted and check.requests_query and check.failures_query:
        parts = {"requests": check.requests_query, "failures": check.failures_query}
        if check.quantile_query:
            parts["quantile"] = check.quantile_query
        return parts
    raise QueryError(
        f"check '{check.name}' has no queries to run: it needs a kind and requestsQuery and "
        "failuresQuery (or query, for kind custom), from a policy or inline"
    )


def combine(parts: Mapping[str, str]) -> str:
    """One PromQL expression answering every part, each series tagged with its part."""
    return "\nor\n".join(
        f'label_replace(\n{query}\n, "{TAG}", "{part}", "", "")' for part, query in parts.items()
    )


def only_side(expression: str, label: str, value: str) -> str:
    """``expression`` keeping only its series whose ``label`` is ``value`` (one side's), the
    filter evaluated by Prometheus: half the answer of a check whose other side has series."""
    return (
        f"(\n{expression}\n)\nand on({label})\n"
        f'label_replace(vector(1), "{label}", "{escape_string(value)}", "", "")'
    )


def render_check(check: CheckSpec, variables: Mapping[str, str]) -> str:
    """The check's one query for this tick."""
    rendered = {}
    for part, template in query_parts(check).items():
        try:
            rendered[part] = render(template, variables)
        except QueryError as exc:
            raise QueryError(f"{_FIELDS[part]} of check '{check.name}': {exc}") from None
    return combine(rendered)


def split(check: CheckSpec, series: list[Series], variables: Mapping[str, str]) -> WindowSample:
    """The window of ``check`` from the answer to its combined query."""
    sides = {variables.get("primary"): "primary", variables.get("canary"): "canary"}
    found: dict[str, dict[str, float]] = {"canary": {}, "primary": {}}
    for one in series:
        part = one.labels.get(TAG)
        if part is None:
            continue
        rest = {k: v for k, v in one.labels.items() if k not in (TAG, "__name__")}
        if len(rest) != 1:
            labels = ", ".join(sorted(rest)) or "no label"
            raise QueryError(
                f"{_FIELDS.get(part, part)} of check '{check.name}' must aggregate by one label "
                f"naming the workload, e.g. sum by (destination_workload) (...); got {labels}"
            )
        side = sides.get(next(iter(rest.values())))
        if side is None:
            continue
        if part in found[side]:
            raise QueryError(f"{_FIELDS.get(part, part)} gave two series for the {side}")
        found[side][part] = one.value
    return WindowSample(
        canary=_side(check, found["canary"], variables.get("canary", "")),
        primary=_side(check, found["primary"], variables.get("primary", "")),
    )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _side(check: CheckSpec, got: dict[str, float], workload: str) -> SideSample | None:
    """One side's sample; a custom check's value comes with zero counts (judges read value)."""
    if check.kind is CheckKind.CUSTOM:
        value = _finite(got.get("value"))
        return None if value is None else SideSample(requests=0, failures=0, value=value)
    requests_ = _finite(got.get("requests"))
    if requests_ is None:
        return None
    count = max(0, round(requests_))
    quantile = _finite(got.get("quantile"))
    if "failures" not in got:
        if count == 0:
            return SideSample(requests=0, failures=0, value=quantile)
        raise QueryError(exact.no_failures_message(check, workload, count))
    failures = _finite(got["failures"])
    if failures is None:
        return None
    return SideSample(requests=count, failures=min(count, max(0, round(failures))), value=quantile)


_T = TypeVar("_T")


def _window_seconds(variables: Mapping[str, str]) -> float:
    interval = variables.get("interval")
    if not interval:
        raise QueryError("the look has no {{ interval }}: cannot tell its boundaries")
    try:
        return parse_duration(interval)
    except ValueError as exc:
        raise QueryError(f"variable interval: {exc}") from None


def _on_grid(unix: float, resolution: float) -> float:
    """The last multiple of ``resolution`` at or before ``unix`` (a microsecond's tolerance,
    so a boundary computed twice lands on the same point)."""
    return math.floor((unix + 1e-6) / resolution) * resolution


def _at(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, tz=UTC)


def _counts_exactly(check: CheckSpec) -> bool:
    return bool(check.side_label) and check.kind in (CheckKind.ERROR_RATE, CheckKind.LATENCY)


class PrometheusProvider:
    """`MetricsProvider` on Prometheus: one query per check per tick, or one for all of a
    tick's exact-count checks (`batch_windows`, a `BatchProvider`)."""

    def __init__(
        self, settings: PrometheusSettings, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.settings = settings
        self.client = PrometheusClient(settings)
        self._sleep = sleep
        self.reuse = LookCache(settings.reuse_overlap, settings.reuse_points, settings.max_series)
        """What each check's previous look read (canary.analysis.prometheus_reuse)."""

    def window(self, check: CheckSpec, variables: Mapping[str, str], at: datetime) -> WindowSample:
        if _counts_exactly(check):
            return self.exact_window(check, variables, at)
        return split(check, self.query(render_check(check, variables), at), variables)

    def baseline(
        self, check: CheckSpec, variables: Mapping[str, str], start: datetime, seconds: float
    ) -> SideSample | None:
        """The primary's counts over the ``seconds`` before ``start`` (the analysis' start):
        the check's own queries with ``{{ interval }}`` that window, one instant query at
        ``start`` (exact counts for a check with a side label). None: no series, no history."""
        given = dict(variables)
        given["interval"] = format_duration(max(round(seconds), 1))
        given["window_start"] = f"{start.timestamp() - seconds:.3f}"
        if not _counts_exactly(check) or not given.get("primary"):
            return self.window(check, given, start).primary
        # exact counts: only the primary's series are asked for (the baseline reads no other)
        look = self.look(given, start)
        side = str(check.side_label)
        expression = only_side(self.exact_expression(check, given), side, given["primary"])
        answer = self._read(expression, look, self.settings.max_series)
        return exact.split(check, answer, given, look, self.settings.max_series).primary

    def exact_window(
        self, check: CheckSpec, variables: Mapping[str, str], at: datetime
    ) -> WindowSample:
        """Exact counts (canary.analysis.exact): one subquery, per series increases; the part
        of it the check's previous look read is not read again (prometheus_reuse)."""
        look = self.look(variables, at)
        expression = self.exact_expression(check, variables)
        answer = self._read(expression, look, self.settings.max_series)
        return exact.split(check, answer, variables, look, self.settings.max_series)

    def batch_windows(
        self, asked: Sequence[Asked], at: datetime
    ) -> list[WindowSample | MetricsError]:
        """Every asked check's window: the exact-count checks that share a look in one
        request (prometheus_batch), the others one request each. A check's window, or error,
        is the one `window` gives it: a batch Prometheus refuses (one check's bad query) is
        asked again check by check, so that one check's trouble stays its own."""
        out: dict[int, WindowSample | MetricsError] = {}
        groups: dict[exact.Look, list[tuple[int, str]]] = defaultdict(list)
        for index, (check, variables) in enumerate(asked):
            if not _counts_exactly(check):
                out[index] = self._alone(check, variables, at)
                continue
            try:
                look = self.look(variables, at)
                groups[look].append((index, self.exact_expression(check, variables)))
            except MetricsError as exc:
                out[index] = exc
        for look, members in groups.items():
            if len(members) == 1:
                index = members[0][0]
                out[index] = self._alone(*asked[index], at)
            else:
                out.update(self._batch(asked, look, members, at))
        return [out[index] for index in range(len(asked))]

    def exact_expression(self, check: CheckSpec, variables: Mapping[str, str]) -> str:
        """The check's exact-count expression (its parts rendered, tagged and capped)."""
        parts = {}
        for part, template in query_parts(check).items():
            try:
                parts[part] = render(template, variables)
            except QueryError as exc:
                raise QueryError(f"{_FIELDS[part]} of check '{check.name}': {exc}") from None
        return exact.combine(parts, self.settings.max_series)

    def _batch(
        self,
        asked: Sequence[Asked],
        look: exact.Look,
        members: list[tuple[int, str]],
        at: datetime,
    ) -> dict[int, WindowSample | MetricsError]:
        expression = prometheus_batch.join([text for _, text in members])
        limit = self.settings.max_series
        try:
            answer = self._read(expression, look, limit * len(members))
        except QueryError:
            return {index: self._alone(*asked[index], at) for index, _ in members}
        except MetricsError as exc:
            return {index: exc for index, _ in members}
        out: dict[int, WindowSample | MetricsError] = {}
        by_check = prometheus_batch.split_checks(answer, len(members))
        for (index, _), series in zip(members, by_check, strict=True):
            check, variables = asked[index]
            try:
                out[index] = exact.split(check, series, variables, look, limit)
            except MetricsError as exc:
                out[index] = exc
        return out

    def _alone(
        self, check: CheckSpec, variables: Mapping[str, str], at: datetime
    ) -> WindowSample | MetricsError:
        try:
            return self.window(check, variables, at)
        except MetricsError as exc:
            return exc

    def _read(self, expression: str, look: exact.Look, max_series: int) -> list[exact.SeriesPoints]:
        """The subquery of ``expression`` over ``look``, its reused part not read again."""

        def fetch(since: float | None) -> list[exact.SeriesPoints]:
            promql = exact.subquery(expression, look, since)
            return self._retried(lambda: self.client.query_points(promql, _at(look.end)))

        return self.reuse.read(expression, look, fetch, max_series=max_series)

    def look(self, variables: Mapping[str, str], at: datetime) -> exact.Look:
        """The look's boundaries on the resolution's grid: its end at or before ``at``, its
        start ``window_start`` when given (the previous look's end), else ``interval`` before."""
        settings = self.settings
        seconds = _window_seconds(variables)
        resolution = max(settings.resolution, seconds / settings.max_points)
        end = _on_grid(at.timestamp(), resolution)
        given = variables.get("window_start")
        start = _on_grid(float(given), resolution) if given else end - seconds
        return exact.Look(
            start=min(start, end), end=end, resolution=resolution, lookback=settings.lookback
        )

    def query(self, promql: str, at: datetime) -> list[Series]:
        """``promql`` at ``at``, retried with backoff while Prometheus is unreachable or failing."""
        return self._retried(lambda: self.client.query(promql, at))

    def _retried(self, ask: Callable[[], _T]) -> _T:
        retries = self.settings.retries
        reason = ""
        for attempt in range(1, retries.attempts + 1):
            try:
                return ask()
            except _RetryableError as exc:
                reason = exc.reason
            if attempt < retries.attempts:
                self._sleep(retries.delay(attempt))
        tries = f"{retries.attempts} attempt{'s' if retries.attempts > 1 else ''}"
        raise MetricsUnavailableError(f"prometheus at {self.settings.url} {reason} ({tries})")
