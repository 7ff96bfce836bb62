"""The Prometheus provider against a real Prometheus holding known series (and a fake one for
what a real one will not do on demand: answer slowly, fail, record headers)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_support import (
    BAD_CANARY,
    NAN_RATIO,
    SCENARIOS,
    Certificate,
    FakePrometheus,
    LoadedPrometheus,
    Recorded,
    Scenario,
    Sleeps,
    Traffic,
    closed_port,
    error,
    self_signed,
    vector,
)

from canary.analysis.analyse import analyse, query_variables
from canary.analysis.checks import resolve_checks
from canary.analysis.policies import builtin_policy, expand
from canary.analysis.prometheus import (
    TAG,
    PrometheusProvider,
    PrometheusSettings,
    render,
)
from canary.analysis.provider import (
    MetricsError,
    MetricsUnavailableError,
    QueryError,
    Targets,
)
from canary.analysis.samples import PodCounts, SideSample, WindowSample
from canary.cli.show import evidence
from canary.model import CheckKind, CheckSpec, JudgeName, Rollout, RolloutStatus, Verdict

AT = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW = 60.0


def provider(url: str, **settings: Any) -> PrometheusProvider:
    return PrometheusProvider(PrometheusSettings(url=url, **settings), sleep=Sleeps())


def checks_of(policy: str) -> dict[str, CheckSpec]:
    return {c.name: c for c in expand(builtin_policy(policy))}


def window(
    prom: LoadedPrometheus, check: CheckSpec, targets: Targets, **settings: Any
) -> WindowSample:
    variables = query_variables(targets, WINDOW, check)
    return provider(prom.url, **settings).window(check, variables, prom.at)


def side(traffic: Traffic, check: str) -> tuple[int, int]:
    if check == "error-rate":
        return traffic.requests, traffic.errors
    return traffic.requests, traffic.slow(500)


# --- the shipped policies against a real Prometheus ---------------------------------------


@pytest.mark.parametrize("scenario", ["bad", "healthy"])
@pytest.mark.parametrize("policy", sorted(SCENARIOS))
def test_each_policy_counts_requests_and_failures_of_both_sides(
    prometheus: LoadedPrometheus, policy: str, scenario: str
) -> None:
    case: Scenario = SCENARIOS[policy][scenario]
    for name, check in checks_of(policy).items():
        got = window(prometheus, check, case.targets)
        assert got.canary is not None, f"{policy} {name}: no canary data"
        assert got.primary is not None, f"{policy} {name}: no primary data"
        assert (got.canary.requests, got.canary.failures) == side(case.canary, name), name
        assert (got.primary.requests, got.primary.failures) == side(case.primary, name), name


@pytest.mark.parametrize("policy", sorted(SCENARIOS))
def test_each_policy_shows_a_plausible_p99_in_milliseconds(
    prometheus: LoadedPrometheus, policy: str
) -> None:
    latency = checks_of(policy)["latency"]
    bad = window(prometheus, latency, SCENARIOS[policy]["bad"].targets)
    healthy = window(prometheus, latency, SCENARIOS[policy]["healthy"].targets)
    assert bad.canary is not None
    assert bad.primary is not None
    assert healthy.canary is not None
    assert bad.canary.value == pytest.approx(1000.0, rel=1e-6)  # 594th of 600 ends the 1s bucket
    assert healthy.canary.value == pytest.approx(100.0, rel=1e-6)
    assert bad.primary.value is not None
    assert 100.0 < bad.primary.value <= 500.0


def test_error_counts_are_the_windows_own(prometheus: LoadedPrometheus) -> None:
    errors = checks_of("istio")["error-rate"]
    targets = SCENARIOS["istio"]["bad"].targets
    variables = query_variables(targets, 120, errors)  # a 2-minute window: twice the counts
    got = provider(prometheus.url).window(errors, variables, prometheus.at)
    assert got.canary == SideSample(requests=2 * BAD_CANARY.requests, failures=2 * 12)


def test_no_series_is_no_data_not_zero(prometheus: LoadedPrometheus) -> None:
    nobody = Targets(namespace="empty", target="podinfo", canary="podinfo", primary="podinfo-p")
    for policy in SCENARIOS:
        for check in checks_of(policy).values():
            assert window(prometheus, check, nobody) == WindowSample(canary=None, primary=None)


def test_a_canary_without_traffic_yet_is_no_data_beside_a_primary_with_data(
    prometheus: LoadedPrometheus,
) -> None:
    targets = Targets(namespace="test", target="podinfo", canary="new", primary="podinfo-primary")
    got = window(prometheus, checks_of("istio")["error-rate"], targets)
    assert got.canary is None
    assert got.primary == SideSample(requests=3000, failures=12)


def test_nan_and_infinity_are_no_data(prometheus: LoadedPrometheus) -> None:
    ratio = CheckSpec(
        name="ratio",
        kind=CheckKind.CUSTOM,
        max=1,
        query=f'sum by (deployment) ({NAN_RATIO}{{namespace="{{{{ namespace }}}}"}})',
    )
    test, healthy = SCENARIOS["linkerd"]["bad"], SCENARIOS["linkerd"]["healthy"]
    assert window(prometheus, ratio, test.targets) == WindowSample(
        canary=None, primary=SideSample(requests=0, failures=0, value=0.25)
    )
    inf = window(prometheus, ratio, healthy.targets)
    assert inf.canary is None  # +Inf
    assert inf.primary == SideSample(requests=0, failures=0, value=0.5)


def test_nan_counts_are_no_data(prometheus: LoadedPrometheus) -> None:
    nan = CheckSpec(
        name="errors",
        kind=CheckKind.ERROR_RATE,
        requests_query=f'sum by (deployment) ({NAN_RATIO}{{namespace="test"}})',
        failures_query=f'0 * sum by (deployment) ({NAN_RATIO}{{namespace="test"}})',
    )
    got = window(prometheus, nan, SCENARIOS["linkerd"]["bad"].targets)
    assert got.canary is None
    assert got.primary == SideSample(requests=0, failures=0)


def test_a_latency_objective_that_is_no_bucket_boundary_says_so(
    prometheus: LoadedPrometheus,
) -> None:
    latency = checks_of("istio")["latency"].model_copy(update={"max": 450.0})
    with pytest.raises(QueryError, match=r"max 450 ms\) must be a bucket boundary"):
        window(prometheus, latency, SCENARIOS["istio"]["bad"].targets)


def test_a_bad_query_is_a_query_error_with_prometheus_message(
    prometheus: LoadedPrometheus,
) -> None:
    bad = CheckSpec(
        name="errors",
        kind=CheckKind.ERROR_RATE,
        requests_query="sum by (deployment) (rate(response_total[{{ interval }}])",
        failures_query="sum by (deployment) (rate(response_total[{{ interval }}]))",
    )
    sleeps = Sleeps()
    prom = PrometheusProvider(PrometheusSettings(url=prometheus.url), sleep=sleeps)
    targets = SCENARIOS["linkerd"]["bad"].targets
    with pytest.raises(QueryError) as caught:
        prom.window(bad, query_variables(targets, WINDOW, bad), prometheus.at)
    message = str(caught.value)
    assert "HTTP 400" in message
    assert "parse error" in message
    assert "rate(response_total[1m])" in message  # the query, as sent
    assert sleeps.delays == []  # not retried


def test_an_unknown_function_is_a_query_error(prometheus: LoadedPrometheus) -> None:
    bad = CheckSpec(name="x", kind=CheckKind.CUSTOM, query="sum by (deployment) (frobnicate(up))")
    with pytest.raises(QueryError, match='unknown function with name "frobnicate"'):
        window(prometheus, bad, SCENARIOS["istio"]["bad"].targets)


@pytest.mark.parametrize(
    "namespace",
    [
        'a"b\\',
        'test", destination_workload=~".+',
        "test\n} or vector(1) #",
        "test\\",
    ],
)
def test_a_name_cannot_inject_promql(prometheus: LoadedPrometheus, namespace: str) -> None:
    targets = Targets(
        namespace=namespace, target="podinfo", canary="podinfo", primary="podinfo-primary"
    )
    for check in checks_of("istio").values():
        # Prometheus parses it, and it matches nothing: the value stayed inside its string.
        assert window(prometheus, check, targets) == WindowSample(canary=None, primary=None)


def test_a_workload_name_is_matched_literally_in_a_regex(prometheus: LoadedPrometheus) -> None:
    targets = Targets(namespace="test", target="podinfo", canary="podinf.", primary="podinfo.*")
    assert window(prometheus, checks_of("linkerd")["error-rate"], targets) == WindowSample()


# --- the provider's HTTP behaviour, against local servers ---------------------------------


ERRORS = CheckSpec(
    name="errors",
    kind=CheckKind.ERROR_RATE,
    requests_query='sum by (app) (requests{app=~"{{ canary }}|{{ primary }}"})',
    failures_query='sum by (app) (errors{app=~"{{ canary }}|{{ primary }}"})',
)
TARGETS = Targets(namespace="test", target="app", canary="app", primary="app-primary")
VARIABLES = query_variables(TARGETS, WINDOW, ERRORS)


def answers(*rows: tuple[str, str, str]) -> dict[str, Any]:
    """(part, side name, value) rows as Prometheus would answer the combined query."""
    return vector(*(({TAG: part, "app": who}, value) for part, who, value in rows))


def test_prometheus_down_is_unavailable_after_the_configured_attempts() -> None:
    sleeps = Sleeps()
    url = f"http://127.0.0.1:{closed_port()}"
    prom = PrometheusProvider(
        PrometheusSettings(url=url, retries={"attempts": 4, "backoff": 0.5}), sleep=sleeps
    )
    tries: list[str] = []
    real_query = prom.client.query

    def counting(promql: str, at: datetime) -> Any:
        tries.append(promql)
        return real_query(promql, at)

    prom.client.query = counting  # type: ignore[method-assign]
    with pytest.raises(MetricsUnavailableError) as caught:
        prom.window(ERRORS, VARIABLES, AT)
    assert len(tries) == 4
    assert sleeps.delays == [0.5, 1.0, 2.0]  # exponential backoff, nothing after the last try
    assert f"prometheus at {url} could not be reached" in str(caught.value)
    assert "Connection refused" in str(caught.value)
    assert "(4 attempts)" in str(caught.value)


def test_a_slow_prometheus_is_unavailable_after_the_timeout() -> None:
    with FakePrometheus(lambda _: (200, answers(), 2.0)) as fake:
        prom = provider(fake.url, timeout=0.2, retries={"attempts": 2})
        with pytest.raises(MetricsUnavailableError) as caught:
            prom.window(ERRORS, VARIABLES, AT)
        assert len(fake.received) == 2
    assert str(caught.value) == (
        f"prometheus at {fake.url} did not answer within 0.2s (2 attempts)"
    )


def test_a_5xx_is_retried_then_unavailable() -> None:
    with FakePrometheus(lambda _: (500, error("internal", "query timed out"), 0)) as fake:
        with pytest.raises(MetricsUnavailableError) as caught:
            provider(fake.url).window(ERRORS, VARIABLES, AT)
        assert len(fake.received) == 3
    assert "answered HTTP 500: query timed out (3 attempts)" in str(caught.value)


def test_a_5xx_then_an_answer_is_the_answer() -> None:
    calls: list[int] = []

    def flaky(_: Recorded) -> tuple[int, Any, float]:
        calls.append(1)
        if len(calls) == 1:
            return 503, error("unavailable", "starting"), 0
        return 200, answers(("requests", "app", "10"), ("failures", "app", "1")), 0

    with FakePrometheus(flaky) as fake:
        got = provider(fake.url).window(ERRORS, VARIABLES, AT)
    assert got == WindowSample(canary=SideSample(requests=10, failures=1), primary=None)


def test_a_422_is_a_query_error_at_once() -> None:
    refused = error("execution", "many-to-many matching not allowed")
    with FakePrometheus(lambda _: (422, refused, 0)) as fake:
        with pytest.raises(QueryError, match=r"HTTP 422.*many-to-many matching not allowed"):
            provider(fake.url).window(ERRORS, VARIABLES, AT)
        assert len(fake.received) == 1


def test_refused_credentials_are_not_retried() -> None:
    with FakePrometheus(lambda _: (401, "Unauthorized", 0)) as fake:
        with pytest.raises(MetricsError, match=r"HTTP 401.*credentials"):
            provider(fake.url).window(ERRORS, VARIABLES, AT)
        assert len(fake.received) == 1


def test_one_query_per_check_evaluated_at_the_window_end() -> None:
    with FakePrometheus(lambda _: (200, answers(), 0)) as fake:
        provider(fake.url).window(ERRORS, VARIABLES, AT)
    (sent,) = fake.received
    assert (sent.method, sent.path) == ("POST", "/api/v1/query")  # a form: no URL to parse
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert float(sent.params["time"]) == AT.timestamp()
    query = sent.params["query"]
    assert query.count("label_replace(") == 2
    assert f'"{TAG}", "requests"' in query
    assert f'"{TAG}", "failures"' in query
    assert 'requests{app=~"app|app-primary"}' in query


@pytest.mark.parametrize("refused", [403, 405, 501])
def test_a_server_refusing_post_is_asked_with_get_from_then_on(refused: int) -> None:
    """OpenShift's Thanos querier behind kube-rbac-proxy answers a POST 403 (a "create");
    other proxies 405 or 501. A GET it answers: the client keeps to GET."""

    def answer(sent: Recorded) -> tuple[int, Any, float]:
        if sent.method == "POST":
            return refused, error("forbidden", "POST is not allowed"), 0
        return 200, answers(("requests", "app", "50"), ("failures", "app", "1")), 0

    with FakePrometheus(answer) as fake:
        prom = provider(fake.url)
        for _ in range(3):
            assert prom.window(ERRORS, VARIABLES, AT).canary == SideSample(requests=50, failures=1)
    assert [r.method for r in fake.received] == ["POST", "GET", "GET", "GET"]
    assert fake.received[1].params["query"] == fake.received[0].params["query"]


def test_forbidden_both_ways_is_a_credentials_error_and_post_is_tried_again() -> None:
    with FakePrometheus(lambda _: (403, error("forbidden", "no"), 0)) as fake:
        prom = provider(fake.url)
        for _ in range(2):
            with pytest.raises(MetricsError, match=r"HTTP 403.*credentials"):
                prom.window(ERRORS, VARIABLES, AT)
    assert [r.method for r in fake.received] == ["POST", "GET", "POST", "GET"]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_followed_with_the_query(status: int) -> None:
    """301-303 turn a POST into a GET without its form: the query is posted again there."""

    def answer(sent: Recorded) -> tuple[int, Any, float]:
        if sent.path == "/api/v1/query":
            return status, "/prometheus/api/v1/query", 0
        if sent.method != "POST" or "query" not in sent.params:
            return 400, error("bad_data", "invalid parameter 'query'"), 0
        return 200, answers(("requests", "app", "50"), ("failures", "app", "1")), 0

    with FakePrometheus(answer) as fake:
        got = provider(fake.url).window(ERRORS, VARIABLES, AT)
    assert got.canary == SideSample(requests=50, failures=1)
    assert fake.received[-1].path == "/prometheus/api/v1/query"
    assert fake.received[-1].method == "POST"


def test_bearer_token_basic_auth_and_headers_are_sent(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    with FakePrometheus(lambda _: (200, answers(), 0)) as fake:
        provider(fake.url, bearer_token="s3cret", headers={"X-Scope-OrgID": "team"}).window(
            ERRORS, VARIABLES, AT
        )
        provider(fake.url, bearer_token_file=token_file).window(ERRORS, VARIABLES, AT)
        provider(fake.url, basic_auth={"username": "ann", "password": "pw"}).window(
            ERRORS, VARIABLES, AT
        )
    token, from_file, basic = (r.headers for r in fake.received)
    assert token["Authorization"] == "Bearer s3cret"
    assert token["X-Scope-OrgID"] == "team"
    assert from_file["Authorization"] == "Bearer from-file"
    assert basic["Authorization"] == "Basic " + base64.b64encode(b"ann:pw").decode()


_PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY")


def test_the_environment_proxy_is_used_and_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with FakePrometheus(
        lambda _: (200, answers(("requests", "app", "7"), ("failures", "app", "0")), 0)
    ) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        prom = provider("http://prometheus.invalid:9090")
        monkeypatch.delenv("HTTP_PROXY")  # read when the client was made, not at each query
        got = prom.window(ERRORS, VARIABLES, AT)
        prom.window(ERRORS, VARIABLES, AT)
    assert [r.path for r in proxy.received] == ["/api/v1/query"] * 2
    assert got.canary is not None
    assert got.canary.requests == 7


def test_no_proxy_from_the_environment_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with FakePrometheus(lambda _: (200, answers(), 0)) as fake:
        provider(fake.url).window(ERRORS, VARIABLES, AT)
    assert len(fake.received) == 1


_CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
SEVEN = answers(("requests", "app", "7"), ("failures", "app", "0"))


@pytest.fixture
def certificates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Certificate, ...]:
    """A server's and a client's self-signed certificates, and a stranger's; no CA variables."""
    for name in _CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return tuple(self_signed(tmp_path, name) for name in ("server", "client", "stranger"))


