"""One replica of a sharded controller, measured on cores it does not share with the others:
the per-replica lateness of N replicas x M Rollouts on a machine too small to run them all.

Issue #16's target is three replicas with 3,000 Rollouts, each replica on time (p99 lateness
under 1 s). Three replicas and the stand-ins do not fit two cores (docs/benchmarks.md,
"Sharded controller"); on a cluster each replica has cores of its own (the chart spreads
them over nodes). So this run keeps what one replica does and sees, and nothing else:

- the API server stand-in holds all M Rollouts, their Deployments and routes (as in
  benchmarks/scale_sharded.py), the fake kubelet and the Prometheus stand-in run as there;
- **one real replica** (`scale_sharded.py replica`: `canary controller` as the CLI builds it,
  ``--shards N``) holds one shard by the Lease protocol;
- the other N-1 shards are held by the same protocol (`canary.controller.shards.ShardSet`,
  the replicas' own code, with no controller behind it) from this process: they renew their
  Leases and member Leases, so the replica takes its fair share only;
- their Rollouts' objects change as the measured replica's own do (`scale_mirror.Mirror`:
  each write to a measured Rollout's objects is made again to a twin of each other shard), so
  the replica's watches decode the events of all N shards, as beside N-1 live replicas.

With ``--compare`` (the default) the same run is made a second time without the mirror: the
other shards' Rollouts then stand still, and the difference is what the fan-out costs.

    .venv/bin/python benchmarks/scale_one_of.py --size 3000          # the issue's target
    .venv/bin/python benchmarks/scale_one_of.py --size 300 --no-compare --duration 30

It prints a table and rewrites the "scale-one-of" section of docs/benchmarks.md unless
``--no-write``; ``--json FILE`` saves the figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
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
from scale_mirror import Mirror, rollout_of  # noqa: E402
from scale_sharded import (  # noqa: E402
    LEASE,
    EventCount,
    StepAudit,
    fmt,
    holders,
    late,
    start_prometheus,
    start_replica,
    wait,
)

from canary.controller.shards import ShardSet, shard_of  # noqa: E402
from canary.testing.lease_audit import rollout_guard, writes_outside_leases  # noqa: E402
from canary.testing.storage import Event  # noqa: E402

MEASURED = "replica-a"


@dataclass
class Variant:
    mirrored: bool
    shard: int = -1
    rollouts: int = 0
    twins: int = 0
    ticks: int = 0
    early_ticks: int = 0
    lateness_p50: float = float("nan")
    lateness_p99: float = float("nan")
    cores: float = 0.0
    cpu_ms_per_tick: float = 0.0
    peak_rss_mib: float = 0.0
    watch_events_per_second: float = 0.0
    """Events of the kinds a replica watches, all shards (what its watches decode)."""
    copies_per_second: float = 0.0
    mirror_backlog: int = 0
    """Changes of the measured Rollouts not yet copied, at the end of the window."""
    mirror_backlog_start: int = 0
    other_to_own: float = 0.0
    """Watch events of the other shards per event of the measured one (ideal: shards - 1)."""
    apiserver_cores: float = 0.0
    apiserver_gc_max: float = 0.0
    unguarded: list[Any] = field(default_factory=list)
    audited_writes: int = 0
    step_violations: list[str] = field(default_factory=list)
    steps: int = 0
    load: tuple[float, float] = (0.0, 0.0)
    when: str = ""


class OwnEvents(EventCount):
    """Watch events of a kind that concern the measured shard's Rollouts (by object name)."""

    def __init__(self, cluster: Cluster, api_version: str, kind: str, own: set[str]) -> None:
        self.own_names = own
        self.own = 0
        super().__init__(cluster, api_version, kind)

    def push(self, event: Event) -> None:
        if event.key == self.key:
            self.count += 1
            if rollout_of(str(event.obj["metadata"]["name"])) in self.own_names:
                self.own += 1


