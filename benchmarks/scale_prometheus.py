"""A stand-in for Prometheus in the scale benchmark (benchmarks/scale.py).

Real Prometheus scraping a simulated mesh of 1,000 services would measure Prometheus, not the
controller. This process speaks Prometheus' HTTP API instead: ``/api/v1/query`` (GET or POST,
``query`` and ``time``) answers an instant vector in Prometheus' JSON, as the controller's
provider (canary/analysis/prometheus_api.py) reads it. It understands the queries the shipped
``istio`` policy renders (policies/istio.yaml): one combined query per check and tick, its
parts tagged ``__canary_series`` (requests, failures, quantile), each ``sum by
(destination_workload)`` over ``destination_workload=~"<canary>|<primary>"`` and a
``[<window>]`` range. For each part and side it answers one series, as Prometheus would:

- requests: ``rps * window`` split by the canary weight the route objects hold now (the
  benchmark writes each rollout's weight, read from its VirtualService, into a shared file of
  one byte per rollout, indexed by the number at the end of the workload's name);
- failures: 0.1% of the requests for the error-rate check (5xx), 0.2% for the latency check
  (requests slower than the objective): a healthy canary, exactly like its primary;
- quantile: 180 ms (NaN with no requests, as ``histogram_quantile`` gives).

The policy counts exactly (``sideLabel``): its query is a subquery over the counter series,
``(...)[<range>s:<resolution>s]``, answered as a matrix: per part and side one counter growing
at the side's current rate over the range (so a look's increase is ``rate * window``), and the
quantile as a constant. An instant query of ``sum by`` parts is answered as before. A batch of
checks (their expressions tagged ``__canary_check`` and joined with ``or``:
canary.analysis.prometheus_batch) is answered check by check, each series with its check's tag;
one kept to a side (``and on(<label>) label_replace(vector(1), ...)``, the baseline's) gives
that side's series only.

``/stats`` answers the number of queries answered (and refused), for the benchmark to count
queries per tick. Run by the benchmark as::

    python benchmarks/scale_prometheus.py --weights FILE --count N --rps 50

It prints ``LISTENING host:port`` once it listens (127.0.0.1, a free port).
"""

from __future__ import annotations

import argparse
import bisect
import math
import mmap
import re
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

ERROR_SHARE = 0.001
SLOW_SHARE = 0.002
QUANTILE_MS = 180.0
BAD_SHARE = 0.5