def canary_requests(url: str, **settings: Any) -> int:
    got = provider(url, **settings).window(ERRORS, VARIABLES, AT)
    assert got.canary is not None
    return got.canary.requests


def test_tls_verifies_the_server_with_the_ca_file(certificates: tuple[Certificate, ...]) -> None:
    server, _, stranger = certificates
    with FakePrometheus(lambda _: (200, SEVEN, 0), tls=server.server_context()) as fake:
        assert fake.url.startswith("https://")
        assert canary_requests(fake.url, tls={"caFile": server.cert}) == 7
        untrusted = provider(fake.url, tls={"caFile": stranger.cert}, retries={"attempts": 3})
        with pytest.raises(MetricsError) as caught:
            untrusted.window(ERRORS, VARIABLES, AT)
        with pytest.raises(MetricsError, match="TLS failed"):  # certifi's CAs do not know it
            provider(fake.url).window(ERRORS, VARIABLES, AT)
        assert canary_requests(fake.url, tls={"insecureSkipVerify": True}) == 7
    assert not isinstance(caught.value, MetricsUnavailableError)  # not retried
    assert str(caught.value) == (
        f"prometheus at {fake.url}: TLS failed (certificate verify failed: self-signed "
        "certificate); check tls"
    )
    assert len(fake.received) == 2


