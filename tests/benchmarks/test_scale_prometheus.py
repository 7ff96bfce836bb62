"""The scale benchmark's Prometheus stand-in (benchmarks/scale_prometheus.py): its counters are
one function of absolute time however they are read (the walk over a query's instants gives
what a lookup of each instant gives), and a batch of checks or a query kept to one side is
answered as the controller's provider reads it."""

from __future__ import annotations

import random
import sys

from benchmark_support import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import scale_prometheus as stand_in

from canary.analysis import exact, prometheus_batch
from canary.analysis.prometheus import only_side

AT = 1_790_000_000.0


def test_walking_the_segments_counts_what_looking_each_instant_up_counts() -> None:
    rng = random.Random(7)
    for _ in range(300):
        segments = []
        start, count = 0.0, 1000.0
        for _ in range(rng.randint(1, 6)):
            segments.append((start, rng.uniform(0, 50), count))
            start += rng.choice([0.0, rng.uniform(0, 100)])
            count += rng.uniform(0, 500)
        times = sorted([rng.uniform(-20, 400) for _ in range(rng.randint(0, 200))])
        times = sorted(times + [s[0] for s in segments])
        starts = [s[0] for s in segments]
        want = [stand_in._count_at(segments, starts, t) for t in times]
        assert stand_in._counts(segments, times) == want


def _check(workloads: str, latency: bool) -> str:
    metric = "istio_request_duration_milliseconds_count" if latency else "istio_requests_total"
    return exact.combine(
        {
            "requests": f'{metric}{{destination_workload=~"{workloads}"}}',
            "failures": f'{metric}{{destination_workload=~"{workloads}", code="5"}}',
        },
        2000,
    )


def test_a_batch_is_answered_check_by_check_and_one_side_alone() -> None:
    answers = stand_in.Answers(None, 100.0)
    errors, latency = _check("web-7|web-7-primary", False), _check("web-7|web-7-primary", True)
    batch = f"({prometheus_batch.join([errors, latency])})[20s:1s]"
    code, body = answers.answer(batch, AT)
    assert code == 200
    series = [
        exact.SeriesPoints(r["metric"], [(t, float(v)) for t, v in r["values"]])
        for r in body["data"]["result"]
    ]
    by_check = prometheus_batch.split_checks(series, 2)
    for one, text in zip(by_check, (errors, latency), strict=True):
        code, alone = answers.answer(f"({text})[20s:1s]", AT)
        assert [(s.labels, s.points) for s in one] == [
            (r["metric"], [(t, float(v)) for t, v in r["values"]]) for r in alone["data"]["result"]
        ]
    primary_only = f"({only_side(errors, 'destination_workload', 'web-7-primary')})[20s:1s]"
    _, kept = answers.answer(primary_only, AT)
    sides = {r["metric"]["destination_workload"] for r in kept["data"]["result"]}
    assert sides == {"web-7-primary"}
    assert len(kept["data"]["result"]) == 2
