"""A check's next look reads only what its previous look did not (canary.analysis.prometheus_reuse),
and every count the judge sees is the one a whole read gives: the same looks by a provider that
reuses and by one that reads every look whole, on awkward series (resets inside looks, missed
scrapes, gaps longer than the lookback, pods coming and going, a failures series born late,
NaN samples), on a real Prometheus and on a stand-in that can change its past on demand."""

from __future__ import annotations

import bisect
import random
import re
import statistics
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from counter_history import STALE, Series, history, openmetrics, serving
from prometheus_backfill import history_start, start_backfilled_prometheus
from prometheus_support import FakePrometheus, Sleeps

from canary.analysis.analyse import query_variables
from canary.analysis.prometheus import PrometheusProvider, PrometheusSettings
from canary.analysis.provider import QueryError, Targets
from canary.analysis.samples import WindowSample
from canary.model import CheckKind, CheckSpec

CHECK = CheckSpec(
    name="errors",
    kind=CheckKind.ERROR_RATE,
    side_label="app",
    requests_query='requests_total{app=~"{{ canary }}|{{ primary }}"}',
    failures_query='requests_total{app=~"{{ canary }}|{{ primary }}", code=~"5.."}',
)
TARGETS = Targets(namespace="test", target="app", canary="app", primary="app-primary")
SPAN = 1800.0
_RANGE = re.compile(r"\)\[(\d+)s:1s\]$")

Outcome = WindowSample | str


def provider(url: str, **settings: Any) -> PrometheusProvider:
    return PrometheusProvider(PrometheusSettings(url=url, **settings), sleep=Sleeps())


def looks(rng: random.Random, start: float, end: float) -> list[tuple[float, float]]:
    """(start, end) of consecutive looks as a controller makes them: mostly 10 s apart at a
    tick's odd fraction of a second, now and then a late tick, a look that did not count (the
    next starts where that one did), a pause longer than the lookback, a long window."""
    out = []
    previous, now = start, start + 10.37
    while now < end:
        out.append((previous, now))
        roll = rng.random()
        if roll > 0.1:  # the look counted: the next starts at its end
            previous = now
        now += rng.choice([*[10.0] * 16, 11.3, 25.0, 9.6, 200.0, 600.0])
    return out


def look_all(
    prom: PrometheusProvider, seen: list[tuple[float, float]], check: CheckSpec = CHECK
) -> list[Outcome]:
    out: list[Outcome] = []
    for start, end in seen:
        variables = {**query_variables(TARGETS, end - start, check), "window_start": f"{start}"}
        try:
            out.append(prom.window(check, variables, datetime.fromtimestamp(end, UTC)))
        except QueryError as exc:
            out.append(str(exc))
    return out


def ranges(fake: FakePrometheus) -> list[int]:
    found = (_RANGE.search(r.params["query"]) for r in fake.received)
    return [int(m.group(1)) for m in found if m is not None]


@pytest.mark.parametrize("left_open", [False, True], ids=["prometheus-2", "prometheus-3"])
@pytest.mark.parametrize("seed", range(8))
def test_reused_looks_count_what_whole_reads_count(seed: int, left_open: bool) -> None:
    rng = random.Random(seed)
    start = 1_790_000_000.0
    series = history(seed, start, SPAN)
    seen = looks(rng, start + 150, start + SPAN)
    with serving(series, left_open) as whole_fake, serving(series, left_open) as reuse_fake:
        whole = provider(whole_fake.url, reuse_points=0)
        reusing = provider(reuse_fake.url)
        want = look_all(whole, seen)
        got = look_all(reusing, seen)
    assert got == want
    assert any(isinstance(w, WindowSample) and w.canary for w in want)
    # most looks read only their own seconds and the overlap, none read anything twice
    assert reusing.reuse.reused >= 0.6 * len(seen)
    assert reusing.reuse.doubted == 0
    assert reusing.reuse.edges <= 2  # a series that went quiet exactly a range ago: read whole
    assert len(reuse_fake.received) == len(seen)
    assert statistics.median(ranges(reuse_fake)) <= 10 + 15 + 2  # a look, the overlap
    assert min(ranges(whole_fake)) >= 9 + 120 + 1  # a look, the lookback