def test_a_ca_bundle_from_the_environment_verifies_unless_tls_says_otherwise(
    certificates: tuple[Certificate, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _, stranger = certificates
    with FakePrometheus(lambda _: (200, SEVEN, 0), tls=server.server_context()) as fake:
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
            monkeypatch.setenv(name, str(server.cert))
            assert canary_requests(fake.url) == 7, name
            with pytest.raises(MetricsError, match="TLS failed"):
                provider(fake.url, tls={"caFile": stranger.cert}).window(ERRORS, VARIABLES, AT)
            monkeypatch.delenv(name)
    assert len(fake.received) == 3


def test_a_client_certificate_is_shown_for_mutual_tls(
    certificates: tuple[Certificate, ...],
) -> None:
    server, client, _ = certificates
    mutual = server.server_context(client_ca=client.cert)
    with FakePrometheus(lambda _: (200, SEVEN, 0), tls=mutual) as fake:
        shown = {"caFile": server.cert, "certFile": client.cert, "keyFile": client.key}
        assert canary_requests(fake.url, tls=shown) == 7
        with pytest.raises(MetricsError):
            provider(fake.url, tls={"caFile": server.cert}).window(ERRORS, VARIABLES, AT)
    assert len(fake.received) == 1


def test_unusable_tls_settings_make_every_query_an_error(
    tmp_path: Path, certificates: tuple[Certificate, ...]
) -> None:
    missing = tmp_path / "missing.pem"
    prom = provider("https://127.0.0.1:1", tls={"caFile": missing})
    for _ in range(2):
        with pytest.raises(MetricsError, match=r"cannot use the tls settings .*; check tls") as e:
            prom.window(ERRORS, VARIABLES, AT)
        assert f"caFile {missing}" in str(e.value)
    server, client, _ = certificates
    mismatched = {"certFile": client.cert, "keyFile": server.key}  # another certificate's key
    with pytest.raises(MetricsError, match=r"cannot use the tls settings \(certFile .*keyFile"):
        provider("https://127.0.0.1:1", tls=mismatched).window(ERRORS, VARIABLES, AT)


def test_netrc_credentials_are_used_unless_the_settings_give_some(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login bob password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with FakePrometheus(lambda _: (200, answers(), 0)) as fake:
        provider(fake.url).window(ERRORS, VARIABLES, AT)
        provider(fake.url, bearer_token="t").window(ERRORS, VARIABLES, AT)
    from_netrc, token = (r.headers for r in fake.received)
    assert from_netrc["Authorization"] == "Basic " + base64.b64encode(b"bob:hunter2").decode()
    assert token["Authorization"] == "Bearer t"


def test_a_missing_token_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MetricsError, match="cannot read bearerTokenFile"):
        provider("http://127.0.0.1:1", bearer_token_file=tmp_path / "none").window(
            ERRORS, VARIABLES, AT
        )


def test_counts_are_rounded_clamped_and_failures_never_exceed_requests() -> None:
    rows = (
        ("requests", "app", "599.6"),
        ("failures", "app", "-0.4"),
        ("requests", "app-primary", "10.2"),
        ("failures", "app-primary", "12.7"),
        ("requests", "someone-else", "5"),  # another workload the regex let through
    )
    with FakePrometheus(lambda _: (200, answers(*rows), 0)) as fake:
        got = provider(fake.url).window(ERRORS, VARIABLES, AT)
    assert got == WindowSample(
        canary=SideSample(requests=600, failures=0),
        primary=SideSample(requests=10, failures=10),
    )


def test_negative_requests_are_zero_and_nan_failures_no_data() -> None:
    rows = (
        ("requests", "app", "-3"),
        ("failures", "app", "0"),
        ("requests", "app-primary", "10"),
        ("failures", "app-primary", "NaN"),
    )
    with FakePrometheus(lambda _: (200, answers(*rows), 0)) as fake:
        got = provider(fake.url).window(ERRORS, VARIABLES, AT)
    assert got == WindowSample(canary=SideSample(requests=0, failures=0), primary=None)


def test_requests_without_a_failures_series_is_a_policy_to_fix() -> None:
    one = answers(("requests", "app", "10"))
    missing = r"failuresQuery found no series for app.*or 0 \*"
    with FakePrometheus(lambda _: (200, one, 0)) as fake, pytest.raises(QueryError, match=missing):
        provider(fake.url).window(ERRORS, VARIABLES, AT)


def test_series_must_be_grouped_by_one_label() -> None:
    two = vector(({TAG: "requests", "app": "app", "pod": "app-1"}, "1"))
    grouped = r"must aggregate by one label.*got app, pod"
    with FakePrometheus(lambda _: (200, two, 0)) as fake, pytest.raises(QueryError, match=grouped):
        provider(fake.url).window(ERRORS, VARIABLES, AT)


def test_an_answer_that_is_not_the_api_is_an_error() -> None:
    odd = {"hello": "world"}
    with FakePrometheus(lambda _: (200, odd, 0)) as fake, pytest.raises(MetricsError, match="API"):
        provider(fake.url).window(ERRORS, VARIABLES, AT)


# --- the renderer ---------------------------------------------------------------------------

TICK = {"namespace": "test", "canary": "app", "primary": "app-primary", "interval": "1m"}


def test_values_are_escaped_for_the_string_they_stand_in() -> None:
    variables = {**TICK, "namespace": 'a"b\\c\nd'}
    assert render('x{ns="{{ namespace }}"}', variables) == 'x{ns="a\\"b\\\\c\\nd"}'
    assert render("x{ns='{{namespace}}'}", {**TICK, "namespace": "it's"}) == "x{ns='it\\'s'}"


def test_values_in_a_regex_match_literally() -> None:
    variables = {**TICK, "canary": "a.b", "primary": "c+d\\"}
    assert render('x{w=~"{{ canary }}|{{ primary }}"}', variables) == (
        'x{w=~"a\\\\.b|c\\\\+d\\\\\\\\"}'
    )
    assert render('x{w!~ "{{ canary }}"}', variables) == 'x{w!~ "a\\\\.b"}'
    assert render('x{w="{{ canary }}"}', variables) == 'x{w="a.b"}'


def test_an_unknown_variable_is_named() -> None:
    with pytest.raises(QueryError, match=r"unknown variable \{\{ nmespace \}\}.*known: canary"):
        render('x{ns="{{ nmespace }}"}', TICK)


def test_tokens_outside_quotes_must_be_numbers_or_durations() -> None:
    assert render("rate(x[{{ interval }}]) > {{ objective_ms }}", {**TICK, "objective_ms": "500"})
    with pytest.raises(QueryError, match="outside quotes"):
        render("x{ns={{ namespace }}}", TICK)
    with pytest.raises(QueryError, match="interval must be a duration"):
        render('x{i="{{ interval }}"}', {**TICK, "interval": '1m"}'})


def test_a_comment_cannot_hide_or_inject() -> None:
    variables = {**TICK, "namespace": "x\nvector(1)"}
    assert render("x # {{ namespace }}\n", variables) == "x # x\\nvector(1)\n"
    assert render('x # a "quote\ny{a="{{ canary }}"}', TICK) == 'x # a "quote\ny{a="app"}'


def test_malformed_templates_are_query_errors() -> None:
    with pytest.raises(QueryError, match="unterminated"):
        render('x{a="{{ canary }}}', TICK)
    with pytest.raises(QueryError, match="malformed placeholder"):
        render('x{a="{{ can ary }}"}', TICK)


def test_a_compiled_template_renders_as_the_one_pass_reader_did() -> None:
    """The template is read once and cached; each tick's values are still checked and escaped
    where they stand, and an error comes in the order a one-pass reader meets it."""
    template = 'label_replace(x{a=~"{{ canary }}"}, "d", "{{ primary }}", "s", "{{ canary }}")'
    variables = {**TICK, "canary": "a.b$1", "primary": "p$1"}
    want = 'label_replace(x{a=~"a\\\\.b\\\\$1"}, "d", "p$$1", "s", "a\\\\.b\\\\$1")'
    assert render(template, variables) == want
    assert render(template, {**variables, "canary": "c"}) == want.replace("a\\\\.b\\\\$1", "c")
    with pytest.raises(QueryError, match="unknown variable"):  # met before the open string
        render('x{a="{{ nope }}"} {b="open', TICK)
    with pytest.raises(QueryError, match="unterminated"):
        render('x{a="{{ canary }}"} {b="open', TICK)
    with pytest.raises(QueryError, match="unknown variable"):  # before the bad placeholder
        render('x{a="{{ nope }}", b="{{ b c }}"}', TICK)


def test_settings_take_one_credential() -> None:
    with pytest.raises(ValueError, match="one of bearerToken, bearerTokenFile and basicAuth"):
        PrometheusSettings(bearer_token="a", basic_auth={"username": "u", "password": "p"})
    settings = PrometheusSettings.model_validate(
        {"url": "https://prom:9090/", "timeout": 2, "retries": {"attempts": 1}}
    )
    assert settings.url == "https://prom:9090"
    assert settings.retries.delay(1) == 0.5


# --- through the analysis tick ----------------------------------------------------------------


def istio_rollout() -> Rollout:
    return Rollout.model_validate(
        {
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"name": "podinfo"},
                "service": {"port": 9898},
                "provider": {"name": "istio"},
                "analysis": {"judge": "threshold", "minRequests": 20},
            },
        }
    )


