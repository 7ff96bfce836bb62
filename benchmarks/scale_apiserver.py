"""The test API server stand-in's own throughput, on the requests a controller tick makes.

The scale benchmarks (benchmarks/scale.py, scale_sharded.py) run the controller against
`canary.testing.ApiServer` in the benchmark's process; this one measures the stand-in alone,
so that its cost is known and kept out of what those measure. The server runs in this process
(as there, with canary's CRDs without their CEL rules and schemaless Istio CRDs:
benchmarks/scale_cluster.py); a load process of its own sends, from ``--threads`` threads, the
three writes of a step tick over keep-alive HTTP: ``PUT rollouts/status`` (a new status each
time), the VirtualService's server-side apply (JSON, ``application/apply-patch+yaml``) and
``POST events`` (each Rollout written by one thread), while two watches (Rollouts,
VirtualServices) receive every change. Reported: requests a second, the server process' CPU
per request (user + system over the window) and the write latency p50 / p99 as the load
process saw it.

    .venv/bin/python benchmarks/scale_apiserver.py              # 20 s, 8 threads
    .venv/bin/python benchmarks/scale_apiserver.py --seconds 5  # quick

It prints one line of JSON (``--json FILE`` saves it).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from scale_cluster import rollout, start_cluster  # noqa: E402

NAMESPACE = "bench"
ROLLOUTS = 50
Json = dict[str, Any]


def virtual_service(name: str, weight: int) -> Json:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "hosts": [name],
            "http": [
                {
                    "name": "weighted",
                    "route": [
                        {"destination": {"host": f"{name}-primary"}, "weight": 100 - weight},
                        {"destination": {"host": f"{name}-canary"}, "weight": weight},
                    ],
                }
            ],
        },
    }


def event(name: str, n: int) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.{n:x}", "namespace": NAMESPACE},
        "involvedObject": {"kind": "Rollout", "name": name, "namespace": NAMESPACE},
        "reason": "Step",
        "message": f"weight {n % 100}",
        "type": "Normal",
    }


def load(port: int, threads: int, seconds: float, out: Any) -> None:
    """The load process: ``threads`` threads, each on its own connection, for ``seconds``."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        read: Json = {}
        n = 0
        base = "/apis/canary.dev/v1alpha1/namespaces/bench/rollouts"
        while time.monotonic() < deadline:
            name = f"r{index + threads * (n % (ROLLOUTS // threads))}"  # its own Rollouts
            n += 1
            for method, path, body, kind in (
                ("GET", f"{base}/{name}", None, ""),
                ("PUT", f"{base}/{name}/status", "status", "application/json"),
                (
                    "PATCH",
                    "/apis/networking.istio.io/v1/namespaces/bench/virtualservices/"
                    f"{name}?fieldManager=canary&force=true",
                    virtual_service(name, n % 100),
                    "application/apply-patch+yaml",
                ),
                (
                    "POST",
                    "/api/v1/namespaces/bench/events",
                    event(name, index * 10_000_000 + n),
                    "application/json",
                ),
            ):
                if body == "status":
                    body = dict(read, status={"phase": "Progressing", "canaryWeight": n % 100})
                started = time.monotonic()
                data = json.dumps(body).encode() if body is not None else None
                headers = {"Content-Type": kind} if kind else {}
                connection.request(method, path, body=data, headers=headers)
                answer = connection.getresponse()
                payload = answer.read()
                if method != "GET":
                    mine.append(time.monotonic() - started)
                if answer.status >= 300:
                    with lock:
                        errors.append(f"{method} {path}: {answer.status}")
                if method == "GET":
                    read = json.loads(payload)
        with lock:
            latencies.extend(mine)

    def watcher(path: str) -> None:
        """A controller's watch: every write is sent to it too."""
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=seconds + 30)
        connection.request("GET", f"{path}?watch=true&timeoutSeconds={int(seconds) + 5}")
        answer = connection.getresponse()
        while time.monotonic() < deadline and answer.readline():
            pass

    for path in (
        "/apis/canary.dev/v1alpha1/namespaces/bench/rollouts",
        "/apis/networking.istio.io/v1/namespaces/bench/virtualservices",
    ):
        threading.Thread(target=watcher, args=(path,), daemon=True).start()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out.put({"latencies": latencies, "errors": errors[:5], "error_count": len(errors)})


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    api = start_cluster(NAMESPACE)
    try:
        for i in range(ROLLOUTS):
            api.create(rollout(f"r{i}", NAMESPACE, 10.0, [5, 10, 20, 50], None))
        port = int(api.url.rsplit(":", 1)[1])
        results: Any = multiprocessing.get_context("spawn").Queue()
        child = multiprocessing.get_context("spawn").Process(
            target=load, args=(port, args.threads, args.seconds, results)
        )
        cpu, wall = cpu_seconds(), time.monotonic()
        child.start()
        found = results.get(timeout=args.seconds + 120)
        child.join(30)
        cpu, wall = cpu_seconds() - cpu, time.monotonic() - wall
    finally:
        api.stop()
    writes = sorted(found["latencies"])
    requests = len(writes) * 4 // 3  # and a GET before each status write
    figures = {
        "seconds": round(wall, 1),
        "threads": args.threads,
        "requests": requests,
        "requests_per_second": round(requests / wall, 1),
        "server_cpu_ms_per_request": round(1000 * cpu / max(1, requests), 3),
        "write_p50_ms": round(1000 * writes[len(writes) // 2], 1) if writes else None,
        "write_p99_ms": round(1000 * writes[int(len(writes) * 0.99)], 1) if writes else None,
        "errors": found["error_count"],
        "first_errors": found["errors"],
        "load_average": os.getloadavg()[0],
    }
    line = json.dumps(figures)
    print(line)
    if args.json:
        args.json.write_text(line + "\n", encoding="utf-8")
    return 0 if not found["error_count"] else 1


if __name__ == "__main__":
    sys.exit(main())
