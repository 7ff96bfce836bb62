"""The controller of the scale benchmark (benchmarks/scale.py), in a process of its own so that
its CPU seconds and peak RSS are its own.

It builds the controller as ``canary controller`` does (canary/cli/controller.py: leader
election on a Lease, notifications on, ``/metrics`` on 127.0.0.1 and a free port, the
Prometheus provider with its defaults) and measures what the controller does not expose yet:
the lateness of every tick, and the wall time of each API call and metric query (by wrapping
the two methods that make them). The tick function is wrapped to note when each tick really
started and ended, and the scheduler says when it was due (the end of the previous tick plus
its ``requeueAfter``, or the moment an early tick was asked for: the lateness it reports to
``canary_tick_lateness_seconds``) and when it became ready for a worker; on SIGTERM/SIGINT
everything is written as JSON to ``--out``:

    {"ticks": [[key, due, ready, started, ended, early], ...],   # epoch seconds
     "calls": [[started, "read deployments", seconds], ...],  # API calls and queries
     "exposition": "<the controller's /metrics>", "maxrss_kib": ..., "vmhwm_kib": ...,
     "gc_pauses": [[started, generation, seconds], ...]}  # the collector's passes

It prints ``READY <metrics address>`` once every cache is synced and it leads.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import signal
import sys
import threading
import time
from array import array
from pathlib import Path
from typing import Any

from kubernetes import config
from scale_gc import PauseLog

from canary.analysis.prometheus import PrometheusClient, PrometheusProvider, PrometheusSettings
from canary.cli.collector import freeze_startup_heap, limit_malloc_arenas, tune_collector
from canary.cli.controller import quiet_request_logs
from canary.controller import Controller, ControllerSettings, LeaseSettings
from canary.controller.kube import Kube
from canary.controller.scheduling import current_run
from canary.notify import NotifyConfig


class TickLog:
    """Due, ready, started and ended times of every tick, by rollout key."""

    @classmethod
    def attach(cls, controller: Any) -> TickLog:
        """A log of ``controller``'s ticks: each one's times (``current_run``: when it was due
        and when it became ready for a worker) and whether it was early."""
        log = cls()
        scheduler = controller.scheduler
        scheduler._tick = log.wrap(scheduler._tick)
        return log

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._times = array("d")  # due, ready, started, ended of each tick, one after another
        self._keys = array("I")
        self._early = array("b")
        self._names: dict[str, int] = {}

    @property
    def ticks(self) -> list[tuple[str, float, float, float, float, bool]]:
        names = list(self._names)
        times = self._times
        return [
            (
                names[key],
                times[4 * n],
                times[4 * n + 1],
                times[4 * n + 2],
                times[4 * n + 3],
                bool(early),
            )
            for n, (key, early) in enumerate(zip(self._keys, self._early, strict=True))
        ]

    def wrap(self, tick: Any) -> Any:
        def timed(key: str, early: bool) -> float:
            started = time.time()
            run = current_run()
            since_due, since_ready = 0.0, 0.0
            if run is not None:
                now = time.monotonic()
                since_due, since_ready = now - run.due, now - run.ready
            try:
                return float(tick(key, early))
            finally:
                ended = time.time()
                with self.lock:
                    self._keys.append(self._names.setdefault(key, len(self._names)))
                    self._times.extend((started - since_due, started - since_ready, started, ended))
                    self._early.append(early)

        return timed


class CallLog:
    """The wall time of each API call and metric query the controller makes (not watches):
    how long the controller waited on the API server and on Prometheus. Kept in arrays (about
    20 bytes a call, not the ~170 of a tuple with its own name string): at 1,000 Rollouts the
    controller makes some 500 calls a second, and the log is in the controller's peak RSS."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._started = array("d")
        self._took = array("d")
        self._what = array("H")
        self._names: dict[str, int] = {}

    def record(self, started: float, what: str) -> None:
        took = time.time() - started
        with self.lock:
            index = self._names.setdefault(what, len(self._names))
            self._started.append(started)
            self._took.append(took)
            self._what.append(index)

    @property
    def calls(self) -> list[tuple[float, str, float]]:
        names = list(self._names)
        return [
            (round(started, 4), names[what], round(took, 5))
            for started, what, took in zip(self._started, self._what, self._took, strict=True)
        ]

    def install(self) -> None:
        """Wrap `Kube._request` and `PrometheusClient._result`, under every query, instant or
        range (in this process only)."""
        calls = self
        request = Kube._request
        query = PrometheusClient._result

        def timed_request(self: Kube, kind: Any, verb: str, *args: Any, **kwargs: Any) -> Any:
            started = time.time()
            try:
                return request(self, kind, verb, *args, **kwargs)
            finally:
                calls.record(started, f"{verb} {kind.plural}")

        def timed_query(self: PrometheusClient, *args: Any, **kwargs: Any) -> Any:
            started = time.time()
            try:
                return query(self, *args, **kwargs)
            finally:
                calls.record(started, "prometheus query")

        Kube._request = timed_request  # type: ignore[method-assign]
        PrometheusClient._result = timed_query  # type: ignore[method-assign]


def _vmhwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--prometheus", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--log-file", type=Path, required=True)
    parser.add_argument(
        "--switch-interval", type=float, default=None, help="sys.setswitchinterval (a what-if)"
    )
    parser.add_argument(
        "--default-collector",
        action="store_true",
        help="CPython's collector thresholds, nothing frozen (what canary controller had before)",
    )
    args = parser.parse_args(argv)
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)

    logging.basicConfig(
        filename=str(args.log_file),
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.default_collector:
        tune_collector()
        limit_malloc_arenas()
    quiet_request_logs("info")  # as canary controller does
    pauses = PauseLog().start()
    calls = CallLog()
    calls.install()
    api_client = config.new_client_from_config(config_file=str(args.kubeconfig))  # type: ignore[no-untyped-call]
    controller = Controller(
        api_client,
        ControllerSettings(
            namespaces=(args.namespace,),
            identity="canary-bench",
            lease=LeaseSettings(namespace=args.namespace),
            metrics_address=("127.0.0.1", 0),
            workers=args.workers,
            notify=NotifyConfig(),
        ),
        provider=PrometheusProvider(PrometheusSettings(url=args.prometheus)),
    )
    log = TickLog.attach(controller)

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    controller.start()
    while not stopping.is_set():
        ready, why = controller.ready()
        if ready and why == "leader":
            break
        stopping.wait(0.1)
    if not args.default_collector:
        freeze_startup_heap()  # as `canary controller` does once its caches are synced
    address = controller.health.address if controller.health is not None else ""
    print(f"READY {address}", flush=True)
    while not stopping.wait(0.5):
        pass
    exposition = controller.metrics.exposition().decode()
    controller.stop()
    with log.lock:
        ticks = list(log.ticks)
    with calls.lock:
        made = list(calls.calls)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "ticks": ticks,
        "calls": made,
        "exposition": exposition,
        "maxrss_kib": usage.ru_maxrss,
        "vmhwm_kib": _vmhwm_kib(),
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "gc_pauses": pauses.pauses,
    }
    args.out.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
