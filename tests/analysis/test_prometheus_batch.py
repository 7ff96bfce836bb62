"""A tick's exact-count checks in one request (canary.analysis.prometheus_batch): every window
is the one the check's own query gives, on a real Prometheus loaded with awkward counter
histories (resets, gaps, pods coming and going, NaN samples), with and without look reuse;
a check Prometheus refuses, or one over maxSeries, is that check's trouble alone."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from counter_history import history, openmetrics
from prometheus_backfill import history_start, start_backfilled_prometheus
from prometheus_support import Sleeps

from canary.analysis import exact
from canary.analysis.analyse import query_variables
from canary.analysis.prometheus import PrometheusProvider, PrometheusSettings
from canary.analysis.provider import Asked, MetricsError, QueryError, Targets, windows_of
from canary.analysis.samples import WindowSample
from canary.model import CheckKind, CheckSpec

SELECT = 'app=~"{{ canary }}|{{ primary }}"'
ERRORS = CheckSpec(
    name="errors",
    kind=CheckKind.ERROR_RATE,
    side_label="app",
    requests_query=f"requests_total{{{SELECT}}}",
    failures_query=f'requests_total{{{SELECT}, code=~"5.."}}',
)
SOME_PODS = CheckSpec(
    name="some-pods",
    kind=CheckKind.LATENCY,
    max=500,
    side_label="app",
    requests_query=f'requests_total{{{SELECT}, pod=~".*-[01]"}}',
    failures_query=f'requests_total{{{SELECT}, pod=~".*-[01]", code=~"5.."}}',
)
TARGETS = Targets(namespace="test", target="app", canary="app", primary="app-primary")
SPAN = 1800.0
SEED = 31

Outcome = WindowSample | str


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, float]]:
    workdir: Path = tmp_path_factory.mktemp("batch")
    start = float(history_start())
    source = workdir / "series.om"
    source.write_text(openmetrics(history(SEED, start, SPAN)))
    url, process = start_backfilled_prometheus(workdir, source)
    try:
        yield url, start
    finally:
        process.stop()


class Counted(PrometheusProvider):
    """A provider on the real client that counts the requests it sends."""

    def __init__(self, url: str, **settings: Any) -> None:
        super().__init__(PrometheusSettings(url=url, **settings), sleep=Sleeps())
        self.sent = 0
        ask: Callable[..., Any] = self.client.query_points

        def counted(*args: Any) -> Any:
            self.sent += 1
            return ask(*args)

        self.client.query_points = counted  # type: ignore[method-assign]


def asked(
    checks: list[CheckSpec], start: float, end: float, starts: list[float] | None = None
) -> list[Asked]:
    out: list[Asked] = []
    for n, check in enumerate(checks):
        begin = starts[n] if starts else start
        variables = query_variables(TARGETS, end - begin, check)
        variables["window_start"] = f"{begin}"
        out.append((check, variables))
    return out


def outcome(found: WindowSample | MetricsError) -> Outcome:
    return found if isinstance(found, WindowSample) else f"{type(found).__name__}: {found}"


def alone(prom: PrometheusProvider, ask: list[Asked], end: float) -> list[Outcome]:
    out: list[Outcome] = []
    for check, variables in ask:
        try:
            out.append(prom.window(check, variables, datetime.fromtimestamp(end, UTC)))
        except MetricsError as exc:
            out.append(f"{type(exc).__name__}: {exc}")
    return out


def together(prom: PrometheusProvider, ask: list[Asked], end: float) -> list[Outcome]:
    return [outcome(w) for w in windows_of(prom, ask, datetime.fromtimestamp(end, UTC))]


def seeded_looks(seed: int, start: float, end: float) -> list[tuple[float, float]]:
    """Consecutive looks, ~10 s apart at odd fractions of a second, now and then a late one or
    a pause past the lookback."""
    rng = random.Random(seed)
    out = []
    previous, now = start, start + 10.37
    while now < end:
        out.append((previous, now))
        previous = now
        now += rng.choice([*[10.0] * 12, 11.3, 9.6, 25.0, 200.0])
    return out


@pytest.mark.parametrize("reuse", [True, False], ids=["reuse", "whole"])
def test_one_request_gives_each_check_the_window_its_own_query_gives(
    prometheus_url: tuple[str, float], reuse: bool
) -> None:
    url, start = prometheus_url
    settings = {} if reuse else {"reuse_points": 0}
    one_by_one, batched = Counted(url, **settings), Counted(url, **settings)
    seen = seeded_looks(SEED, start + 150, start + SPAN)
    want: list[Outcome] = []
    got: list[Outcome] = []
    for look_start, look_end in seen:
        ask = asked([ERRORS, SOME_PODS], look_start, look_end)
        want += alone(one_by_one, ask, look_end)
        got += together(batched, ask, look_end)
    assert got == want
    windows = [w for w in want if isinstance(w, WindowSample)]
    assert len(windows) == len(want)
    assert sum(w.canary is not None for w in windows) > len(want) / 2
    # the two checks differ (the second sees only some pods): a mix-up would show
    assert any(a != b for a, b in zip(windows[::2], windows[1::2], strict=True))
    assert batched.sent == len(seen)
    assert one_by_one.sent == 2 * len(seen)
    if reuse:
        assert batched.reuse.reused >= 0.6 * len(seen)
        assert batched.reuse.doubted == 0


def test_checks_with_different_looks_are_asked_apart(prometheus_url: tuple[str, float]) -> None:
    """Only checks with the same look share a request (the subquery's range is the look's):
    a check whose last window ended earlier is asked on its own, with the same result."""
    url, start = prometheus_url
    end = start + 900.37
    ask = asked([ERRORS, SOME_PODS], 0, end, starts=[end - 10, end - 30])
    batched = Counted(url)
    assert together(batched, ask, end) == alone(Counted(url), ask, end)
    assert batched.sent == 2


def test_a_refused_check_is_inconclusive_alone(prometheus_url: tuple[str, float]) -> None:
    """Prometheus refuses the whole batch for one check's bad query: the batch is asked again
    check by check, so the good check gets its window and the bad one its own error."""
    url, start = prometheus_url
    broken = ERRORS.model_copy(
        update={"name": "broken", "failures_query": f"rate(requests_total{{{SELECT}}})"}
    )
    end = start + 600.37
    ask = asked([ERRORS, broken], end - 10, end)
    got = together(Counted(url), ask, end)
    assert got == alone(Counted(url), ask, end)
    assert isinstance(got[0], WindowSample)
    assert got[0].primary is not None
    assert isinstance(got[1], str)
    assert got[1].startswith(QueryError.__name__)
    assert "HTTP 400" in got[1]


def test_a_check_over_max_series_is_refused_alone(prometheus_url: tuple[str, float]) -> None:
    """maxSeries is a check's, not the batch's: the check selecting every pod's series is over
    it, the one selecting two pods a side is not, as when each is asked alone."""
    url, start = prometheus_url
    end = start + 1200.37
    ask = asked([ERRORS, SOME_PODS], end - 10, end)
    counts = together(Counted(url), ask, end)
    assert all(isinstance(c, WindowSample) for c in counts)
    batched = Counted(url, max_series=_series_of(Counted(url), ask[0], end) - 1)
    got = together(batched, ask, end)
    assert got == alone(Counted(url, max_series=batched.settings.max_series), ask, end)
    assert isinstance(got[0], str)
    assert "maxSeries" in got[0]
    assert isinstance(got[1], WindowSample)
    assert batched.sent == 1


def _series_of(prom: PrometheusProvider, ask: Asked, end: float) -> int:
    """The series the check's whole look selects."""
    check, variables = ask
    at = datetime.fromtimestamp(end, UTC)
    promql = exact.subquery(prom.exact_expression(check, variables), prom.look(variables, at))
    return len(prom.client.query_points(promql, at))