class WatchedEvents:
    """Events of every kind the replica watches, in the namespace: all, and its own shard's."""

    def __init__(self, cluster: Cluster) -> None:
        kinds = [
            ("canary.dev/v1alpha1", "Rollout"),
            ("apps/v1", "Deployment"),
            ("v1", "Service"),
            ("networking.istio.io/v1", "VirtualService"),
            ("networking.istio.io/v1", "DestinationRule"),
        ]
        self.own: set[str] = set()
        self.counts = [OwnEvents(cluster, version, kind, self.own) for version, kind in kinds]

    @property
    def total(self) -> int:
        return sum(c.count for c in self.counts)

    @property
    def of_own(self) -> int:
        return sum(c.own for c in self.counts)

    def close(self) -> None:
        for count in self.counts:
            count.close()


def shard_sets(kubeconfig: Path, args: argparse.Namespace) -> list[ShardSet]:
    """The other replicas' hold on their shards: the replicas' own Lease code, no controller."""
    from kubernetes import config

    from canary.controller import LeaseSettings
    from canary.controller.kube import Kube

    held = []
    for n in range(1, args.shards):
        api_client = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        api_client.user_agent = f"canary-controller/lease-only-{n}"
        settings = LeaseSettings(
            namespace=NAMESPACE,
            name=LEASE,
            identity=f"lease-only-{n}",
            lease_duration=args.lease_duration,
            renew_deadline=args.renew_deadline,
            retry_period=args.retry_period,
        )
        held.append(ShardSet(Kube(api_client), settings, args.shards).start())
    return held


def pair_twins(names: list[str], shard: int, shards: int) -> dict[str, list[str]]:
    """Each Rollout of ``shard`` with one Rollout of each other shard, in name order."""
    by_shard: dict[int, list[str]] = {i: [] for i in range(shards)}
    for name in names:
        by_shard[shard_of(NAMESPACE, name, shards)].append(name)
    twins: dict[str, list[str]] = {name: [] for name in by_shard[shard]}
    for other in range(shards):
        if other != shard:
            for own, twin in zip(by_shard[shard], by_shard[other], strict=False):
                twins[own].append(twin)
    return twins


def all_in(cluster: Cluster, names: list[str], test: Any) -> bool:
    with cluster.rollouts._lock:
        states = cluster.rollouts.states
        return all(n in states and test(states[n]) for n in names)


