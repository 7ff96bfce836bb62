"""Sharded controller scale: three replica processes sharing the Rollouts (``--shards 3``), one
of them SIGKILLed; and what watching every object costs a replica that owns a third of them.

One run, built from the scale benchmark's parts (benchmarks/scale.py, scale_cluster.py,
scale_prometheus.py; imported, not changed):

- the test API server in this process with N Deployments and Rollouts (Istio, weights
  5/10/20/50, ``--interval``), the fake kubelet, the Prometheus stand-in in its own process;
- three replicas, each ``canary controller`` as the CLI builds it (``--shards 3``, Lease
  timings as the chart's defaults unless given), each in its own process (this file, run as
  ``replica``), its requests carrying its identity in their User-Agent, its ticks timed as
  benchmarks/scale_controller.py times them;
- a fourth process that only watches (``replica --observe-only``: the controller's watches,
  caches and listeners, no shard): the CPU every replica spends on the objects of the other
  shards, the cost of watching all and filtering rather than label-selecting a shard.

Once every Rollout is Initialized and each replica holds one shard, every image changes, then
again spread over a cycle (``--spread``), and ended rollouts get a new image at once (as
scale.py does).
The steady state is measured for ``--duration`` seconds: per replica its ticks, lateness p50
and p99, CPU cores and CPU ms per tick, peak RSS. Then one replica is SIGKILLed: the takeover
time (kill -> another replica holds its shard, from the Lease; and -> the first status write
of one of its Rollouts by another replica, from the request log), then ``--after`` seconds of
the survivors. Checked throughout: no write of a Rollout's objects (the Rollout and its
status, its Deployments, Services and routes) by a replica that did not hold the Rollout's
shard Lease at that point of the API server's request log (canary.testing.lease_audit: who
wrote what, by User-Agent), no step skipped or repeated (every stored version of every status:
within a revision the weight only moves to the next step, or to 0), and the Step Events the
statuses' outboxes called for against those recorded (canary.testing.event_audit): recorded,
still in a Rollout's outbox when the replicas stopped (owed: the Rollout's next tick records
it), or lost.

    .venv/bin/python benchmarks/scale_sharded.py --quick          # 3 x 20 Rollouts, ~2 min
    .venv/bin/python benchmarks/scale_sharded.py --size 300       # ~4 min
    .venv/bin/python benchmarks/scale_sharded.py --size 3000      # the issue's target

It prints a table and rewrites the "scale-sharded" section of docs/benchmarks.md unless
``--no-write``; ``--json FILE`` saves the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report import replace_section  # noqa: E402
from scale import (  # noqa: E402
    NAMESPACE,
    WEIGHTS,
    Child,
    add_workload_arguments,
    console,
    cpu_seconds,
    machine,
    memory_kib,
    percentile,
    spread_of,
    spread_rollouts,
)
from scale_cluster import Cluster, make_cluster  # noqa: E402
from scale_gc import FrozenHeap, PauseLog  # noqa: E402

from canary.testing import lease_audit  # noqa: E402
from canary.testing.event_audit import OutboxAudit  # noqa: E402
from canary.testing.lease_audit import writes_outside_leases  # noqa: E402
from canary.testing.storage import Event  # noqa: E402

SHARDS = 3
AGENT = "canary-controller/"
LEASE = "canary-controller"


# --- a replica (run as `scale_sharded.py replica ...`) -------------------------------------------


def replica_main(argv: list[str]) -> int:
    import logging

    from kubernetes import config
    from scale_controller import TickLog, _vmhwm_kib

    from canary.analysis.prometheus import PrometheusProvider, PrometheusSettings
    from canary.cli.collector import freeze_startup_heap, limit_malloc_arenas, tune_collector
    from canary.cli.controller import quiet_request_logs
    from canary.controller import Controller, ControllerSettings, LeaseSettings
    from canary.model.duration import parse_duration
    from canary.notify import NotifyConfig

    parser = argparse.ArgumentParser(prog="scale_sharded.py replica")
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--prometheus", required=True)
    parser.add_argument("--identity", required=True)
    parser.add_argument("--shards", type=int, default=SHARDS)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--lease-duration", default="15s")
    parser.add_argument("--renew-deadline", default="10s")
    parser.add_argument("--retry-period", default="2s")
    parser.add_argument("--observe-only", action="store_true")
    parser.add_argument("--cpus", help="run on these CPUs only (comma-separated numbers)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--log-file", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.cpus:  # before the controller starts a thread: its threads inherit the mask
        os.sched_setaffinity(0, {int(cpu) for cpu in args.cpus.split(",")})
    logging.basicConfig(
        filename=str(args.log_file),
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    quiet_request_logs("info")  # as `canary controller` does
    tune_collector()
    limit_malloc_arenas()
    api_client = config.new_client_from_config(config_file=str(args.kubeconfig))  # type: ignore[no-untyped-call]
    api_client.user_agent = f"{AGENT}{args.identity}"
    controller = Controller(
        api_client,
        ControllerSettings(
            namespaces=(NAMESPACE,),
            identity=args.identity,
            lease=LeaseSettings(
                namespace=NAMESPACE,
                name=LEASE,
                lease_duration=parse_duration(args.lease_duration),
                renew_deadline=parse_duration(args.renew_deadline),
                retry_period=parse_duration(args.retry_period),
            ),
            shards=args.shards,
            metrics_address=("127.0.0.1", 0),
            workers=args.workers,
            notify=NotifyConfig(),
        ),
        provider=PrometheusProvider(PrometheusSettings(url=args.prometheus)),
    )
    log = TickLog.attach(controller)

    def dump(*_: object) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        with log.lock:
            ticks = list(log.ticks)
        body = {
            "ticks": ticks,
            "maxrss_kib": usage.ru_maxrss,
            "vmhwm_kib": _vmhwm_kib(),
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
        }
        partial = args.out.with_suffix(".part")
        partial.write_text(json.dumps(body), encoding="utf-8")
        partial.rename(args.out)

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGUSR1, dump)  # the benchmark's last look before it SIGKILLs this one
    if args.observe_only:  # the watches, caches and listeners only: never holds a shard
        for reflector in controller.reflectors:
            reflector.start()
    else:
        controller.start()
    while not stopping.is_set() and not controller.wait_synced(0.2):
        pass
    freeze_startup_heap()
    print("READY", flush=True)
    while not stopping.wait(0.5):
        pass
    if args.observe_only:
        for reflector in controller.reflectors:
            reflector.stop(1.0)
    else:
        controller.stop()
    dump()
    return 0


# --- auditing the run, in the API server's process ---------------------------------------------


class StepAudit:
    """Every stored version of every Rollout's status (a store subscriber): within a revision
    the canary weight only moves to the next step of the schedule or to 0; counts the steps
    taken, the skips and repeats, and the watch events each replica has to decode."""

    def __init__(self, cluster: Cluster) -> None:
        self.api = cluster.api
        self.key = self.api.registry.find_kind("canary.dev/v1alpha1", "Rollout").key
        self.lock = threading.Lock()
        self.last: dict[str, tuple[str, int]] = {}
        self.steps = 0
        self.violations: list[str] = []
        self.events = 0
        self.api.store.subscribe(self, None, lambda obj: True)

    def push(self, event: Event) -> None:
        if event.key != self.key or event.type == "DELETED":
            return
        name = str(event.obj["metadata"]["name"])
        status = event.obj.get("status") or {}
        revision = str(status.get("canaryRevision") or "")
        weight = int(status.get("canaryWeight") or 0)
        with self.lock:
            self.events += 1
            before = self.last.get(name)
            self.last[name] = (revision, weight)
            if before is None or before[0] != revision or before[1] == weight:
                return
            schedule = [0, *WEIGHTS]
            if weight == 0:
                return  # promoted or rolled back
            following = schedule[schedule.index(before[1]) + 1 :] if before[1] in schedule else []
            if following and weight == following[0]:
                self.steps += 1
                return
            self.violations.append(f"{name} {revision}: {before[1]} -> {weight}")

    def progress(self, rv: int) -> None:
        pass

    def close(self) -> None:
        self.api.store.unsubscribe(self)


class EventCount:
    """Watch events of a kind in the namespace (what every replica's watch decodes)."""

    def __init__(self, cluster: Cluster, api_version: str, kind: str) -> None:
        self.api = cluster.api
        self.key = self.api.registry.find_kind(api_version, kind).key
        self.count = 0
        self.api.store.subscribe(self, None, lambda obj: True)

    def push(self, event: Event) -> None:
        if event.key == self.key:
            self.count += 1  # (under the store's lock)

    def progress(self, rv: int) -> None:
        pass

    def close(self) -> None:
        self.api.store.unsubscribe(self)


class LeaseLog:
    """Every stored version of the shards' Leases: (holder, renewTime, acquireTime) by name."""

    def __init__(self, cluster: Cluster) -> None:
        self.api = cluster.api
        self.key = self.api.registry.find_kind("coordination.k8s.io/v1", "Lease").key
        self.lock = threading.Lock()
        self.seen: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        self.api.store.subscribe(self, None, lambda obj: True)

    def push(self, event: Event) -> None:
        if event.key != self.key or event.type == "DELETED":
            return
        spec = event.obj.get("spec") or {}
        version = (
            str(spec.get("holderIdentity") or ""),
            str(spec.get("renewTime") or ""),
            str(spec.get("acquireTime") or ""),
        )
        with self.lock:
            self.seen[str(event.obj["metadata"]["name"])].append(version)

    def progress(self, rv: int) -> None:
        pass

    def close(self) -> None:
        self.api.store.unsubscribe(self)

    def acquired(self, name: str, dead: str) -> datetime | None:
        """The acquireTime of the first holder of ``name`` after ``dead``."""
        with self.lock:
            versions = list(self.seen[name])
        taken = [
            acquired
            for i, (holder, _, acquired) in enumerate(versions)
            if holder not in ("", dead) and any(v[0] == dead for v in versions[:i])
        ]
        return parse(taken[0]) if taken else None

    def handover(self, name: str, dead: str) -> float | None:
        """Seconds from ``dead``'s last renewal of ``name`` to the next holder's acquireTime."""
        with self.lock:
            versions = list(self.seen[name])
        last = [renew for holder, renew, _ in versions if holder == dead]
        taken = [
            acquired
            for i, (holder, _, acquired) in enumerate(versions)
            if holder not in ("", dead) and any(v[0] == dead for v in versions[:i])
        ]
        if not last or not taken:
            return None
        return (parse(taken[0]) - parse(last[-1])).total_seconds()


def status_writers(cluster: Cluster, since: int = 0) -> dict[str, list[str]]:
    return lease_audit.status_writers(cluster.api.requests_by_agent, NAMESPACE, since, AGENT)


def guard_of(names: set[str]) -> Callable[[str, str], str | None]:
    """The shard Lease a write of a Rollout, its Deployments, Services or routes needs."""
    return lease_audit.rollout_guard(
        NAMESPACE,
        lambda name: f"{LEASE}-shard-{shard_of(NAMESPACE, name)}" if name in names else None,
    )


def holders(cluster: Cluster, shards: int = SHARDS) -> dict[int, str]:
    """Each shard's Lease holder now (shards whose Lease does not exist yet left out)."""
    found = {}
    for i in range(shards):
        try:
            lease = cluster.api.get(
                "coordination.k8s.io/v1", "Lease", f"{LEASE}-shard-{i}", NAMESPACE
            )
        except Exception:
            continue
        found[i] = str((lease.get("spec") or {}).get("holderIdentity") or "")
    return found


# --- the run -----------------------------------------------------------------------------------


@dataclass
class ReplicaResult:
    identity: str
    shards: list[int] = field(default_factory=list)
    ticks: int = 0
    early_ticks: int = 0
    lateness_p50: float = float("nan")
    lateness_p99: float = float("nan")
    cores: float = 0.0
    cpu_ms_per_tick: float = 0.0
    peak_rss_mib: float = 0.0
    lateness_p99_after: float = float("nan")
    """After the kill, with its share of the dead replica's Rollouts (survivors only)."""


@dataclass
class Result:
    size: int
    interval: float
    duration: float
    lease_duration: float
    replicas: list[ReplicaResult] = field(default_factory=list)
    observer_cores: float = 0.0
    observer_rss_mib: float = 0.0
    watch_events_per_second: float = 0.0
    apiserver_cores: float = 0.0
    apiserver_gc_max: float = 0.0
    """The API server stand-in's longest collector pause in the steady window (scale_gc.py)."""
    spread_seconds: float = 0.0
    killed: str = ""
    takeover_lease_seconds: float | None = None
    takeover_acquire_seconds: float | None = None
    takeover_write_seconds: float | None = None
    lease_gap_seconds: float | None = None
    """The dead holder's last renewTime to the taker's acquireTime (the Lease's own clock)."""
    unguarded: list[str] = field(default_factory=list)
    """Writes of a Rollout's objects by a replica that did not hold its shard's Lease then."""
    audited_writes: int = 0
    step_violations: list[str] = field(default_factory=list)
    steps: int = 0
    step_events: int = 0
    """Step Events recorded that an outbox called for."""
    step_events_owed: int = 0
    """Step Events the statuses' outboxes called for (one a step)."""
    step_events_pending: int = 0
    """Not recorded, but still in the Rollout's outbox when the replicas stopped: owed."""
    step_events_lost: int = 0
    """Not recorded, and the outbox that called for it overwritten."""
    step_events_unexpected: int = 0
    """Step Events recorded that no outbox called for (a step's second Event)."""
    succeeded: int = 0
    problems: list[str] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)
    """The machine's 1-minute load average before and after the steady window."""
    when: str = ""