def _late_sample(series: list[Series], at: float) -> None:
    """A scrape Prometheus ingests after a look already read past its time."""
    for one in series:
        times = [t for t, _ in one.samples]
        index = bisect.bisect(times, at)
        if one.part == "requests" and 0 < index < len(times):
            before = one.samples[index - 1][1]
            if before != STALE and at - times[index - 1] < 60:
                one.samples.insert(index, (at, float(before) + 7))
                return
    raise AssertionError("no live series at that time")


def test_a_changed_tail_is_a_doubt_and_the_look_is_read_whole() -> None:
    rng = random.Random(3)
    start = 1_790_000_000.0
    series = history(11, start, SPAN)
    seen = [(start + 200 + 10 * k, start + 210 + 10 * k) for k in range(40)]
    with serving(series, False) as whole_fake, serving(series, False) as reuse_fake:
        whole = provider(whole_fake.url, reuse_points=0)
        reusing = provider(reuse_fake.url)
        got: list[Outcome] = []
        want: list[Outcome] = []
        for k, look in enumerate(seen):
            if k in (10, 25):  # the previous look's tail changes under it
                _late_sample(series, look[0] - rng.uniform(1, 9))
            want += look_all(whole, [look])
            got += look_all(reusing, [look])
    assert got == want
    assert all(isinstance(w, WindowSample) and w.primary for w in want)
    assert reusing.reuse.doubted == 2
    assert len(reuse_fake.received) == len(seen) + 2  # the two doubted looks read twice


@pytest.mark.parametrize("left_open", [False, True], ids=["prometheus-2", "prometheus-3"])
def test_a_kept_point_on_the_whole_ranges_first_instant_is_read_whole(left_open: bool) -> None:
    """The canary's only series went stale so that its last point is the first instant of a
    later look's whole range: Prometheus 2 shows it (the canary has a series, no requests),
    3 does not (no data). Which one cannot be told from the summary, so the look reads whole."""
    start = 1_790_000_000.0
    gone = start + 300
    canary: list[tuple[float, float | str]] = [(start + 5 * k + 1, 10.0 * k) for k in range(60)]
    canary.append((gone, STALE))
    primary: list[tuple[float, float | str]] = [(start + 5 * k + 2, 7.0 * k) for k in range(400)]
    series = [
        Series("requests", "requests_total", {"app": "app", "pod": "c"}, canary),
        Series("requests", "requests_total", {"app": "app-primary", "pod": "p"}, primary),
    ]
    seen = [(gone + 60 + 10 * k + 0.37, gone + 70 + 10 * k + 0.37) for k in range(12)]
    # the 7th look ends at gone + 130: its whole range (131 s) starts at gone - 1, the last point
    with serving(series, left_open) as fake:
        want = look_all(provider(fake.url, reuse_points=0), seen)
        reusing = provider(fake.url)
        got = look_all(reusing, seen)
    assert got == want
    assert reusing.reuse.edges == 1
    at_edge = want[6]
    assert isinstance(at_edge, WindowSample)
    assert (at_edge.canary is None) is left_open


def test_the_assumption_a_late_sample_older_than_the_tail_of_a_quiet_series_is_not_seen() -> None:
    """What reuse assumes, shown failing where it does not hold: a sample ingested after the
    tail had passed it, for a series with no point in the tail, changes the whole read (the
    series is there again) and not the reusing one. docs/policies.md states it; it needs a
    delay longer than reuseOverlap (15 s) and a series that has gone quiet."""
    start = 1_790_000_000.0
    primary: list[tuple[float, float | str]] = [(start + 5 * k + 2, 7.0 * k) for k in range(400)]
    canary: list[tuple[float, float | str]] = [(start + 1, 0.0), (start + 2, STALE)]
    series = [
        Series("requests", "requests_total", {"app": "app", "pod": "c"}, canary),
        Series("requests", "requests_total", {"app": "app-primary", "pod": "p"}, primary),
    ]
    seen = [(start + 400 + 10 * k, start + 410 + 10 * k) for k in range(3)]
    with serving(series, False) as fake:
        whole, reusing = provider(fake.url, reuse_points=0), provider(fake.url)
        assert look_all(reusing, seen[:2]) == look_all(whole, seen[:2])
        canary[1:] = [(seen[1][1] - 40, 5.0), (seen[1][1] - 39, STALE)]  # 40 s late
        (want,) = look_all(whole, seen[2:])
        (got,) = look_all(reusing, seen[2:])
    assert isinstance(want, WindowSample)
    assert isinstance(got, WindowSample)
    assert want.canary is not None  # the whole read sees the canary's series again
    assert got.canary is None
    assert reusing.reuse.reused == 2