def run(args: argparse.Namespace, work: Path, mirrored: bool) -> Variant:
    result = Variant(mirrored)
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
    events = WatchedEvents(cluster)
    children: list[Child] = []
    others: list[ShardSet] = []
    mirror: Mirror | None = None
    stand_in_pauses = PauseLog().start()
    frozen = FrozenHeap().start()
    try:
        kubeconfig = cluster.api.kubeconfig(work / "kubeconfig", namespace=NAMESPACE)
        prometheus = start_prometheus(work, args)
        children.append(prometheus)
        prom_url = "http://" + prometheus.first_line(30).split()[1]
        replica = start_replica(MEASURED, kubeconfig, prom_url, work, args, args.replica_cpus)
        children.append(replica)
        others = shard_sets(kubeconfig, args)
        replica.first_line(120 + 0.05 * args.size)
        wait(
            "one shard each",
            lambda: (
                sorted(holders(cluster, args.shards).values())
                == sorted([MEASURED, *(s.identity for s in others)])
            ),
            120,
            children,
        )
        (result.shard,) = [i for i, h in holders(cluster, args.shards).items() if h == MEASURED]
        twins = pair_twins(cluster.names, result.shard, args.shards)
        own = sorted(twins)
        events.own.update(own)
        result.rollouts, result.twins = len(own), sum(len(t) for t in twins.values())
        wait(
            f"the replica's {len(own)} Rollouts Initialized",
            lambda: all_in(cluster, own, lambda s: s.phase == "Initialized"),
            120 + 0.5 * len(own),
            children,
        )
        if mirrored:
            mirror = Mirror(cluster.api, NAMESPACE, twins)
            twin_names = {t for ts in twins.values() for t in ts}
            original_bump = cluster.rollouts.bump
            # a twin's rollout is restarted by the mirror (its Deployment's new image), not here
            cluster.rollouts.bump = lambda name: None if name in twin_names else original_bump(name)  # type: ignore[method-assign]
        console.log(f"{len(own)} rollouts of shard {result.shard} initialized; new images")
        for name in own:
            cluster.rollouts.bump(name)
        cluster.rollouts.rebump = True
        wait(
            "every canary of the shard taking traffic",
            lambda: all_in(cluster, own, lambda s: s.first_weight_at is not None),
            max(60.0, 6 * args.interval) + 0.1 * len(own),
            children,
        )
        spread = spread_of(args)
        spread_rollouts(
            SimpleNamespace(names=own, rollouts=cluster.rollouts), len(own), spread, args
        )

        console.log(f"steady state for {args.duration:g}s ({'with' if mirrored else 'no'} mirror)")
        load0 = os.getloadavg()[0]
        t0, cpu0 = time.time(), cpu_seconds(replica.pid)
        api0, events0, own_events0 = cpu_seconds(os.getpid()), events.total, events.of_own
        result.mirror_backlog_start = mirror.backlog if mirror else 0
        copies0 = mirror.copies if mirror else 0
        time.sleep(args.duration)
        t1, cpu1 = time.time(), cpu_seconds(replica.pid)
        span = t1 - t0
        result.load = (load0, os.getloadavg()[0])
        result.when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        result.apiserver_cores = (cpu_seconds(os.getpid()) - api0) / span
        result.apiserver_gc_max = max(stand_in_pauses.between(t0, t1), default=0.0)
        result.watch_events_per_second = (events.total - events0) / span
        own_events = events.of_own - own_events0
        result.other_to_own = (events.total - events0 - own_events) / max(1, own_events)
        if mirror is not None:
            result.copies_per_second = (mirror.copies - copies0) / span
            result.mirror_backlog = mirror.backlog
        result.peak_rss_mib = memory_kib(replica.pid, "VmHWM") / 1024
        cluster.rollouts.rebump = False
        replica.stop()
        ticks = json.loads((work / f"{MEASURED}.json").read_text())["ticks"]
        steady = [t for t in ticks if t0 <= t[3] < t1]
        lateness = late(ticks, t0, t1)
        result.ticks = len(steady)
        result.early_ticks = sum(1 for t in steady if t[5])
        result.lateness_p50 = percentile(lateness, 50)
        result.lateness_p99 = percentile(lateness, 99)
        result.cores = (cpu1 - cpu0) / span
        result.cpu_ms_per_tick = 1000 * (cpu1 - cpu0) / max(1, result.ticks)
        log = cluster.api.requests_by_agent
        names = set(cluster.names)
        guard = rollout_guard(
            NAMESPACE,
            lambda n: (
                f"{LEASE}-shard-{shard_of(NAMESPACE, n, args.shards)}" if n in names else None
            ),
        )
        result.unguarded = writes_outside_leases(log, guard)[:20]
        result.audited_writes = sum(1 for r in log if r[1] != "GET" and guard(r[1], r[2]))
        result.step_violations = audit.violations[:20]
        result.steps = audit.steps
    finally:
        if mirror is not None:
            mirror.close()
        for held in others:
            held.stop(release=False)
        for child in reversed(children):
            child.stop(20)
        audit.close()
        events.close()
        cluster.close()
        frozen.stop()
        stand_in_pauses.stop()
    return result


