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

import ast
import contextlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import requests
from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from pydantic import Field, SecretStr, field_validator, model_validator
from urllib3.util.retry import Retry

from canary.analysis import exact
from canary.analysis.exact import SeriesPoints
from canary.analysis.provider import MetricsError, MetricsUnavailableError, QueryError
from canary.analysis.samples import SideSample, WindowSample
from canary.model.analysis import CheckKind, CheckSpec
from canary.model.base import CamelModel
from canary.model.duration import parse_duration


class RetrySettings(CamelModel):
    attempts: int = Field(default=3, ge=1, le=10, description="Tries per query, the first one too.")
    backoff: float = Field(
        default=0.5, ge=0, le=60, description="Seconds before the second try; doubled after."
    )
    max_backoff: float = Field(default=8.0, ge=0, le=300, description="Longest wait, seconds.")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        return float(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))


class BasicAuth(CamelModel):
    username: str = Field(min_length=1)
    password: SecretStr


class TlsSettings(CamelModel):
    ca_file: Path | None = Field(default=None, description="CA bundle to verify the server.")
    cert_file: Path | None = Field(default=None, description="Client certificate (mTLS).")
    key_file: Path | None = Field(default=None, description="Client key, if not in certFile.")
    insecure_skip_verify: bool = Field(default=False, description="Do not verify the server.")

    @model_validator(mode="after")
    def _key_with_cert(self) -> TlsSettings:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("tls.keyFile needs tls.certFile")
        return self


class PrometheusSettings(CamelModel):
    """Where Prometheus is and how to talk to it."""

    url: str = Field(default="http://127.0.0.1:9090", pattern=r"^https?://[^\s/]+")
    timeout: float = Field(default=5.0, gt=0, le=300, description="Seconds per try.")
    retries: RetrySettings = Field(default_factory=RetrySettings)
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = Field(
        default=None, description="Read at every query, so a rotated token is picked up."
    )
    basic_auth: BasicAuth | None = None
    tls: TlsSettings = Field(default_factory=TlsSettings)
    headers: dict[str, str] = Field(default_factory=dict, description="Sent with every query.")
    resolution: float = Field(
        default=1.0,
        ge=0.1,
        le=60,
        description="Exact counts: seconds between the points read from each series; at most "
        "the scrape interval (a reset between two points whose counter grew past its old value "
        "is missed).",
    )
    lookback: float = Field(
        default=120.0,
        ge=0,
        le=3600,
        description="Exact counts: seconds before a look's start searched for each series' "
        "value there; a series without one was born inside the look and counts from zero, so "
        "make it longer than the longest scrape gap.",
    )
    max_series: int = Field(
        default=2000,
        ge=1,
        le=100_000,
        description="Exact counts: the most series one check may select (both sides).",
    )
    max_points: int = Field(
        default=1200,
        ge=10,
        le=100_000,
        description="Exact counts: the most points read per series; a longer look reads at a "
        "coarser resolution.",
    )

    @field_validator("url")
    @classmethod
    def _no_trailing_slash(cls, url: str) -> str:
        return url.rstrip("/")

    @model_validator(mode="after")
    def _one_credential(self) -> PrometheusSettings:
        given = [self.bearer_token, self.bearer_token_file, self.basic_auth]
        if sum(x is not None for x in given) > 1:
            raise ValueError("give one of bearerToken, bearerTokenFile and basicAuth")
        return self


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


@dataclass(frozen=True)
class Series:
    """One series of an instant vector: its labels and its value."""

    labels: dict[str, str]
    value: float


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
        raise QueryError(_no_failures(check, workload, count))
    failures = _finite(got["failures"])
    if failures is None:
        return None
    return SideSample(requests=count, failures=min(count, max(0, round(failures))), value=quantile)


def _no_failures(check: CheckSpec, workload: str, count: int) -> str:
    head = f"failuresQuery found no series for {workload} though requestsQuery counted {count}"
    if check.kind is CheckKind.LATENCY:
        objective = f"max {check.max:g} ms" if check.max is not None else "max"
        return (
            f"{head}: the latency objective ({objective}) must be a bucket boundary (le) of "
            "the histogram; pick one of its buckets (see docs/policies.md)"
        )
    return f"{head}: make it 0 when nothing failed, e.g. '<errors> or 0 * <requests>'"


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