def start_prometheus(work: Path, args: argparse.Namespace) -> Child:
    """The Prometheus stand-in (benchmarks/scale_prometheus.py), ``--rps`` a service."""
    return Child(
        [
            *(sys.executable, str(HERE / "scale_prometheus.py")),
            *("--weights", str(work / "weights"), "--rps", str(args.rps)),
        ],
        work / "prometheus.err",
        "the Prometheus stand-in",
    )


def start_replica(
    identity: str,
    kubeconfig: Path,
    prom_url: str,
    folder: Path,
    args: argparse.Namespace,
    cpus: set[int] | None = None,
) -> Child:
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "replica",
        *("--kubeconfig", str(kubeconfig), "--prometheus", prom_url, "--identity", identity),
        *("--workers", str(args.workers), "--out", str(folder / f"{identity}.json")),
        *("--shards", str(getattr(args, "shards", SHARDS))),
        *("--log-file", str(folder / f"{identity}.log")),
        *("--lease-duration", f"{args.lease_duration:g}s"),
        *("--renew-deadline", f"{args.renew_deadline:g}s"),
        *("--retry-period", f"{args.retry_period:g}s"),
    ]
    if identity == "observer":
        argv.append("--observe-only")
    if cpus:
        argv += ["--cpus", ",".join(map(str, sorted(cpus)))]
    return Child(argv, folder / f"{identity}.err", identity)