def pin_cpus() -> set[int]:
    """The replica's CPU: the last one this process may use, which this process (and the
    Prometheus stand-in it starts) then leaves alone. Call it before any thread starts."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--pin needs two CPUs at least (or run with --no-pin)")
    os.sched_setaffinity(0, set(cpus[:-1]))
    return {cpus[-1]}


def markdown(variants: list[Variant], args: argparse.Namespace) -> str:
    first = variants[0]
    lines = [
        "### One replica of three, on cores of its own (issue 16's per-replica target)",
        "",
        "Three replicas and the stand-ins do not fit this machine's two cores, so only one "
        "replica runs (`canary controller --shards 3` as the CLI builds it); the other two "
        "shards are held from the benchmark's process by the replicas' own Lease code "
        "(`ShardSet`, no controller behind it), and every write to the measured replica's "
        "Rollouts' objects is made again to one Rollout of each other shard (the *mirror*, "
        "benchmarks/scale_mirror.py), so its watches see the events of all three shards as "
        "beside two live replicas. The second row is the same run without the mirror (the "
        "other shards' Rollouts stand still): the difference is what seeing the other shards "
        "costs. "
        + (
            f"The replica runs alone on CPU {min(args.replica_cpus)} (`--pin`: "
            "`os.sched_setaffinity`), the API server stand-in, kubelet, mirror and Prometheus "
            "stand-in on the other CPU: a replica on a core of its own, the API server "
            "elsewhere."
            if args.replica_cpus
            else "The API server stand-in, kubelet and Prometheus stand-in share the machine "
            'with it, as in "Controller scale" (`--no-pin`).'
        ),
        "",
        f"`{' '.join(['.venv/bin/python benchmarks/scale_one_of.py', *sys.argv[1:]])}` — "
        f"{first.when}, {machine()}; {args.size:,} Rollouts in {args.shards} shards, "
        f"{args.rps:g} requests a second a service, analysis every {args.interval:g} s (the "
        f"measured shard's phases spread over {spread_of(args):g} s), {args.workers} workers, "
        f"{args.duration:g} s steady a row.",
        "",
        "| other shards | measured shard: Rollouts | ticks | early | lateness p50 s | p99 s "
        "| cores | CPU ms / tick | peak RSS MiB | watch events / s (all shards) | of which the "
        f"other shards', per own event (ideal {args.shards - 1}) | API stand-in cores "
        "| load before / after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for v in variants:
        what = "changing (mirror)" if v.mirrored else "standing still"
        lines.append(
            f"| {what} | {v.rollouts:,} | {v.ticks:,} | {v.early_ticks:,} | "
            f"{fmt(v.lateness_p50, 3)} | {fmt(v.lateness_p99, 3)} | {fmt(v.cores)} | "
            f"{fmt(v.cpu_ms_per_tick, 1)} | {fmt(v.peak_rss_mib, 0)} | "
            f"{fmt(v.watch_events_per_second, 1)} | {fmt(v.other_to_own)} | "
            f"{fmt(v.apiserver_cores)} | {v.load[0]:.1f} / {v.load[1]:.1f} |"
        )
    lines.append("")
    for v in variants:
        what = "mirror" if v.mirrored else "no mirror"
        lines.append(
            f"- {what}: shard {v.shard}, {v.twins:,} twin Rollouts; writes of the replica "
            f"audited / without its shard's Lease {v.audited_writes:,} / {len(v.unguarded)}; "
            f"steps (every Rollout's status versions) {v.steps:,}, skipped or repeated "
            f"{len(v.step_violations)}"
            + (
                f"; {fmt(v.copies_per_second, 1)} mirrored writes a second, changes waiting to be "
                f"mirrored at the window's start / end {v.mirror_backlog_start:,} / "
                f"{v.mirror_backlog:,}"
                if v.mirrored
                else ""
            )
        )
    mirrored = [v for v in variants if v.mirrored]
    still = [v for v in variants if not v.mirrored]
    if mirrored and still and still[0].cpu_ms_per_tick > 0:
        ratio = mirrored[0].cpu_ms_per_tick / still[0].cpu_ms_per_tick
        lines.append(f"- CPU a tick with the other shards changing / standing still: {ratio:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=3000, help="Rollouts in all (default 3000)")
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=60.0, help="steady seconds a row")
    add_workload_arguments(parser)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--lease-duration", type=float, default=15.0)
    parser.add_argument("--renew-deadline", type=float, default=10.0)
    parser.add_argument("--retry-period", type=float, default=2.0)
    parser.add_argument(
        "--compare",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run without the mirror (default: yes)",
    )
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the replica alone on the last CPU, everything else on the others (default: yes)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    args.replica_cpus = pin_cpus() if args.pin else None
    logging.getLogger("canary.controller.shards").setLevel(logging.ERROR)  # their stop's notes
    variants = []
    for mirrored in (True, False) if args.compare else (True,):
        with tempfile.TemporaryDirectory(prefix="canary-one-of-") as folder:
            variants.append(run(args, Path(folder), mirrored))
    text = markdown(variants, args)
    console.print(text)
    if args.json:
        args.json.write_text(json.dumps([asdict(v) for v in variants], indent=2), encoding="utf-8")
    if not args.no_write:
        replace_section("scale-one-of", text)
    bad = any(v.unguarded or v.step_violations for v in variants)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