def tick(prom_url: str, targets: Targets, at: datetime) -> list[Any]:
    rollout = istio_rollout()
    checks = resolve_checks(rollout)
    results, _ = analyse(
        rollout, RolloutStatus(canary_weight=20), checks, provider(prom_url), targets, WINDOW, at
    )
    return results


def test_a_tick_fails_a_bad_canary_and_passes_a_healthy_one(prometheus: LoadedPrometheus) -> None:
    bad = tick(prometheus.url, SCENARIOS["istio"]["bad"].targets, prometheus.at)
    assert [(r.name, r.verdict) for r in bad] == [
        ("error-rate", Verdict.FAIL),
        ("latency", Verdict.FAIL),
    ]
    assert "2.00%" in bad[0].message
    # judged on the slow share from the 500 ms bucket, not on the p99 estimate
    assert "canary slow (>500ms) 4.00% (n=600) > max 1.00%" in bad[1].message
    assert bad[1].canary is not None
    assert bad[1].canary.quantile is not None
    good = tick(prometheus.url, SCENARIOS["istio"]["healthy"].targets, prometheus.at)
    assert [(r.name, r.verdict) for r in good] == [
        ("error-rate", Verdict.PASS),
        ("latency", Verdict.PASS),
    ]
    assert good[0].canary is not None
    assert good[0].canary.requests == 600