def test_kept_points_are_bounded_and_a_small_bound_changes_no_count() -> None:
    """Three checks (three Rollouts' queries) through one provider whose bound holds about two
    and a half of their summaries: the least recently used go, no count changes."""
    start = 1_790_000_000.0
    series = history(5, start, SPAN)
    seen = looks(random.Random(5), start + 150, start + SPAN)
    query = str(CHECK.requests_query)
    checks = [
        CHECK.model_copy(
            update={"name": f"errors-{n}", "requests_query": query[:-1] + f', x!="{n}"}}'}
        )
        for n in range(3)
    ]
    with serving(series, False) as fake:
        alone = provider(fake.url)
        largest = 0
        for look in seen:
            look_all(alone, [look], checks[0])
            largest = max(largest, alone.reuse.points)
        bound = largest * 5 // 2
        whole, tight = provider(fake.url, reuse_points=0), provider(fake.url, reuse_points=bound)
        want: list[Outcome] = []
        got: list[Outcome] = []
        kept = []
        for look in seen:
            for check in checks:
                want += look_all(whole, [look], check)
                got += look_all(tight, [look], check)
                assert tight.reuse.points <= bound
            kept.append(len(tight.reuse))
    assert got == want
    assert sum(isinstance(w, WindowSample) for w in want) > len(want) / 2
    assert len(whole.reuse) == 0
    assert tight.reuse.reused > 0
    assert min(kept) < 3  # summaries were dropped


def test_a_restart_or_a_handover_reads_whole_and_counts_the_same() -> None:
    """A new process has nothing kept; a replica given a Rollout back holds a summary of a look
    long past: neither changes a count."""
    start = 1_790_000_000.0
    series = history(8, start, SPAN)
    seen = [(start + 200 + 10 * k, start + 210 + 10 * k) for k in range(60)]
    with serving(series, True) as fake:
        want = look_all(provider(fake.url, reuse_points=0), seen)
        first, second = provider(fake.url), provider(fake.url)
        got = look_all(first, seen[:20]) + look_all(second, seen[20:40])
        got += look_all(first, seen[40:])  # handed back after 20 looks elsewhere
    assert got == want
    assert all(isinstance(w, WindowSample) and w.primary for w in want)
    assert first.reuse.reused == 19 + 19  # the first look, and the first after the handover
    assert second.reuse.reused == 19  # the first look after the "restart" was whole


# --- a real Prometheus ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, float, int]]:
    workdir: Path = tmp_path_factory.mktemp("reuse")
    start = float(history_start())
    seed = 21
    source = workdir / "series.om"
    source.write_text(openmetrics(history(seed, start, SPAN)))
    url, process = start_backfilled_prometheus(workdir, source)
    try:
        yield url, start, seed
    finally:
        process.stop()


def test_on_a_real_prometheus_reused_looks_count_what_whole_reads_count(
    backfilled: tuple[str, float, int],
) -> None:
    url, start, seed = backfilled
    seen = looks(random.Random(seed), start + 150, start + SPAN)
    whole = provider(url, reuse_points=0)
    reusing = provider(url)
    want = look_all(whole, seen)
    got = look_all(reusing, seen)
    assert got == want
    assert sum(isinstance(w, WindowSample) and w.canary is not None for w in want) > len(seen) / 2
    assert reusing.reuse.reused >= 0.6 * len(seen)
    assert reusing.reuse.doubted == 0