def test_the_baseline_asks_for_the_primarys_series_only_and_counts_the_same(
    prometheus_url: tuple[str, float],
) -> None:
    """The baseline reads only the primary's counts: its query keeps only the primary's series
    (filtered by Prometheus on the sideLabel), whose counts are the primary's of the whole
    check's query over the same window, at seeded starts and lengths."""
    url, start = prometheus_url
    rng = random.Random(SEED)
    prom = Counted(url, reuse_points=0)
    answers: list[int] = []
    ask = prom.client.query_points

    def seen(*args: Any) -> Any:
        found = ask(*args)
        answers.append(len({s.labels["app"] for s in found}))
        return found

    prom.client.query_points = seen  # type: ignore[method-assign]
    compared = 0
    for _ in range(20):
        at = start + rng.uniform(300, SPAN)
        seconds = rng.choice([60.0, 120.0, 290.0, 600.0, 1500.0])
        for check in (ERRORS, SOME_PODS):
            variables = query_variables(TARGETS, 10, check)
            got = prom.baseline(check, variables, datetime.fromtimestamp(at, UTC), seconds)
            whole = {**query_variables(TARGETS, seconds, check), "window_start": f"{at - seconds}"}
            want = prom.window(check, whole, datetime.fromtimestamp(at, UTC))
            assert got == want.primary
            compared += got is not None and want.canary is not None
    assert compared > 10, "the canary had series in most windows: the filter was put to work"
    assert set(answers[0::2]) == {1}, "the baseline's answers hold the primary's series only"
    assert max(answers[1::2]) == 2
