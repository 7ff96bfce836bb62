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
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from canary.analysis import exact
from canary.analysis.prometheus_api import (
    BasicAuth,
    PrometheusClient,
    PrometheusSettings,
    RetrySettings,
    Series,
    TlsSettings,
    _RetryableError,
)
from canary.analysis.provider import MetricsUnavailableError, QueryError
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
    "render",
    "render_check",
    "split",
]


_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_DURATION = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d|w|y))+")
_TOKENS = {"interval": _DURATION, "objective_ms": _NUMBER, "objective_seconds": _NUMBER}
_REGEX_SPECIAL = frozenset("\\.+*?()|[]{}^$")
_CONTROL = {c: {10: "\\n", 13: "\\r", 9: "\\t"}.get(c, f"\\x{c:02x}") for c in [*range(32), 127]}


def escape_string(value: str, quote: str = '"') -> str:
    """``value`` as the inside of a PromQL string quoted with ``quote``."""
    return value.translate({ord("\\"): "\\\\", ord(quote): "\\" + quote, **_CONTROL})


def escape_regex(value: str) -> str:
    """``value`` matched literally by an RE2 regular expression."""
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in value)


def render(template: str, variables: Mapping[str, str]) -> str:
    """``template`` with each ``{{ name }}`` replaced, escaped for where it stands.

    Inside a string the value is escaped for that string (and for a regular expression after
    ``=~``/``!~`` and as the regex argument of ``label_replace``; ``$`` doubled in its
    replacement argument), so no value can close the string or mean more than itself;
    outside strings only numbers and durations may go. ``interval`` must be a duration and
    ``objective_*`` numbers, wherever they stand. An unknown name is a QueryError naming it.
    """
    out: list[str] = []
    quote = ""  # the open string's quote; "#" in a comment; "" in plain code
    regex = False
    calls: list[list[Any]] = []  # open parentheses: [function name, argument index]
    i = 0
    while i < len(template):
        if template.startswith("{{", i):
            match = _PLACEHOLDER.match(template, i)
            if match is None:
                raise QueryError(f"malformed placeholder {template[i : i + 24]!r}")
            value = _value(match.group(1), variables, quote, regex)
            if quote in ('"', "'") and _argument(calls) == ("label_replace", 2):
                value = value.replace("$", "$$")  # the replacement: $1 would expand
            out.append(value)
            i = match.end()
            continue
        char = template[i]
        out.append(char)
        i += 1
        if quote in ('"', "'"):
            if char == "\\" and i < len(template):
                out.append(template[i])
                i += 1
            elif char == quote:
                quote = ""
        elif (quote == "`" and char == "`") or (quote == "#" and char == "\n"):
            quote = ""
        elif not quote and char in "\"'`#":
            quote = char
            regex = template[: i - 1].rstrip().endswith(("=~", "!~")) or _argument(calls) == (
                "label_replace",
                4,
            )
        elif not quote:
            _track_call(calls, template, i - 1, char)
    if quote and quote != "#":
        raise QueryError(f"unterminated {quote}-quoted string in the query")
    return "".join(out)


_FUNCTION_BEFORE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*$")


def _track_call(calls: list[list[Any]], template: str, at: int, char: str) -> None:
    """Follow parentheses and commas outside strings: which function's argument we are in."""
    if char == "(":
        found = _FUNCTION_BEFORE.search(template, max(0, at - 64), at)
        calls.append([found.group(1).lower() if found else "", 0])
    elif char == ")" and calls:
        calls.pop()
    elif char == "," and calls:
        calls[-1][1] += 1


def _argument(calls: list[list[Any]]) -> tuple[str, int] | None:
    return (str(calls[-1][0]), int(calls[-1][1])) if calls else None


def _value(name: str, variables: Mapping[str, str], quote: str, regex: bool) -> str:
    if name not in variables:
        known = ", ".join(sorted(variables)) or "none"
        raise QueryError(f"unknown variable {{{{ {name} }}}} (known: {known})")
    value = variables[name]
    pattern = _TOKENS.get(name)
    if pattern is not None and not pattern.fullmatch(value):
        what = "a duration such as 1m" if pattern is _DURATION else "a number"
        raise QueryError(f"variable {name} must be {what}, not {value!r}")
    if not quote:
        if _NUMBER.fullmatch(value) or _DURATION.fullmatch(value):
            return value
        raise QueryError(
            f"{{{{ {name} }}}} stands outside quotes, where only a number or a duration may; "
            f'quote it ("{{{{ {name} }}}}") (value {value!r})'
        )
    if regex and quote != "#":
        value = escape_regex(value)
    if quote == "`":
        if "`" in value:
            raise QueryError(f"{{{{ {name} }}}} is in a `raw string` and its value has a backtick")
        return value
    return escape_string(value, "'" if quote == "'" else '"')


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


class PrometheusProvider:
    """`MetricsProvider` on Prometheus: one instant query per check per tick."""

    def __init__(
        self, settings: PrometheusSettings, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.settings = settings
        self.client = PrometheusClient(settings)
        self._sleep = sleep

    def window(self, check: CheckSpec, variables: Mapping[str, str], at: datetime) -> WindowSample:
        if check.side_label and check.kind in (CheckKind.ERROR_RATE, CheckKind.LATENCY):
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
        return self.window(check, given, start).primary

    def exact_window(
        self, check: CheckSpec, variables: Mapping[str, str], at: datetime
    ) -> WindowSample:
        """Exact counts (canary.analysis.exact): one subquery, per series increases."""
        look = self.look(variables, at)
        parts = {}
        for part, template in query_parts(check).items():
            try:
                parts[part] = render(template, variables)
            except QueryError as exc:
                raise QueryError(f"{_FIELDS[part]} of check '{check.name}': {exc}") from None
        promql = exact.subquery(exact.combine(parts, self.settings.max_series), look)
        answer = self._retried(lambda: self.client.query_points(promql, _at(look.end)))
        return exact.split(check, answer, variables, look, self.settings.max_series)

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