_PART = re.compile(r'"__canary_series",\s*"(\w+)"')
_WORKLOADS = re.compile(r'destination_workload\s*=~\s*"([^"|]+)\|([^"]+)"')
_WINDOW = re.compile(r"\[((?:\d+(?:ms|s|m|h|d))+)\]")
_UNIT = re.compile(r"(\d+)(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_INDEX = re.compile(r"(\d+)$")
_CHECK = re.compile(r'"__canary_check",\s*"(\d+)"')
CHECK_TAG = "__canary_check"
_ONLY = re.compile(r'and on\((\w+)\)\s*label_replace\(vector\(1\),\s*"\w+",\s*"([^"]*)"')
_SUBQUERY = re.compile(r"\)\[(\d+)s:(\d+(?:\.\d+)?)s\]\s*$")


def window_seconds(text: str) -> float:
    return sum(int(n) * _SECONDS[u] for n, u in _UNIT.findall(text))


class Answers:
    """Answers instant queries from the weights file; counts them."""

    def __init__(self, weights: mmap.mmap | None, rps: float, bad: mmap.mmap | None = None) -> None:
        self.weights = weights
        self.bad = bad
        """One byte per rollout (the chaos benchmark's): non-zero, its canary fails half its
        requests, for both checks."""
        self.rps = rps
        self.lock = threading.Lock()
        self.queries = 0
        self.refused = 0
        # each counter is one function of absolute time (so overlapping looks agree point for
        # point, as a real Prometheus' do): (start, per-second rate, count) segments per series
        self.segments: dict[tuple[str, str, str], list[tuple[float, float, float]]] = {}
        self.epoch = math.floor(time.time()) - 3600.0

    def is_bad(self, workload: str) -> bool:
        match = _INDEX.search(workload)
        if self.bad is None or match is None or int(match.group(1)) >= len(self.bad):
            return False
        return bool(self.bad[int(match.group(1))])

    def weight(self, workload: str) -> float:
        match = _INDEX.search(workload)
        if self.weights is None or match is None:
            return 0.0
        index = int(match.group(1))
        if index >= len(self.weights):
            return 0.0
        return self.weights[index] / 100.0

    def answer(self, query: str, at: float) -> tuple[int, dict[str, Any]]:
        checks = _CHECK.split(query)
        subquery = _SUBQUERY.search(query)
        if len(checks) > 1 and subquery is not None:
            return self._batch(checks, subquery.groups(), at)
        parts = _PART.findall(query)
        workloads = _WORKLOADS.search(query)
        window = _WINDOW.search(query)
        subquery = _SUBQUERY.search(query)
        if parts and workloads is not None and subquery is not None:
            return self._matrix(query, parts, workloads.groups(), subquery.groups(), at)
        if not parts or workloads is None or window is None:
            with self.lock:
                self.refused += 1
            return 400, {
                "status": "error",
                "errorType": "bad_data",
                "error": "the stand-in only answers the istio policy's queries",
            }
        with self.lock:
            self.queries += 1
        canary, primary = workloads.group(1), workloads.group(2)
        share = self.weight(canary)
        total = self.rps * window_seconds(window.group(1))
        failing = SLOW_SHARE if "istio_request_duration" in query else ERROR_SHARE
        canary_failing = BAD_SHARE if self.is_bad(canary) else failing
        result = []
        for part in dict.fromkeys(parts):
            for workload, requests in ((canary, total * share), (primary, total * (1 - share))):
                if part == "requests":
                    value = requests
                elif part == "failures":
                    value = requests * (canary_failing if workload == canary else failing)
                else:
                    value = QUANTILE_MS if requests > 0 else math.nan
                result.append(
                    {
                        "metric": {"__canary_series": part, "destination_workload": workload},
                        "value": [at, _number(value)],
                    }
                )
        return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}

    def _batch(
        self, pieces: list[str], subquery: tuple[str | Any, ...], at: float
    ) -> tuple[int, dict[str, Any]]:
        """A batch of checks' expressions (canary.analysis.prometheus_batch): each check's
        text lies before its tag, ``pieces`` alternating text and tag; its series tagged."""
        with self.lock:
            self.queries += 1
        result = []
        for text, tag in zip(pieces[0::2], pieces[1::2], strict=False):
            parts = _PART.findall(text)
            workloads = _WORKLOADS.search(text)
            if not parts or workloads is None:
                continue
            for series in self._matrix_series(text, parts, workloads.groups(), subquery, at):
                series["metric"][CHECK_TAG] = tag
                result.append(series)
        return 200, {"status": "success", "data": {"resultType": "matrix", "result": result}}

    def _matrix(
        self,
        query: str,
        parts: list[str],
        workloads: tuple[str | Any, ...],
        subquery: tuple[str | Any, ...],
        at: float,
    ) -> tuple[int, dict[str, Any]]:
        """Counters over the subquery's range, at its resolution (exact counting)."""
        with self.lock:
            self.queries += 1
        result = self._matrix_series(query, parts, workloads, subquery, at)
        only = _ONLY.search(query)  # one side's series (the baseline: canary.analysis.prometheus)
        if only is not None:
            result = [r for r in result if r["metric"].get(only.group(1)) == only.group(2)]
        return 200, {"status": "success", "data": {"resultType": "matrix", "result": result}}

    def _matrix_series(
        self,
        query: str,
        parts: list[str],
        workloads: tuple[str | Any, ...],
        subquery: tuple[str | Any, ...],
        at: float,
    ) -> list[dict[str, Any]]:
        """The series of one check's parts over the subquery's range."""
        canary, primary = str(workloads[0]), str(workloads[1])
        reach, step = float(subquery[0]), float(subquery[1])
        end = math.floor(at / step) * step
        times = [end - k * step for k in range(int(reach / step), -1, -1)]
        share = self.weight(canary)
        latency = "istio_request_duration" in query
        failing = SLOW_SHARE if latency else ERROR_SHARE
        canary_failing = BAD_SHARE if self.is_bad(canary) else failing
        result = []
        for part in dict.fromkeys(parts):
            for workload, rate in ((canary, self.rps * share), (primary, self.rps * (1 - share))):
                if part == "quantile":
                    values = [QUANTILE_MS if rate > 0 else math.nan for _ in times]
                else:
                    share_failing = canary_failing if workload == canary else failing
                    per_second = rate * (share_failing if part == "failures" else 1.0)
                    key = (workload, part, "latency" if latency else "errors")
                    values = self._counter(key, per_second, times, end)
                result.append(
                    {
                        "metric": {"__canary_series": part, "destination_workload": workload},
                        "values": [[t, _number(v)] for t, v in zip(times, values, strict=True)],
                    }
                )
        return result

    def _counter(
        self, key: tuple[str, str, str], per_second: float, times: list[float], end: float
    ) -> list[float]:
        """The counter ``key`` at ``times``: 1000 plus its rate integrated from the epoch; the
        rate changes (a new segment) at the first query that sees a new one, from ``end`` on."""
        with self.lock:
            segments = self.segments.setdefault(key, [(self.epoch, per_second, 1000.0)])
            start, rate, count = segments[-1]
            if rate != per_second:
                at = max(end, start)
                segments.append((at, per_second, count + rate * (at - start)))
            segments = list(segments)
        return _counts(segments, times)

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {"queries": self.queries, "refused": self.refused}


