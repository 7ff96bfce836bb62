"""The metric side of a controller tick, lever by lever, old and new side by side in one process.

The scale benchmark's profile (docs/benchmarks.md, "Controller scale") put about half of the
controller's CPU in one exact-count look: decoding Prometheus' JSON, reading the matrix into
points and rendering the policy's query templates. This measures each on the same input, the
before and the after interleaved in rounds (so a busy, shared machine slows both alike; the
ratio is the figure, not the milliseconds):

- **decode**: the body of an exact-count answer (the scale benchmark's stand-in,
  benchmarks/scale_prometheus.py, answers the istio policy's subquery: six series, a point a
  second over a 10-s look and the 120-s lookback) with the standard library's ``json`` and with
  ``orjson``;
- **parse**: that answer into points, the per-pair loop canary had and the one comprehension
  it has now;
- **render**: the istio policy's exact-count templates, read character by character each
  time (as before) and from the compiled template (now);
- **look**: whole looks, ``PrometheusProvider.window`` for the istio policy's two checks of 20
  Rollouts, a look every 10 s each, against a stand-in Prometheus on 127.0.0.1 (a thread of
  this process, its CPU not counted: the figures are this thread's CPU time) whose counters
  are functions of absolute time, as a real Prometheus' points are; *before* is the code as
  it was (``json``, the per-pair reader, the uncompiled renderer, every look read whole),
  *after* as it is (``orjson``, the new reader, compiled templates, each look reading only
  what the previous one did not: canary.analysis.prometheus_reuse).

Run: ``nice -n 10 .venv/bin/python benchmarks/prometheus_decode.py`` (``--quick`` for a few
rounds); ``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import re
import socket
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from canary.analysis import prometheus, prometheus_api, prometheus_template
from canary.analysis.analyse import query_variables
from canary.analysis.exact import SeriesPoints
from canary.analysis.policies import builtin_policy, expand
from canary.analysis.prometheus import PrometheusProvider, PrometheusSettings
from canary.analysis.prometheus_api import _parse_matrix
from canary.analysis.provider import Targets
from canary.model import CheckSpec

sys.path.insert(0, str(Path(__file__).parent))
from scale_prometheus import Answers

LOOK = 10.0
LOOKBACK = 120.0
AT = 1_790_000_000.0


def recorded_answer() -> bytes:
    """The stand-in's answer to one exact-count look of rollout 7 at a 20% canary weight."""
    weights = bytes([20] * 16)
    answers = Answers(weights, rps=1000.0)  # type: ignore[arg-type]
    query = (
        '(topk(2001, label_replace((x{destination_workload=~"app-7|app-7-primary"}), '
        '"__canary_series", "requests", "", "") or label_replace((y), "__canary_series", '
        f'"failures", "", "") or label_replace((z), "__canary_series", "quantile", "", "")))'
        f"[{int(LOOK + LOOKBACK + 1)}s:1s]"
    )
    code, body = answers.answer(query, AT)
    assert code == 200, body
    return json.dumps(body).encode()


def points_before(values: list[Any]) -> list[tuple[float, float]]:
    """canary's matrix reader before this change: a pair at a time, each under a guard."""
    points = []
    for pair in values:
        with contextlib.suppress(TypeError, ValueError, IndexError):
            points.append((float(pair[0]), float(pair[1])))
    return points


def parse_matrix_before(raw: list[Any]) -> list[SeriesPoints]:
    out = []
    for item in raw:
        points = points_before(item["values"])
        points.sort()
        out.append(SeriesPoints({str(k): str(v) for k, v in item["metric"].items()}, points))
    return out


def render_before(template: str, variables: dict[str, str]) -> str:
    """The one-pass renderer as it was: the template read again at every call."""
    compiled = prometheus_template.compile_template.__wrapped__(template)  # uncached
    return "".join(
        p if isinstance(p, str) else prometheus_template._fill(p, variables)
        for p in compiled.pieces
    )


def istio_checks() -> list[CheckSpec]:
    return [check for check in expand(builtin_policy("istio")) if check.side_label]