class _RetryableError(Exception):
    """A try that failed in a way another try may not: ``reason`` completes 'prometheus at URL'."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")]+")
_STATUS = re.compile(r"HTTP Status Code (\d+) \((.*)\)\Z", re.S)


class PrometheusClient:
    """A typed layer over prometheus-api-client: one instant query, no retries of its own."""

    def __init__(self, settings: PrometheusSettings) -> None:
        self.settings = settings
        session = requests.Session()
        tls = settings.tls
        session.verify = str(tls.ca_file) if tls.ca_file else not tls.insecure_skip_verify
        if tls.cert_file is not None:
            session.cert = (str(tls.cert_file), str(tls.key_file or tls.cert_file))
        session.headers.update(settings.headers)
        basic = settings.basic_auth
        auth = (basic.username, basic.password.get_secret_value()) if basic else None
        # What requests takes from the environment (proxies and no_proxy, a CA bundle named by
        # REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE, ~/.netrc), read once here: a session that
        # trusts the environment reads and parses it again at every query.
        session.proxies.update(requests.utils.get_environ_proxies(settings.url))
        if session.verify is True:
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            session.verify = bundle or True
        auth = auth or requests.utils.get_netrc_auth(settings.url)
        session.trust_env = False
        self.session = session
        self._api: Any = PrometheusConnect(
            url=settings.url,
            retry=Retry(total=0, read=False, raise_on_status=False),
            auth=auth,
            session=session,
            timeout=settings.timeout,
        )

    def query(self, promql: str, at: datetime) -> list[Series]:
        """The instant vector of ``promql`` at ``at``; raises _RetryableError or a MetricsError."""
        return _parse(self._raw(promql, at))

    def query_points(self, promql: str, at: datetime) -> list[SeriesPoints]:
        """The range vector of ``promql`` (a subquery or range selector) at ``at``."""
        return _parse_matrix(self._raw(promql, at))

    def _raw(self, promql: str, at: datetime) -> object:
        self._api.headers = self._authorization()
        where = f"prometheus at {self.settings.url}"
        try:
            raw = self._api.custom_query(query=promql, params={"time": f"{at.timestamp():.3f}"})
        except requests.exceptions.SSLError as exc:
            raise MetricsError(f"{where}: TLS failed ({_short(exc)}); check tls") from None
        except requests.Timeout:
            raise _RetryableError(f"did not answer within {self.settings.timeout:g}s") from None
        except requests.ConnectionError as exc:
            raise _RetryableError(f"could not be reached ({_short(exc)})") from None
        except PrometheusApiClientException as exc:
            status, error = _http_error(str(exc))
            if status in (400, 422):
                raise QueryError(
                    f"prometheus refused the query (HTTP {status}): {error}; query: {promql}"
                ) from None
            if status is None or status >= 500 or status in (408, 429):
                raise _RetryableError(f"answered HTTP {status or '?'}: {error}") from None
            raise MetricsError(
                f"{where} answered HTTP {status}: {error}; check its URL and credentials"
            ) from None
        except (ValueError, KeyError, TypeError):
            raise MetricsError(f"{where} answered with something that is not its API") from None
        return raw

    def _authorization(self) -> dict[str, str]:
        token = self.settings.bearer_token
        if token is not None:
            return {"Authorization": f"Bearer {token.get_secret_value()}"}
        path = self.settings.bearer_token_file
        if path is None:
            return {}
        try:
            return {"Authorization": f"Bearer {path.read_text().strip()}"}
        except OSError as exc:
            raise MetricsError(f"cannot read bearerTokenFile {path}: {exc.strerror}") from None


def _short(exc: Exception) -> str:
    found = _ERRNO.search(str(exc))
    return found.group(0).strip() if found else type(exc).__name__


def _http_error(message: str) -> tuple[int | None, str]:
    """The status and Prometheus's error text, from the client's exception message."""
    match = _STATUS.match(message)
    if match is None:
        return None, message
    text = match.group(2)
    with contextlib.suppress(ValueError, SyntaxError, KeyError, TypeError):
        raw = ast.literal_eval(text)
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        text = str(json.loads(text)["error"])
    return int(match.group(1)), " ".join(text.split())[:300] or "no detail"


def _parse(raw: object) -> list[Series]:
    if not isinstance(raw, list):
        raise MetricsError("prometheus answered a query with something that is not a vector")
    out = []
    for item in raw:
        metric = item.get("metric") if isinstance(item, dict) else None
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(metric, dict) or not isinstance(value, list) or len(value) != 2:
            continue  # a native histogram, or nothing a float can be read from
        try:
            number = float(value[1])
        except (TypeError, ValueError):
            continue
        out.append(Series({str(k): str(v) for k, v in metric.items()}, number))
    return out


def _parse_matrix(raw: object) -> list[SeriesPoints]:
    if not isinstance(raw, list):
        raise MetricsError("prometheus answered a query with something that is not a matrix")
    out = []
    for item in raw:
        metric = item.get("metric") if isinstance(item, dict) else None
        values = item.get("values") if isinstance(item, dict) else None
        if not isinstance(metric, dict) or not isinstance(values, list):
            continue
        points = []
        for pair in values:
            with contextlib.suppress(TypeError, ValueError, IndexError):
                points.append((float(pair[0]), float(pair[1])))
        points.sort()
        out.append(SeriesPoints({str(k): str(v) for k, v in metric.items()}, points))
    return out


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