def test_a_tick_with_prometheus_down_is_inconclusive_never_pass() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    results = tick(url, SCENARIOS["istio"]["healthy"].targets, AT)
    assert [r.verdict for r in results] == [Verdict.INCONCLUSIVE, Verdict.INCONCLUSIVE]
    assert all(r.no_data and "could not be reached" in r.message for r in results)


# --- exact counts (sideLabel) -------------------------------------------------------------

EXACT = CheckSpec(
    name="errors",
    kind=CheckKind.ERROR_RATE,
    side_label="app",
    requests_query='requests_total{app=~"{{ canary }}|{{ primary }}"}',
    failures_query='requests_total{app=~"{{ canary }}|{{ primary }}", code=~"5.."}',
)
SLOW = CheckSpec(
    name="latency",
    kind=CheckKind.LATENCY,
    max=500,
    side_label="app",
    requests_query='latency_count{app=~"{{ canary }}|{{ primary }}"}',
    failures_query='latency_count{app=~"{{ canary }}|{{ primary }}"} - ignoring (le) '
    'latency_bucket{app=~"{{ canary }}|{{ primary }}", le="{{ objective_ms }}"}',
    quantile_query='sum by (app, le) (increase(latency_bucket{app="app"}[{{ interval }}]))',
)
END = AT.timestamp()