def istio_templates() -> list[str]:
    return [
        q
        for check in istio_checks()
        for q in (check.requests_query, check.failures_query, check.quantile_query)
        if q
    ]


def get_before(self: prometheus_api.PrometheusClient, promql: str, at: datetime) -> Any:
    """The query in the URL of a GET, as it was (the error handling left out)."""
    params = {"query": promql, "time": f"{at.timestamp():.3f}"}
    url = f"{self.settings.url}/api/v1/query"
    return self.http.get(url, params=params, headers=self._authorization())


@contextlib.contextmanager
def code_before() -> Iterator[None]:
    """The provider as it was: a GET, json, the per-pair reader, the renderer reading each
    time (and, by the settings, no reuse)."""
    client = prometheus_api.PrometheusClient
    saved = (prometheus_api.orjson, prometheus_api._points, prometheus.render, client._get)
    prometheus_api.orjson = types.SimpleNamespace(  # type: ignore[assignment]
        loads=json.loads, JSONDecodeError=ValueError
    )
    prometheus_api._points = points_before
    prometheus.render = render_before
    client._get = get_before  # type: ignore[method-assign]
    try:
        yield
    finally:
        prometheus_api.orjson, prometheus_api._points, prometheus.render, client._get = saved


_WORKLOADS = re.compile(r'destination_workload=~"([^"|]+)\|([^"]+)"')
_SUBQUERY = re.compile(r"\)\[(\d+)s:(\d+)s\]\s*$")
_PART = re.compile(r'"__canary_series",\s*"(\w+)"')
RPS = 1000.0
WEIGHT = 0.2


def standin_answer(query: str, at: float) -> dict[str, Any]:
    """Each part's counter per side as a function of absolute time (so two reads of one
    instant agree, as a real Prometheus' do): 1,000 requests a second, 20% to the canary,
    0.1% failing; the quantile part a constant 180 ms."""
    workloads = _WORKLOADS.search(query)
    found = _SUBQUERY.search(query)
    assert workloads is not None, query
    assert found is not None, query
    reach, step = float(found.group(1)), float(found.group(2))
    end = math.floor(at / step) * step
    first = math.ceil((end - reach) / step) * step
    times = [first + k * step for k in range(round((end - first) / step) + 1)]
    result = []
    for part in dict.fromkeys(_PART.findall(query)):
        for workload, share in zip(workloads.groups(), (WEIGHT, 1 - WEIGHT), strict=True):
            rate = RPS * share * (0.001 if part == "failures" else 1.0)
            values = [
                [t, "180" if part == "quantile" else f"{rate * (t - AT):.15g}"] for t in times
            ]
            labels = {"__canary_series": part, "destination_workload": workload}
            result.append({"metric": labels, "values": values})
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


@contextlib.contextmanager
def standin() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as Prometheus
        wbufsize = 1 << 16  # headers and body in one write

        def setup(self) -> None:
            super().setup()
            # as Go's net/http: no Nagle, or every answer waits for the client's delayed ACK
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.do_GET(self.rfile.read(length).decode())

        def do_GET(self, form: str = "") -> None:
            params = parse_qs(urlsplit(self.path).query)
            params.update(parse_qs(form))
            body = json.dumps(standin_answer(params["query"][0], float(params["time"][0])))
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()


class Looks:
    """One provider's looks for ``rollouts`` Rollouts, a look every 10 s each."""

    def __init__(self, url: str, rollouts: int, reuse: bool) -> None:
        settings = PrometheusSettings(url=url, reuse_points=1_000_000 if reuse else 0)
        self.provider = PrometheusProvider(settings)
        self.checks = istio_checks()
        self.targets = [
            Targets(
                namespace="shop", target=f"app-{i}", canary=f"app-{i}", primary=f"app-{i}-primary"
            )
            for i in range(rollouts)
        ]
        self.now = AT + 600.37
        self.counts: list[tuple[int, int] | None] = []

    def round(self) -> None:
        """Every Rollout's looks of this interval."""
        start, self.now = self.now, self.now + 10.0
        at = datetime.fromtimestamp(self.now, UTC)
        for targets in self.targets:
            for check in self.checks:
                variables = {**query_variables(targets, 10.0, check), "window_start": f"{start}"}
                window = self.provider.window(check, variables, at)
                side = window.canary
                self.counts.append(None if side is None else (side.requests, side.failures))