def wait(what: str, done: Any, timeout: float, children: list[Child]) -> float:
    start = time.monotonic()
    while not done():
        dead = [c.what for c in children if not c.alive()]
        if dead:
            raise RuntimeError(f"{dead} exited while waiting for {what}")
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.1)
    return time.monotonic() - start


def late(ticks: list[list[Any]], start: float, end: float) -> list[float]:
    return [max(0.0, t[3] - t[1]) for t in ticks if start <= t[3] < end]


def run(args: argparse.Namespace, work: Path) -> Result:
    result = Result(args.size, args.interval, args.duration, args.lease_duration)
    cluster = make_cluster(
        NAMESPACE,
        args.size,
        work / "weights",
        interval=args.interval,
        weights=WEIGHTS,
        judge=None,
        ready_delay=args.ready_delay,
    )
    audit = StepAudit(cluster)
    owed = OutboxAudit(cluster.api, NAMESPACE)
    leases = LeaseLog(cluster)
    deployments = EventCount(cluster, "apps/v1", "Deployment")
    children: list[Child] = []
    stand_in_pauses = PauseLog().start()
    frozen = FrozenHeap().start()
    try:
        kubeconfig = cluster.api.kubeconfig(work / "kubeconfig", namespace=NAMESPACE)
        prometheus = start_prometheus(work, args)
        children.append(prometheus)
        prom_url = "http://" + prometheus.first_line(30).split()[1]
        names = ["replica-a", "replica-b", "replica-c", "observer"]
        replicas = {n: start_replica(n, kubeconfig, prom_url, work, args) for n in names}
        children += replicas.values()
        for child in replicas.values():
            child.first_line(120)
        actors = names[:3]
        wait(
            "one shard each",
            lambda: sorted(holders(cluster).values()) == sorted(actors),
            120,
            children,
        )
        wait(
            f"{args.size} Rollouts Initialized",
            lambda: cluster.rollouts.count("Initialized") == args.size,
            120 + 0.5 * args.size,
            children,
        )
        console.log(f"{args.size} rollouts initialized on 3 replicas; new images")
        for name in cluster.names:
            cluster.rollouts.bump(name)
        cluster.rollouts.rebump = True
        wait(
            "every canary taking traffic",
            lambda: cluster.rollouts.taking_traffic() == args.size,
            max(60.0, 6 * args.interval) + 0.1 * args.size,
            children,
        )
        result.spread_seconds = spread_of(args)
        spread_rollouts(cluster, args.size, result.spread_seconds, args)

        owned = holders(cluster)
        pids = {n: c.pid for n, c in replicas.items()}
        console.log(f"steady state for {args.duration:g}s")
        load0 = os.getloadavg()[0]
        t0, cpu0 = time.time(), {n: cpu_seconds(p) for n, p in pids.items()}
        api0, events0 = cpu_seconds(os.getpid()), audit.events + deployments.count
        time.sleep(args.duration)
        t1, cpu1 = time.time(), {n: cpu_seconds(p) for n, p in pids.items()}
        result.load = (load0, os.getloadavg()[0])
        result.when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        result.apiserver_cores = (cpu_seconds(os.getpid()) - api0) / (t1 - t0)
        result.apiserver_gc_max = max(stand_in_pauses.between(t0, t1), default=0.0)
        result.watch_events_per_second = (audit.events + deployments.count - events0) / (t1 - t0)
        rss = {n: memory_kib(p, "VmHWM") / 1024 for n, p in pids.items()}
        result.observer_cores = (cpu1["observer"] - cpu0["observer"]) / (t1 - t0)
        result.observer_rss_mib = rss["observer"]

        victim = actors[0]
        (dead_shard,) = [i for i, h in owned.items() if h == victim]
        result.killed = victim
        replicas[victim].process.send_signal(signal.SIGUSR1)  # its tick log, then the kill
        wait("the victim's tick log", (work / f"{victim}.json").exists, 30, [])
        killed_at_request = len(cluster.api.requests)
        replicas[victim].process.send_signal(signal.SIGKILL)
        killed, killed_wall = time.monotonic(), datetime.now(UTC)
        replicas[victim].process.wait(10)
        console.log(f"killed {victim} (shard {dead_shard}); waiting for the takeover")
        result.takeover_lease_seconds = wait(
            "the dead replica's shard taken",
            lambda: holders(cluster).get(dead_shard) not in ("", victim),
            4 * args.lease_duration + 30,
            [c for n, c in replicas.items() if n != victim],
        )
        victims = {n for n in cluster.names if shard_of(NAMESPACE, n) == dead_shard}

        def written() -> bool:
            after = status_writers(cluster, killed_at_request)
            return any(n in victims and w for n, w in after.items())

        wait("a status write of the dead replica's Rollouts", written, 120, [])
        result.takeover_write_seconds = time.monotonic() - killed
        result.lease_gap_seconds = leases.handover(f"{LEASE}-shard-{dead_shard}", victim)
        acquired = leases.acquired(f"{LEASE}-shard-{dead_shard}", victim)
        if acquired is not None:
            result.takeover_acquire_seconds = (acquired - killed_wall).total_seconds()
        after_start = time.time()
        time.sleep(args.after)
        after_end = time.time()
        cluster.rollouts.rebump = False
        for name in [*actors[1:], "observer"]:
            replicas[name].stop()
        for name in actors:
            out = work / f"{name}.json"
            ticks = json.loads(out.read_text())["ticks"] if out.exists() else []
            r = ReplicaResult(name, sorted(i for i, h in owned.items() if h == name))
            steady = [t for t in ticks if t0 <= t[3] < t1]
            lateness = late(ticks, t0, t1)
            r.ticks = len(steady)
            r.early_ticks = sum(1 for t in steady if t[5])
            r.lateness_p50 = percentile(lateness, 50)
            r.lateness_p99 = percentile(lateness, 99)
            r.cores = (cpu1[name] - cpu0[name]) / (t1 - t0)
            r.cpu_ms_per_tick = 1000 * (cpu1[name] - cpu0[name]) / max(1, r.ticks)
            r.peak_rss_mib = rss[name]
            r.lateness_p99_after = percentile(late(ticks, after_start, after_end), 99)
            result.replicas.append(r)
        log = cluster.api.requests_by_agent
        result.unguarded = writes_outside_leases(log, guard_of(set(cluster.names)))[:20]
        result.audited_writes = sum(
            1 for r in log if r[1] != "GET" and guard_of(set(cluster.names))(r[1], r[2])
        )
        time.sleep(2)
        audit.close()
        owed.close()
        leases.close()
        deployments.close()
        result.step_violations = audit.violations[:20]
        result.steps = audit.steps
        tally = owed.tally()  # the replicas stopped: their queued Events are in the outboxes
        result.step_events = tally.recorded
        result.step_events_owed = tally.owed
        result.step_events_pending = tally.pending
        result.step_events_lost = tally.lost
        result.step_events_unexpected = tally.unexpected + tally.collisions
        result.succeeded = cluster.rollouts.tally.succeeded
    finally:
        for child in reversed(children):
            child.stop(20)
        cluster.close()
        frozen.stop()
        stand_in_pauses.stop()
    return result