def matrix(*series: tuple[dict[str, str], list[tuple[float, float]]]) -> dict[str, Any]:
    """A range-query answer: (labels, [(unix seconds, value), ...]) per series."""
    result = [
        {"metric": labels, "values": [[t, f"{v:g}"] for t, v in points]}
        for labels, points in series
    ]
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


def exact_window(answer: dict[str, Any], check: CheckSpec = EXACT, **settings: Any) -> WindowSample:
    variables = {**query_variables(TARGETS, 20, check), "window_start": f"{END - 20:.3f}"}
    with FakePrometheus(lambda _: (200, answer, 0)) as fake:
        return provider(fake.url, **settings).window(check, variables, AT)


def test_exact_counts_are_one_subquery_per_check_over_the_look_and_its_lookback() -> None:
    with FakePrometheus(lambda _: (200, matrix(), 0)) as fake:
        variables = {**query_variables(TARGETS, 20, EXACT), "window_start": f"{END - 20:.3f}"}
        provider(fake.url, lookback=60).window(EXACT, variables, AT)
    (sent,) = fake.received
    assert float(sent.params["time"]) == END
    query = sent.params["query"]
    assert query.startswith("(topk(2001,")
    assert query.endswith(")[81s:1s]")  # the look, the lookback and one point before
    assert f'"{TAG}", "requests"' in query
    assert f'"{TAG}", "failures"' in query