def whole_looks(rounds: int, rollouts: int) -> dict[str, float]:
    """CPU per look, before and after, in alternating rounds; and that they counted alike."""
    with standin() as url:
        before, after = Looks(url, rollouts, reuse=False), Looks(url, rollouts, reuse=True)
        spent = {"before": [], "after": []}  # type: dict[str, list[float]]
        for _ in range(rounds + 1):
            with code_before():
                started = time.thread_time()
                before.round()
                spent["before"].append(time.thread_time() - started)
            started = time.thread_time()
            after.round()
            spent["after"].append(time.thread_time() - started)
    if before.counts != after.counts:
        raise SystemExit("the looks before and after counted differently")
    looks = rollouts * len(before.checks)
    old = sorted(spent["before"][1:])[rounds // 2] / looks  # the first round reads whole in both
    new = sorted(spent["after"][1:])[rounds // 2] / looks
    return {
        "before_us": old * 1e6,
        "after_us": new * 1e6,
        "ratio": old / new,
        "reused": float(after.provider.reuse.reused),
        "looks": float(len(after.counts)),
    }


def timed(work: Callable[[], object], repeat: int) -> float:
    """Seconds of CPU per call of ``work`` (this thread's, so a busy machine adds little)."""
    started = time.thread_time()
    for _ in range(repeat):
        work()
    return (time.thread_time() - started) / repeat


def side_by_side(
    before: Callable[[], object], after: Callable[[], object], rounds: int, repeat: int
) -> dict[str, float]:
    """Median CPU per call of each, measured in alternating rounds; and their ratio."""
    olds, news = [], []
    for _ in range(rounds):
        olds.append(timed(before, repeat))
        news.append(timed(after, repeat))
    old, new = sorted(olds)[rounds // 2], sorted(news)[rounds // 2]
    return {"before_us": old * 1e6, "after_us": new * 1e6, "ratio": old / new}


def levers(rounds: int, repeat: int) -> dict[str, dict[str, float]]:
    body = recorded_answer()
    result = orjson.loads(body)["data"]["result"]
    if parse_matrix_before(result) != _parse_matrix(result):
        raise SystemExit("the two matrix readers disagree")
    templates = istio_templates()
    variables = {
        "namespace": "shop",
        "canary": "app-7",
        "primary": "app-7-primary",
        "interval": "10s",
        "objective_ms": "500",
    }
    for template in templates:
        if render_before(template, variables) != prometheus_template.render(template, variables):
            raise SystemExit("the two renderers disagree")
    return {
        "decode": side_by_side(
            lambda: json.loads(body), lambda: orjson.loads(body), rounds, repeat
        ),
        "parse": side_by_side(
            lambda: parse_matrix_before(result), lambda: _parse_matrix(result), rounds, repeat
        ),
        "render": side_by_side(
            lambda: [render_before(t, variables) for t in templates],
            lambda: [prometheus_template.render(t, variables) for t in templates],
            rounds,
            repeat * 4,
        ),
        "look": whole_looks(max(3, rounds), 20),
        "answer": {"bytes": float(len(body)), "series": float(len(result))},
    }


def report(figures: dict[str, dict[str, float]]) -> str:
    rows = ["| lever | before µs | after µs | before / after |", "|---|---:|---:|---:|"]
    for name, got in figures.items():
        if "ratio" not in got:
            continue
        rows.append(
            f"| {name} | {got['before_us']:.0f} | {got['after_us']:.0f} | {got['ratio']:.1f}x |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few rounds (a smoke test)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    rounds, repeat = (3, 20) if args.quick else (15, 200)
    gc.disable()  # a collection landing in one side's round would tilt the ratio
    try:
        figures = levers(rounds, repeat)
    finally:
        gc.enable()
    print(report(figures))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if all(math.isfinite(f.get("ratio", 1.0)) for f in figures.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
