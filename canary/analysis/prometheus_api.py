"""Prometheus's HTTP query API over httpx: where Prometheus is, how to reach it, one query.

`PrometheusClient` sends ``GET <url>/api/v1/query`` (an instant query at a given time) and reads
the JSON answer into series; it does not retry (the provider in canary.analysis.prometheus
does, with backoff). What the environment says is read once, when the client is made: proxies
(``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``), a CA bundle (``SSL_CERT_FILE``,
``SSL_CERT_DIR``, ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) and ``~/.netrc`` (or ``NETRC``)
credentials for the host; the settings' own ``tls`` and credentials come first.
"""

from __future__ import annotations

import contextlib
import functools
import netrc
import os
import re
import ssl
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlsplit

import certifi
import httpx
import orjson
from pydantic import Field, SecretStr, field_validator, model_validator

from canary.analysis.counters import Point
from canary.analysis.exact import SeriesPoints
from canary.analysis.provider import MetricsError, QueryError
from canary.model.base import CamelModel


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
    reuse_overlap: float = Field(
        default=15.0,
        ge=0,
        le=600,
        description="Exact counts: seconds of a check's previous answer read again at its next "
        "look and compared; when they are the same, the rest of that answer stands for the "
        "lookback, which is not read again (a difference: the whole range is read).",
    )
    reuse_points: int = Field(
        default=1_000_000,
        ge=0,
        le=100_000_000,
        description="Exact counts: the most points kept from previous answers over all checks "
        "(16 bytes each, and each series kept counts as 32 more; the least recently used "
        "dropped first); 0 reads every look whole.",
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


@dataclass(frozen=True)
class Series:
    """One series of an instant vector: its labels and its value."""

    labels: dict[str, str]
    value: float


class _RetryableError(Exception):
    """A try that failed in a way another try may not: ``reason`` completes 'prometheus at URL'."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")
_CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


KEPT_CONNECTIONS = 100
"""Connections to Prometheus kept open (httpx keeps 20 by default): one for each query at
once, up to the controller's workers; past the number kept, each query would open one and
close it (a TCP handshake, and a TLS one, a query)."""


class PrometheusClient:
    """One instant query against Prometheus's HTTP API, no retries of its own."""

    def __init__(self, settings: PrometheusSettings) -> None:
        self.settings = settings
        self.where = f"prometheus at {settings.url}"
        self.tls_error: str | None = None
        try:
            verify: ssl.SSLContext = ssl_context(settings.tls)
        except (OSError, ValueError) as exc:
            # Reported at each query (a check is inconclusive), not here: the controller lives on.
            files = ", ".join(_tls_files(settings.tls)) or "no files"
            self.tls_error = (
                f"{self.where}: cannot use the tls settings ({files}: {exc}); check tls"
            )
            verify = ssl.create_default_context()
        basic = settings.basic_auth
        auth = (basic.username, basic.password.get_secret_value()) if basic else None
        if settings.bearer_token is None and settings.bearer_token_file is None:
            auth = auth or netrc_auth(settings.url)  # ~/.netrc only where no credential is set
        self.http = httpx.Client(
            verify=verify,
            auth=auth,
            headers=settings.headers,
            timeout=settings.timeout,
            follow_redirects=True,
            trust_env=True,  # proxies from the environment, read here, once
            limits=httpx.Limits(max_connections=KEPT_CONNECTIONS),
        )
        self.query_url = httpx.URL(f"{settings.url}/api/v1/query")  # parsed once, not per query
        self.post = True
        """Queries go as a POSTed form until the server refuses POST and answers a GET."""

    def query(self, promql: str, at: datetime) -> list[Series]:
        """The instant vector of ``promql`` at ``at``; raises _RetryableError or a MetricsError."""
        return _parse(self._result(promql, at))

    def query_points(self, promql: str, at: datetime) -> list[SeriesPoints]:
        """The range vector of ``promql`` (a subquery or range selector) at ``at``."""
        return _parse_matrix(self._result(promql, at))

    def close(self) -> None:
        self.http.close()

    def _result(self, promql: str, at: datetime) -> object:
        if self.tls_error is not None:
            raise MetricsError(self.tls_error)
        response = self._get(promql, at)
        status = response.status_code
        if status != 200:
            raise _status_error(status, _error_text(response), promql, self.where)
        try:
            answer: Any = orjson.loads(response.content)
            return answer["data"]["result"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise MetricsError(
                f"{self.where} answered with something that is not its API"
            ) from None

    def _get(self, promql: str, at: datetime) -> httpx.Response:
        """The query as a form (POST, as Prometheus' API allows): a long query in a URL costs
        httpx a character-by-character pass or two on every request, and may pass URL limits.
        Where POST is refused (403, 405, 501: e.g. OpenShift's kube-rbac-proxy, which takes a
        POST for a "create") and a GET is answered, this client asks with GET from then on."""
        form = form_body(promql, at)
        try:
            headers = self._authorization()
            if self.post:
                response = self._post(form, headers)
                if response.status_code not in _POST_REFUSED:
                    return response
            params = {"query": promql, "time": f"{at.timestamp():.3f}"}
            answer = self.http.get(self.query_url, params=params, headers=headers)
            if self.post and answer.status_code not in _POST_REFUSED:
                self.post = False
            return answer
        except httpx.TimeoutException:
            raise _RetryableError(f"did not answer within {self.settings.timeout:g}s") from None
        except httpx.TransportError as exc:
            tls = _ssl_error(exc)
            if tls is not None:
                raise MetricsError(f"{self.where}: TLS failed ({tls}); check tls") from None
            raise _RetryableError(f"could not be reached ({_short(exc)})") from None
        except httpx.HTTPError as exc:  # too many redirects, an undecodable body
            raise MetricsError(f"{self.where}: {type(exc).__name__}: {exc}") from None

    def _post(self, form: bytes, headers: dict[str, str]) -> httpx.Response:
        headers = {**headers, "Content-Type": _FORM}
        response = self.http.post(self.query_url, content=form, headers=headers)
        if response.request.method != "POST":  # a 301/302/303 made it a GET without a query
            response = self.http.post(str(response.url), content=form, headers=headers)
        return response

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


_FORM = "application/x-www-form-urlencoded"
_POST_REFUSED = frozenset({403, 405, 501})


def form_body(promql: str, at: datetime) -> bytes:
    """``query`` and ``time`` as a form. A check's query differs from one look to the next
    only in its range (``[<range>s:<step>s]`` at the end), so the rest is encoded once."""
    head, bracket, tail = promql.rpartition("[")
    query = _encoded(head) + quote_plus(bracket + tail) if bracket else quote_plus(promql)
    return f"query={query}&time={at.timestamp():.3f}".encode()


@functools.lru_cache(maxsize=4096)
def _encoded(text: str) -> str:
    return quote_plus(text)


def ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """How to check Prometheus's certificate and which one to show it (mutual TLS)."""
    cafile, capath = _trusted(tls)
    context = ssl.create_default_context(cafile=cafile, capath=capath)
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.cert_file is not None:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


def _tls_files(tls: TlsSettings) -> list[str]:
    named = {"caFile": tls.ca_file, "certFile": tls.cert_file, "keyFile": tls.key_file}
    return [f"{field} {path}" for field, path in named.items() if path is not None]


def _trusted(tls: TlsSettings) -> tuple[str | None, str | None]:
    """The CAs to trust (file, directory): tls.caFile, else a bundle the environment names,
    else certifi's (as requests and httpx do)."""
    if tls.ca_file is not None:
        return str(tls.ca_file), None
    for name in _CA_VARIABLES:
        if os.environ.get(name):
            return os.environ[name], None
    if os.environ.get("SSL_CERT_DIR"):
        return None, os.environ["SSL_CERT_DIR"]
    return certifi.where(), None


def netrc_auth(url: str) -> tuple[str, str] | None:
    """Credentials for ``url``'s host in ``NETRC`` or ``~/.netrc``, if there are any."""
    host = urlsplit(url).hostname
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    if host is None or not path.is_file():
        return None
    with contextlib.suppress(OSError, netrc.NetrcParseError):
        found = netrc.netrc(str(path)).authenticators(host)
        if found is not None and found[0]:
            return found[0], found[2] or ""
    return None


def _status_error(status: int, error: str, promql: str, where: str) -> Exception:
    if status in (400, 422):
        return QueryError(f"prometheus refused the query (HTTP {status}): {error}; query: {promql}")
    if status >= 500 or status in (408, 429):
        return _RetryableError(f"answered HTTP {status}: {error}")
    return MetricsError(f"{where} answered HTTP {status}: {error}; check its URL and credentials")


def _error_text(response: httpx.Response) -> str:
    """Prometheus's ``error`` field, else the body, on one line and at most 300 characters."""
    text = response.text
    with contextlib.suppress(ValueError, KeyError, TypeError):
        text = str(response.json()["error"])
    return " ".join(text.split())[:300] or "no detail"


def _ssl_error(exc: BaseException) -> str | None:
    """The TLS failure under an httpx error (its causes), if it is one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {seen.verify_message}"
        if isinstance(seen, ssl.SSLError):
            return str(seen.reason or seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _short(exc: Exception) -> str:
    found = _ERRNO.search(str(exc))
    return found.group(0).strip() if found else type(exc).__name__


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
        points = _points(values)
        points.sort()
        out.append(SeriesPoints({str(k): str(v) for k, v in metric.items()}, points))
    return out


def _points(values: list[Any]) -> list[Point]:
    """``[[time, "value"], ...]`` as floats; a pair that is not two numbers is left out."""
    try:  # the common case in one comprehension: every pair is two numbers
        return [(float(t), float(v)) for t, v in values]
    except (TypeError, ValueError):
        pass
    points = []
    for pair in values:
        with contextlib.suppress(TypeError, ValueError, IndexError):
            points.append((float(pair[0]), float(pair[1])))
    return points