def test_exact_counts_sum_each_series_increase_by_side() -> None:
    pod = {TAG: "requests", "app": "app", "pod": "a"}
    answer = matrix(
        (pod, [(END - 30, 100), (END - 20, 110), (END - 10, 130), (END, 150)]),
        ({**pod, "pod": "b"}, [(END - 30, 7), (END - 15, 2), (END - 5, 9)]),  # reset
        ({**pod, "pod": "c"}, [(END - 12, 4), (END - 2, 6)]),  # born inside the look
        ({**pod, TAG: "failures", "code": "503"}, [(END - 25, 1), (END - 5, 4)]),
        ({TAG: "requests", "app": "app-primary"}, [(END - 40, 10), (END, 70)]),
        ({TAG: "requests", "app": "app-other"}, [(END - 40, 10), (END, 7000)]),  # ignored
    )
    got = exact_window(answer)
    pods = (
        PodCounts(name="a", requests=40, failures=3),
        PodCounts(name="b", requests=9, failures=0),
        PodCounts(name="c", requests=6, failures=0),
    )
    assert got.canary == SideSample(requests=40 + 9 + 6, failures=3, pods=pods)
    # no 5xx series: none failed; no pod label: no counts per pod
    assert got.primary == SideSample(requests=60, failures=0)


def test_exact_counts_are_kept_per_pod_only_when_every_series_names_its_pod() -> None:
    """The sequential judge's bound on few canary pods needs each pod's counts; a side where
    one requests series lacks the pod label gets none (never a partial split)."""
    answer = matrix(
        ({TAG: "requests", "app": "app", "kubernetes_pod_name": "x"}, [(END - 30, 0), (END, 8)]),
        ({TAG: "failures", "app": "app", "kubernetes_pod_name": "x"}, [(END - 30, 0), (END, 2)]),
        ({TAG: "requests", "app": "app-primary", "pod": "p1"}, [(END - 30, 0), (END, 5)]),
        ({TAG: "requests", "app": "app-primary"}, [(END - 30, 0), (END, 5)]),
    )
    got = exact_window(answer)
    assert got.canary is not None
    assert got.canary.pods == (PodCounts(name="x", requests=8, failures=2),)
    assert got.primary == SideSample(requests=10, failures=0)


def test_a_point_that_is_not_two_numbers_is_left_out_and_the_rest_kept() -> None:
    answer = matrix(({TAG: "requests", "app": "app"}, [(END - 30, 0), (END, 8)]))
    values = answer["data"]["result"][0]["values"]
    values[1:1] = [[END - 20, "x"], [END - 10], "ab", None]
    answer["data"]["result"].append({"metric": {TAG: "failures", "app": "app"}, "values": "no"})
    answer["data"]["result"].append(
        {"metric": {TAG: "failures", "app": "app"}, "values": [[END - 30, "0"], [END, "3"]]}
    )
    got = exact_window(answer)
    assert got.canary == SideSample(requests=8, failures=3)


