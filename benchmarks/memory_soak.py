"""Memory of a long-running controller process: its RSS sampled over a soak of ``--minutes``.

One run, built from the scale benchmarks' parts (imported, not changed): the test API server
in this process with ``--size`` Deployments and Rollouts (benchmarks/scale_cluster.py), and one
controller process per ``--variants`` entry (benchmarks/memory_soak_child.py: the sharded
benchmark's replica, ``canary controller``'s wiring with its collector and allocator settings,
plus a sampler). Two modes:

- ``--mode watch``: every variant only watches (the controller's watches, caches and
  listeners; no lease, no tick), while this process rewrites objects at ``--churn`` writes a
  second: Rollout statuses, Deployment statuses (readiness flapping) and, one write in ten, a
  Deployment's image;
- ``--mode tick``: the first variant runs the Rollouts (``--shards 1``: it takes the Lease and
  ticks them, against the Prometheus stand-in), every rollout kept cycling (an ended one gets a
  new image at once, as the scale benchmark does); the other variants watch the same churn.

With ``--recreate R``, R Rollouts a second (and their target Deployments) are created under
names never used before and deleted again once ``--recreated`` newer ones exist (with what the
controller made for them: the stand-in has no garbage collector): per-key state that is not
dropped with its object grows with the names.

Variants (run side by side against the same API server, so they see the same events):
``base`` (as ``canary controller``), ``trim`` (``malloc_trim(0)`` every ``--trim-every``
seconds), ``arenas8`` (glibc's default arenas: ``MALLOC_ARENA_MAX=8``), ``arenas1``.

Each variant's RSS (/proc VmRSS) is sampled every ``--every`` seconds with the watch events
delivered so far; reported: RSS at start, after the caches' sync, every minute, the peak, and
the slope after ``--warmup`` minutes (least squares) in MiB an hour and MiB per 1,000 watch
events. ``--tracemalloc N`` traces allocations in every child (N frames) and reports the sites
that grew most between the first snapshot after the warmup and the last.

    .venv/bin/python benchmarks/memory_soak.py --quick            # 300 Rollouts, 3 minutes
    nice -n 10 .venv/bin/python benchmarks/memory_soak.py --size 1000 --minutes 20
    nice -n 10 .venv/bin/python benchmarks/memory_soak.py --mode tick --size 300 --minutes 20

It prints a table and rewrites the "memory-soak" section of docs/benchmarks.md (and
docs/benchmarks/memory_soak.png) only with ``--write``; ``--json FILE`` saves the samples.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from memory_soak_report import markdown, plot, top_growth  # noqa: E402
from report import replace_section  # noqa: E402
from scale import (  # noqa: E402
    NAMESPACE,
    WEIGHTS,
    Child,
    console,
    interrupted_as_exit,
    machine,
    memory_kib,
)
from scale_cluster import ROLLOUTS, Cluster, deployment, make_cluster, rollout  # noqa: E402
from scale_gc import FrozenHeap  # noqa: E402

from canary.testing import ApiError  # noqa: E402
from canary.testing.storage import Event  # noqa: E402

VARIANTS: dict[str, dict[str, str]] = {
    "base": {},
    "trim": {"CANARY_SOAK_MALLOC_TRIM": "{trim_every}"},
    "arenas8": {"MALLOC_ARENA_MAX": "8"},
    "arenas1": {"MALLOC_ARENA_MAX": "1"},
}
WATCHED_KINDS = (
    (ROLLOUTS, "Rollout"),
    (ROLLOUTS, "RolloutCommand"),
    ("apps/v1", "Deployment"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("coordination.k8s.io/v1", "Lease"),
    ("networking.istio.io/v1", "VirtualService"),
    ("networking.istio.io/v1", "DestinationRule"),
)
OWNED_KINDS = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("networking.istio.io/v1", "VirtualService"),
    ("networking.istio.io/v1", "DestinationRule"),
)


@dataclass
class Sample:
    t: float
    """Seconds since the children started."""
    rss_mib: float
    events: int
    """Watch events (all kinds) the API server has sent each watcher of the namespace so far."""


@dataclass
class VariantResult:
    name: str
    role: str
    folder: str
    samples: list[Sample] = field(default_factory=list)
    synced_at: float = 0.0
    child_stats: list[dict[str, Any]] = field(default_factory=list)
    growth: list[str] = field(default_factory=list)


@dataclass
class Result:
    mode: str
    size: int
    minutes: float
    churn: float
    recreate: float
    warmup: float
    when: str = ""
    machine: str = ""
    command: str = ""
    events: int = 0
    recreated: int = 0
    variants: list[VariantResult] = field(default_factory=list)


class EventCount:
    """Store events in the namespace of the kinds the controller watches (each of its watches
    decodes every one of its kind's): a store subscriber a kind."""

    def __init__(self, cluster: Cluster) -> None:
        self.api = cluster.api
        self._kinds = [_KindCount(self.api.registry.find_kind(*k).key) for k in WATCHED_KINDS]
        for kind in self._kinds:
            self.api.store.subscribe(kind, None, lambda obj: True)

    @property
    def count(self) -> int:
        return sum(kind.count for kind in self._kinds)

    def close(self) -> None:
        for kind in self._kinds:
            self.api.store.unsubscribe(kind)


class _KindCount:
    def __init__(self, key: Any) -> None:
        self.key, self.count = key, 0

    def push(self, event: Event) -> None:
        if event.obj["metadata"].get("namespace") == NAMESPACE:
            self.count += 1  # (under the store's lock)

    def progress(self, rv: int) -> None:
        pass


class Paced:
    """A thread doing ``_run`` at ``rate`` a second (none at rate 0) until `stop`."""

    def __init__(self, cluster: Cluster, rate: float, name: str) -> None:
        self.cluster, self.rate = cluster, rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Self:
        if self.rate > 0:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        raise NotImplementedError


class Churn(Paced):
    """Rewrites objects at a fixed rate on a thread (watch mode; see the module)."""

    def __init__(self, cluster: Cluster, rate: float) -> None:
        self.writes = 0
        super().__init__(cluster, rate, "soak-churn")

    def _run(self) -> None:
        api, names = self.cluster.api, self.cluster.names
        began, sent = time.monotonic(), 0
        while not self._stop.is_set():
            wait = began + sent / self.rate - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            # after a stall of the machine, on at the rate (no burst to catch up)
            sent = max(sent + 1, int((time.monotonic() - began) * self.rate))
            n = self.writes
            name = names[(n // 3) % len(names)]
            with contextlib.suppress(ApiError, KeyError):
                if n % 3 == 0:
                    status = {
                        "phase": "Progressing",
                        "canaryWeight": 5 * (n % 10),
                        "message": f"{n}",
                    }
                    api.update_status(ROLLOUTS, "Rollout", name, status, NAMESPACE)
                elif n % 30 == 1:
                    self.cluster.rollouts.bump(name)
                else:
                    api.set_deployment_ready(NAMESPACE, name, ready=1 if n % 2 else None)
            self.writes += 1


class Recreate(Paced):
    """New Rollouts under new names at a fixed rate, the oldest deleted (see the module)."""

    def __init__(self, cluster: Cluster, rate: float, kept: int, interval: float) -> None:
        self.kept, self.interval = kept, interval
        self.created = 0
        self._live: deque[str] = deque()
        super().__init__(cluster, rate, "soak-recreate")

    def _run(self) -> None:
        api = self.cluster.api
        while not self._stop.wait(1.0 / self.rate):
            name = f"soak-{self.created:07d}"
            with contextlib.suppress(ApiError):
                api.create(deployment(name, NAMESPACE, "podinfo:soak-1"))
                api.set_deployment_ready(NAMESPACE, name)
                api.create(rollout(name, NAMESPACE, self.interval, WEIGHTS, None))
            self.created += 1
            self._live.append(name)
            while len(self._live) > self.kept:
                self._delete(self._live.popleft())

    def _delete(self, name: str) -> None:
        api = self.cluster.api
        uid = ""
        with contextlib.suppress(ApiError, KeyError):
            uid = str(api.get(ROLLOUTS, "Rollout", name, NAMESPACE)["metadata"]["uid"])
            api.delete(ROLLOUTS, "Rollout", name, NAMESPACE)
        for api_version, kind in OWNED_KINDS:
            with contextlib.suppress(ApiError, KeyError):
                for obj in api.list(api_version, kind, NAMESPACE):
                    meta = obj["metadata"]
                    owners = {o.get("uid") for o in meta.get("ownerReferences") or []}
                    if (uid and uid in owners) or meta["name"] == name:
                        api.delete(api_version, kind, meta["name"], NAMESPACE)


class Sampler:
    """Each child's RSS (and the watch events so far) every ``every`` seconds, on a thread."""

    def __init__(
        self,
        variants: list[VariantResult],
        children: dict[str, Child],
        events: EventCount,
        began: float,
        every: float,
    ) -> None:
        self.variants, self.children, self.events = variants, children, events
        self.began, self.every = began, every
        self.failed = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        taken = 0
        while not self._stop.is_set():
            now = time.monotonic() - self.began
            for variant in self.variants:
                child = self.children[variant.folder]
                if not child.alive():
                    self.failed = f"{variant.name} exited: {child.stderr_tail()}"
                    return
                mib = memory_kib(child.pid) / 1024
                variant.samples.append(Sample(now, mib, self.events.count))
            # the next multiple of ``every`` (after a stall of the machine: no burst of samples)
            taken = max(taken + 1, int((time.monotonic() - self.began) / self.every) + 1)
            self._stop.wait(max(0.0, self.began + taken * self.every - time.monotonic()))


class SoakChild(Child):
    """`scale.Child` with an environment of its own."""

    def __init__(self, argv: list[str], stderr: Path, what: str, env: dict[str, str]) -> None:
        self.what = what
        self._stderr_path = stderr
        self._stderr = stderr.open("wb")
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL, env=env
        )


def start_child(
    variant: str,
    role: str,
    folder: Path,
    kubeconfig: Path,
    prom_url: str,
    args: argparse.Namespace,
) -> Child:
    folder.mkdir()
    argv = [
        sys.executable,
        str(HERE / "memory_soak_child.py"),
        *("--stats", str(folder / "stats.jsonl"), "--every", f"{args.every:g}"),
        *("--types-every", f"{args.types_every:g}"),
        *("--snapshot-every", f"{args.snapshot_every:g}"),
        *("--kubeconfig", str(kubeconfig), "--prometheus", prom_url),
        *("--identity", folder.name, "--shards", "1", "--workers", str(args.workers)),
        *("--out", str(folder / "replica.json"), "--log-file", str(folder / "replica.log")),
    ]
    if role == "watch":
        argv.append("--observe-only")
    env = dict(os.environ)
    for key, value in VARIANTS[variant].items():
        env[key] = value.format(trim_every=args.trim_every)
    if args.tracemalloc:
        env["CANARY_SOAK_TRACEMALLOC"] = str(args.tracemalloc)
    return SoakChild(argv, folder / "stderr", variant, env)


def wait_until_initialized(cluster: Cluster, size: int, children: dict[str, Child]) -> None:
    """Every Rollout Initialized (then a new image starts a rollout, as in the scale runs)."""
    deadline = time.monotonic() + 120 + 0.5 * size
    while cluster.rollouts.count("Initialized") < size:
        dead = [name for name, child in children.items() if not child.alive()]
        if dead or time.monotonic() > deadline:
            raise RuntimeError(f"the Rollouts were not all Initialized (exited: {dead})")
        time.sleep(0.2)


def run(args: argparse.Namespace, work: Path) -> Result:
    result = Result(
        args.mode,
        args.size,
        args.minutes,
        args.churn,
        args.recreate,
        args.warmup,
        machine=machine(),
    )
    result.when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cluster = make_cluster(
        NAMESPACE,
        args.size,
        work / "weights",
        interval=args.interval,
        weights=WEIGHTS,
        judge=None,
        ready_delay=args.ready_delay,
    )
    frozen = FrozenHeap().start()  # the stand-in's collector kept from pausing it (scale_gc)
    events = EventCount(cluster)
    churn = Churn(cluster, args.churn if args.mode == "watch" else 0.0)
    recreate = Recreate(cluster, args.recreate, args.recreated, args.interval)
    children: dict[str, Child] = {}
    try:
        kubeconfig = cluster.api.kubeconfig(work / "kubeconfig", namespace=NAMESPACE)
        prom_url = "http://127.0.0.1:9"
        if args.mode == "tick":
            prometheus = Child(
                [
                    sys.executable,
                    str(HERE / "scale_prometheus.py"),
                    "--weights",
                    str(work / "weights"),
                ],
                work / "prometheus.err",
                "the Prometheus stand-in",
            )
            children["prometheus"] = prometheus
            prom_url = "http://" + prometheus.first_line(30).split()[1]
        began = time.monotonic()
        for index, variant in enumerate(args.variants):
            role = "tick" if args.mode == "tick" and index == 0 else "watch"
            folder = work / f"{index}-{variant}"
            children[folder.name] = start_child(variant, role, folder, kubeconfig, prom_url, args)
            result.variants.append(VariantResult(variant, role, folder.name))
        sampler = Sampler(result.variants, children, events, began, args.every).start()
        for variant in result.variants:
            children[variant.folder].first_line(300)
            variant.synced_at = time.monotonic() - began
        if args.mode == "tick":
            wait_until_initialized(cluster, args.size, children)
            for name in cluster.names:
                cluster.rollouts.bump(name)
            cluster.rollouts.rebump = True
        churn.start()
        recreate.start()
        console.log(f"{len(children)} processes started; soak {args.minutes:g} min")
        end = began + 60 * args.minutes
        while time.monotonic() < end:
            time.sleep(min(60.0, max(0.0, end - time.monotonic())))
            if sampler.failed:
                raise RuntimeError(sampler.failed)
            rss = ", ".join(
                f"{v.name} {v.samples[-1].rss_mib:.0f}" for v in result.variants if v.samples
            )
            console.log(f"RSS MiB {rss}; {events.count:,} events, {recreate.created} recreated")
        sampler.stop()
        result.events, result.recreated = events.count, recreate.created
    finally:
        churn.stop()
        recreate.stop()
        for child in children.values():
            child.stop(60)
        events.close()
        frozen.stop()
        cluster.close()
    for variant in result.variants:
        stats = work / variant.folder / "stats.jsonl"
        if stats.exists():
            variant.child_stats = [json.loads(line) for line in stats.read_text().splitlines()]
        variant.growth = top_growth(
            work / variant.folder,
            args.warmup * 60 / args.snapshot_every if args.snapshot_every else 0,
        )
    return result


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("watch", "tick"), default="watch")
    parser.add_argument("--size", type=int, default=1000, help="Rollouts (default 1,000)")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="minutes before the slope")
    parser.add_argument("--quick", action="store_true", help="300 Rollouts, 3 minutes")
    parser.add_argument("--churn", type=float, default=150.0, help="writes a second (watch)")
    parser.add_argument("--recreate", type=float, default=0.0, help="new Rollouts a second")
    parser.add_argument("--recreated", type=int, default=20, help="recreated ones kept alive")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--ready-delay", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument(
        "--variants", default="base", help=f"comma-separated: {', '.join(VARIANTS)}"
    )
    parser.add_argument("--trim-every", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--tracemalloc", type=int, default=0, help="frames (0: off)")
    parser.add_argument("--snapshot-every", type=float, default=0.0)
    parser.add_argument("--types-every", type=float, default=0.0)
    parser.add_argument("--write", action="store_true", help="rewrite docs/benchmarks.md's section")
    parser.add_argument("--json", type=Path, help="write the samples here")
    parser.add_argument("--report", type=Path, help="print (--write: write up) a --json run")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.minutes, args.warmup = 300, 3.0, 1.0
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    if args.tracemalloc and not args.snapshot_every:
        args.snapshot_every = 60.0
    return args


def load(path: Path) -> Result:
    """A run saved with ``--json``."""
    saved = json.loads(path.read_text(encoding="utf-8"))
    variants = [
        VariantResult(**{**v, "samples": [Sample(**s) for s in v["samples"]]})
        for v in saved.pop("variants")
    ]
    return Result(**saved, variants=variants)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.report:  # a saved run, written up again
        result = load(args.report)
        args.json = None
    else:
        with interrupted_as_exit(), tempfile.TemporaryDirectory(prefix="canary-soak-") as folder:
            result = run(args, Path(folder))
        result.command = " ".join([".venv/bin/python benchmarks/memory_soak.py", *argv])
    text = markdown(result)
    console.print(text)
    for variant in result.variants:
        if variant.growth:
            console.print(f"\n{variant.name}: allocation sites that grew most after the warmup")
            console.print("\n".join(variant.growth))
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=1), encoding="utf-8")
    if args.write:
        replace_section("memory-soak", text)
        plot(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