def shard_of(namespace: str, name: str) -> int:
    from canary.controller.shards import shard_of as of

    return of(namespace, name, SHARDS)


def parse(stamp: object) -> datetime:
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))


def watch_memory(sizes: list[int], work: Path) -> list[tuple[int, float, float]]:
    """(Rollouts, peak RSS MiB, seconds to list and sync) of a replica that only watches, with
    ``size`` Rollouts and their Deployments in the namespace: what keeping every object in the
    caches costs a replica, whatever share of them it owns."""
    found = []
    for size in sizes:
        folder = work / f"memory-{size}"
        folder.mkdir()
        cluster = make_cluster(
            NAMESPACE,
            size,
            folder / "weights",
            interval=10.0,
            weights=WEIGHTS,
            judge=None,
            ready_delay=2.0,
        )
        try:
            kubeconfig = cluster.api.kubeconfig(folder / "kubeconfig", namespace=NAMESPACE)
            args = argparse.Namespace(
                workers=8, lease_duration=15.0, renew_deadline=10.0, retry_period=2.0
            )
            observer = start_replica("observer", kubeconfig, "http://127.0.0.1:9", folder, args)
            started = time.monotonic()
            observer.first_line(600)
            synced = time.monotonic() - started
            time.sleep(2)
            found.append((size, memory_kib(observer.pid, "VmHWM") / 1024, synced))
            console.log(f"watch-only at {size:,} Rollouts: {found[-1][1]:.0f} MiB")
            observer.stop(20)
        finally:
            cluster.close()
    return found