def test_exact_counts_without_requests_series_are_no_data() -> None:
    idle = [(END - 30, 5.0), (END, 5.0)]
    got = exact_window(matrix(({TAG: "requests", "app": "app-primary"}, idle)))
    assert got.canary is None
    assert got.primary == SideSample(requests=0, failures=0)


def test_exact_latency_needs_the_objectives_bucket_and_shows_the_p99_with_its_bucket() -> None:
    count = {TAG: "requests", "app": "app"}
    buckets = [
        ({TAG: "quantile", "app": "app", "le": le}, [(END, n)])
        for le, n in (("100", 80.0), ("500", 97.0), ("1000", 100.0), ("+Inf", 100.0))
    ]
    got = exact_window(
        matrix(
            (count, [(END - 30, 0), (END, 100)]),
            *buckets,
            ({TAG: "failures", "app": "app"}, [(END - 30, 0), (END, 3)]),
        ),
        SLOW,
    )
    assert got.canary is not None
    assert (got.canary.requests, got.canary.failures) == (100, 3)
    assert (got.canary.quantile_low, got.canary.quantile_high) == (500.0, 1000.0)
    assert got.canary.value is not None
    assert 500 < got.canary.value <= 1000
    with pytest.raises(QueryError, match="must be a bucket boundary"):
        exact_window(matrix((count, [(END - 30, 0), (END, 100)])), SLOW)


def test_exact_counts_refuse_series_without_the_side_label_or_too_many() -> None:
    with pytest.raises(QueryError, match="without its sideLabel 'app'"):
        exact_window(matrix(({TAG: "requests", "pod": "a"}, [(END, 1)])))
    many = [({TAG: "requests", "app": "app", "pod": str(i)}, [(END, 1)]) for i in range(6)]
    with pytest.raises(QueryError, match=r"more than 5 series \(maxSeries\)"):
        exact_window(matrix(*many), max_series=5)


def test_a_custom_check_cannot_take_a_side_label() -> None:
    with pytest.raises(ValueError, match="sideLabel belongs to error-rate and latency"):
        CheckSpec(name="x", kind=CheckKind.CUSTOM, query="up", side_label="app")


def test_a_latency_tick_carries_the_estimate_its_bucket_and_the_slow_share() -> None:
    """From the answer to `canary get`: the p99 shown as an estimate inside its bucket, the
    judged number (the sequential judge's) as the share slower than the objective."""
    count = {TAG: "requests", "app": "app"}
    buckets = [
        ({TAG: "quantile", "app": "app", "le": le}, [(END, n)])
        for le, n in (("100", 80.0), ("500", 97.0), ("1000", 100.0), ("+Inf", 100.0))
    ]
    answer = matrix(
        (count, [(END - 30, 0), (END, 100)]),
        *buckets,
        ({TAG: "failures", "app": "app"}, [(END - 30, 0), (END, 3)]),
        ({TAG: "requests", "app": "app-primary"}, [(END - 30, 0), (END, 1000)]),
        ({TAG: "failures", "app": "app-primary"}, [(END - 30, 0), (END, 10)]),
    )
    rollout = istio_rollout()
    rollout.spec.analysis.judge = JudgeName.SEQUENTIAL
    with FakePrometheus(lambda _: (200, answer, 0)) as fake:
        (result,), _ = analyse(
            rollout, RolloutStatus(canary_weight=20), [SLOW], provider(fake.url), TARGETS, 20, AT
        )
    assert (result.kind, result.objective, result.quantile_label) == (CheckKind.LATENCY, 500, "p99")
    assert result.canary is not None
    assert (result.canary.quantile_low, result.canary.quantile_high) == (500.0, 1000.0)
    assert result.primary is not None
    assert result.primary.quantile is None  # the quantile query selects the canary only
    # rank 99 of 100 lies 2 of the 3 requests into the (500, 1000] bucket: 500 + 2/3 * 500
    assert evidence(result.canary, result) == "3% >500ms (3/100), p99~833ms (500-1000)"
    assert evidence(result.primary, result) == "1% >500ms (10/1000)"


def test_a_tick_on_a_real_prometheus_shows_the_p99_as_an_estimate(
    prometheus: LoadedPrometheus,
) -> None:
    """The istio policy counts exactly (sideLabel): its p99 comes with its bucket."""
    errors, latency = tick(prometheus.url, SCENARIOS["istio"]["bad"].targets, prometheus.at)
    assert (errors.kind, latency.kind) == (CheckKind.ERROR_RATE, CheckKind.LATENCY)
    assert errors.objective is None
    assert evidence(errors.canary, errors) == evidence(errors.canary)  # as before
    assert latency.canary is not None
    requests, slow = side(SCENARIOS["istio"]["bad"].canary, "latency")
    share = f"{100 * slow / requests:.3g}%"
    shown = f"{share} >500ms ({slow}/{requests}), p99~1000ms (500-1000)"
    assert evidence(latency.canary, latency) == shown