def _count_at(segments: list[tuple[float, float, float]], starts: list[float], t: float) -> float:
    """The count by ``t`` of (start, rate, count at start) segments."""
    start, rate, count = segments[max(bisect.bisect_left(starts, t) - 1, 0)]
    return count + rate * max(t - start, 0.0)


def _counts(segments: list[tuple[float, float, float]], times: list[float]) -> list[float]:
    """`_count_at` of every one of ``times`` (ascending), walking the segments once."""
    out = []
    index = 0
    last = len(segments) - 1
    for t in times:
        while index < last and segments[index + 1][0] < t:
            index += 1
        start, rate, count = segments[index]
        out.append(count + rate * max(t - start, 0.0))
    return out


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return f"{value:.6g}"


def make_server(answers: Answers, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as Prometheus
        wbufsize = 1 << 16  # headers and body leave in one write (flushed after each request)

        def setup(self) -> None:
            super().setup()
            # as Go's net/http: no Nagle, or every answer waits for the client's delayed ACK
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/api/v1/query":
                self._query(parse_qs(url.query))
            elif url.path == "/stats":
                self._send(200, answers.stats())
            elif url.path in ("/-/ready", "/-/healthy"):
                self._send(200, {"status": "success"})
            else:
                self._send(404, {"status": "error", "error": "not found"})

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            if url.path != "/api/v1/query":
                self._send(404, {"status": "error", "error": "not found"})
                return
            params = parse_qs(url.query)
            params.update(parse_qs(body))
            self._query(params)

        def _query(self, params: dict[str, list[str]]) -> None:
            query = (params.get("query") or [""])[0]
            at = float((params.get("time") or [str(time.time())])[0])
            code, body = answers.answer(query, at)
            self._send(code, body)

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = orjson.dumps(body)
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = _Server((host, port), Handler)
    server.daemon_threads = True
    return server


class _Server(ThreadingHTTPServer):
    # Python's default backlog of 5 overflows when the controller's workers connect at once:
    # the kernel drops the SYNs and each client waits a second to retry (Prometheus, in Go,
    # listens with the system's maximum)
    request_queue_size = 4096


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True, help="one byte per rollout")
    parser.add_argument("--rps", type=float, default=50.0, help="requests a second per service")
    parser.add_argument("--bad", type=Path, help="one byte per rollout: non-zero, a bad canary")
    args = parser.parse_args(argv)
    with args.weights.open("rb") as handle:
        weights = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    bad = None
    if args.bad is not None:
        with args.bad.open("rb") as handle:
            bad = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    server = make_server(Answers(weights, args.rps, bad))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    host, port = server.server_address[:2]
    print(f"LISTENING {host!s}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