# --- output ------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{value:.{digits}f}"


def markdown(result: Result, args: argparse.Namespace) -> str:
    per = result.size // SHARDS
    lines = [
        "## Sharded controller",
        "",
        "Three replica processes share the Rollouts in three shards (a Lease each: "
        'docs/controller.md, "Sharding"), one is SIGKILLed after the steady window. Setup '
        'as in "Controller scale" above (the same API server stand-in, kubelet, Prometheus '
        "stand-in, rollouts kept cycling); per replica its ticks, their lateness (from its "
        "scheduler), its CPU (/proc) and peak RSS (VmHWM). A fourth process only "
        "watches (the controller's watches, caches and listeners, no shard): the CPU and memory "
        "every replica spends on seeing all objects rather than its shard's. The audit replays "
        "the API server's request log (who wrote what, by User-Agent) against the shard "
        "Leases' writes; the steps come from every stored version of every status.",
        "",
        f"`{' '.join(['.venv/bin/python benchmarks/scale_sharded.py', *sys.argv[1:]])}` "
        f"— {result.when}, {machine()}, machine load {result.load[0]:.1f} / "
        f"{result.load[1]:.1f} (1-minute average before / after the window: the machine is "
        f"shared); {result.size:,} Rollouts ({per:,} a shard), 3 replica processes "
        f"`--shards 3` and a watch-only observer, the API server stand-in in the benchmark's "
        f"process, {args.rps:g} requests a second a service, "
        f"analysis every {result.interval:g} s (the rollouts' phases spread over "
        f"{result.spread_seconds:g} s, about one rollout's cycle), leases "
        f"{result.lease_duration:g} s / {args.renew_deadline:g} s / {args.retry_period:g} s, "
        f"{result.duration:g} s steady.",
        "",
        "| replica | shards | ticks | early | lateness p50 s | p99 s | p99 after the kill s "
        "| cores | CPU ms / tick | peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result.replicas:
        dead = " (killed)" if r.identity == result.killed else ""
        lines.append(
            f"| {r.identity}{dead} | {','.join(map(str, r.shards))} | {r.ticks} | "
            f"{r.early_ticks} | {fmt(r.lateness_p50, 3)} | {fmt(r.lateness_p99, 3)} | "
            f"{fmt(r.lateness_p99_after, 3)} | {fmt(r.cores)} | {fmt(r.cpu_ms_per_tick, 1)} | "
            f"{fmt(r.peak_rss_mib, 0)} |"
        )
    lines += [
        "",
        "| | |",
        "|---|---:|",
        f"| watch-only observer (all objects, no shard): cores | {fmt(result.observer_cores, 3)} |",
        f"| observer peak RSS MiB | {fmt(result.observer_rss_mib, 0)} |",
        f"| Rollout and Deployment watch events a second (each replica decodes all) | "
        f"{fmt(result.watch_events_per_second, 1)} |",
        f"| API server stand-in: cores | {fmt(result.apiserver_cores)} |",
        f"| API server stand-in: longest collector pause in the window, ms | "
        f"{1000 * result.apiserver_gc_max:.0f} |",
        f"| takeover: kill -> shard Lease taken (seen by polling it every 0.1 s), s | "
        f"{fmt(result.takeover_lease_seconds, 1)} |",
        f"| takeover: kill -> the taker's acquireTime, s | "
        f"{fmt(result.takeover_acquire_seconds, 2)} |",
        f"| takeover: kill -> first status write by the taker, s | "
        f"{fmt(result.takeover_write_seconds, 1)} |",
        f"| dead holder's last renewal -> taker's acquireTime, s | "
        f"{fmt(result.lease_gap_seconds, 2)} |",
        f"| writes of a Rollout's objects audited / by a replica without its shard's Lease | "
        f"{result.audited_writes:,} / {len(result.unguarded)} |",
        f"| steps taken (status versions) / skipped or repeated | {result.steps} / "
        f"{len(result.step_violations)} |",
        f"| Step Events owed (one a step) / recorded / still in an outbox when the replicas "
        f"stopped / lost / recorded twice or uncalled for | {result.step_events_owed} / "
        f"{result.step_events} / {result.step_events_pending} / {result.step_events_lost} / "
        f"{result.step_events_unexpected} |",
        f"| rollouts promoted | {result.succeeded} |",
    ]
    for problem in result.problems:
        lines.append(f"\n**Problem:** {problem}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["replica"]:
        return replica_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=300, help="Rollouts in all (default 300)")
    parser.add_argument("--quick", action="store_true", help="60 Rollouts, short windows")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=60.0, help="steady seconds")
    add_workload_arguments(parser)
    parser.add_argument("--after", type=float, default=30.0, help="seconds after the takeover")
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--lease-duration", type=float, default=15.0)
    parser.add_argument("--renew-deadline", type=float, default=10.0)
    parser.add_argument("--retry-period", type=float, default=2.0)
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--watch-memory",
        help="only measure a watch-only replica's peak RSS at these numbers of Rollouts "
        "(comma-separated), print them and exit",
    )
    args = parser.parse_args(argv)
    if args.watch_memory:
        with tempfile.TemporaryDirectory(prefix="canary-sharded-") as folder:
            sizes = [int(n) for n in args.watch_memory.split(",")]
            rows = watch_memory(sizes, Path(folder))
        text = "\n".join(
            [
                "### What watching every object costs a replica in memory",
                "",
                f"`{' '.join(['.venv/bin/python benchmarks/scale_sharded.py', *argv])}` — "
                f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}, {machine()}: a replica that only "
                "watches (no shard, no tick) with N Rollouts and their target Deployments in "
                "its namespace, its peak RSS (VmHWM) once its caches are synced.",
                "",
                "| Rollouts | peak RSS MiB | seconds to list and sync |",
                "|---:|---:|---:|",
                *(f"| {size:,} | {rss:.0f} | {synced:.1f} |" for size, rss, synced in rows),
            ]
        )
        console.print(text)
        if not args.no_write:
            replace_section("scale-sharded-watch-memory", text)
        return 0
    if args.quick:
        args.size, args.duration, args.after = 60, 20.0, 10.0
    with tempfile.TemporaryDirectory(prefix="canary-sharded-") as folder:
        result = run(args, Path(folder))
    text = markdown(result, args)
    console.print(text)
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2), encoding="utf-8")
    if not args.no_write:
        replace_section("scale-sharded", text)
    bad = (
        result.unguarded
        or result.step_violations
        or result.step_events_lost
        or result.step_events_unexpected
        or result.step_events_owed != result.steps
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
