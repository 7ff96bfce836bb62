"""The cost of watching ConfigMaps and Secrets: the controller's CPU and memory while
ConfigMaps and Secrets no Rollout references change in the namespace it watches.

The controller watches every ConfigMap and Secret of the namespaces it runs in (keeping
metadata only) so that a change of one a Rollout's target references starts a rollout at once
(issue #14; docs/controller.md, "Watches"). The API server cannot filter that watch down to
the referenced objects, so every change of any ConfigMap or Secret there reaches the
controller. This measures what that costs, side by side in one controller process:

- the scale benchmark's setup (benchmarks/scale_cluster.py: the test API server in this
  process, N Deployments and Rollouts, a fake kubelet; the Prometheus stand-in and the
  controller of benchmarks/scale_controller.py in processes of their own), each target
  referencing a ConfigMap (``envFrom``) and a Secret (a volume) of its own;
- ``--objects`` unrelated ConfigMaps and as many Secrets in the watched namespace, and the same
  in a namespace the controller does not watch;
- once every Rollout is Initialized and ``--settle`` seconds passed (the tail of setting up
  is not measured), phases of ``--duration`` seconds each (the Rollouts' interval: each phase
  holds one round of their regular ticks, so the phases differ by the churn only), the
  Rollouts idle: no churn; then the
  unrelated objects rewritten round-robin at ``--rate`` writes a second with payloads of each
  ``--sizes`` KiB; then the same churn in the unwatched namespace. For each phase: the
  controller's CPU seconds (``/proc/PID/stat``) and resident memory at its end;
- last, under the largest churn, ``--triggers`` referenced ConfigMaps and Secrets changed one
  by one: the time from each write to its Rollout's status turning Progressing.

    .venv/bin/python benchmarks/watch_cost.py          # 100 and 1,000 Rollouts, 1 and 64 KiB
    .venv/bin/python benchmarks/watch_cost.py --quick  # 10 Rollouts, short phases

It prints a table and rewrites the "watch-cost" section of docs/benchmarks.md unless
``--no-write``; ``--json FILE`` saves the figures.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report import replace_section  # noqa: E402
from scale import Child, cpu_seconds, machine, memory_kib, wait_until  # noqa: E402
from scale_cluster import Cluster, make_cluster  # noqa: E402

from canary.testing import ApiServer  # noqa: E402
from canary.testing.storage import Event  # noqa: E402

NAMESPACE = "watched"
ELSEWHERE = "unwatched"
Json = dict[str, Any]


@dataclass
class Phase:
    name: str
    writes: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    rss_mib: float = 0.0

    @property
    def cpu_share(self) -> float:
        """Share of one core."""
        return self.cpu_seconds / self.seconds if self.seconds else 0.0


@dataclass
class Results:
    rollouts: int
    objects: int
    rate: float
    duration: float
    phases: list[Phase] = field(default_factory=list)
    trigger_seconds: list[float] = field(default_factory=list)
    triggers_missed: int = 0
    peak_rss_mib: float = 0.0


# --- the objects -------------------------------------------------------------------------------


def payload(kib: int, rng: random.Random) -> str:
    return base64.b64encode(rng.randbytes(kib * 1024)).decode()


def config_map(name: str, namespace: str, text: str) -> Json:
    meta = {"name": name, "namespace": namespace}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"payload": text}}


def secret(name: str, namespace: str, encoded: str) -> Json:
    meta = {"name": name, "namespace": namespace}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": {"payload": encoded}}


def reference_configs(api: ApiServer, name: str) -> None:
    """Give target ``name`` a ConfigMap (envFrom) and a Secret (a volume) of its own."""
    api.create(config_map(f"{name}-config", NAMESPACE, "v1"))
    api.create(secret(f"{name}-secret", NAMESPACE, base64.b64encode(b"v1").decode()))
    target = api.get("apps/v1", "Deployment", name, NAMESPACE)
    pod = target["spec"]["template"]["spec"]
    pod["containers"][0]["envFrom"] = [{"configMapRef": {"name": f"{name}-config"}}]
    pod["volumes"] = [{"name": "creds", "secret": {"secretName": f"{name}-secret"}}]
    target["metadata"].pop("resourceVersion", None)
    api.apply(target)
    api.set_deployment_ready(NAMESPACE, name)


def noise_names(count: int) -> list[tuple[str, str]]:
    return [
        (kind, f"noise-{kind.lower()}-{i}")
        for i in range(count)
        for kind in ("ConfigMap", "Secret")
    ]


def write_noise(api: ApiServer, namespace: str, kind: str, name: str, data: str) -> None:
    obj = (
        config_map(name, namespace, data) if kind == "ConfigMap" else secret(name, namespace, data)
    )
    api.apply(obj)


class Churn:
    """Rewrites the unrelated objects of ``namespace`` round-robin at ``rate`` a second."""

    def __init__(self, api: ApiServer, namespace: str, names: list[tuple[str, str]]) -> None:
        self.api, self.namespace, self.names = api, namespace, names
        self.rng = random.Random(14)

    def run(self, seconds: float, rate: float, kib: int) -> int:
        # a few payloads made up front: making 64 KiB of randomness per write is not the point
        payloads = [payload(kib, self.rng) for _ in range(8)]
        written = 0
        started = time.monotonic()
        while (now := time.monotonic()) < started + seconds:
            due = started + written / rate
            if due > now:
                time.sleep(due - now)
                continue
            kind, name = self.names[written % len(self.names)]
            data = payloads[written % len(payloads)] + str(written)
            write_noise(self.api, self.namespace, kind, name, data)
            written += 1
        return written


class Progressing:
    """When each Rollout's status last turned Progressing (the store's commits, in order)."""

    def __init__(self, api: ApiServer) -> None:
        self.key = api.registry.find_kind("canary.dev/v1alpha1", "Rollout").key
        self.lock = threading.Lock()
        self.since: dict[str, float] = {}
        self.phase: dict[str, str] = {}
        api.store.subscribe(self, None, lambda _o: True)

    def push(self, event: Event) -> None:
        name = event.obj["metadata"]["name"]
        phase = str((event.obj.get("status") or {}).get("phase") or "")
        with self.lock:
            if phase == "Progressing" and self.phase.get(name) != phase:
                self.since[name] = time.monotonic()
            self.phase[name] = phase

    def progress(self, rv: int) -> None:
        pass

    def after(self, name: str, moment: float) -> float | None:
        with self.lock:
            at = self.since.get(name)
        return at - moment if at is not None and at >= moment else None


# --- the run -----------------------------------------------------------------------------------


def measure(name: str, controller: Child, seconds: float, work: Any) -> Phase:
    """CPU seconds the controller spent while ``work(seconds)`` ran (it returns writes)."""
    before, started = cpu_seconds(controller.pid), time.monotonic()
    writes = work(seconds)
    elapsed = time.monotonic() - started
    phase = Phase(name, writes, round(elapsed, 1))
    phase.cpu_seconds = round(cpu_seconds(controller.pid) - before, 2)
    phase.rss_mib = round(memory_kib(controller.pid) / 1024, 1)
    print(f"{name}: {phase.cpu_seconds:.2f} CPU s in {elapsed:.1f} s, {writes} writes", flush=True)
    return phase


def idle(seconds: float) -> int:
    time.sleep(seconds)
    return 0


def start(args: argparse.Namespace, count: int, folder: Path) -> tuple[Cluster, Child, Child]:
    cluster = make_cluster(
        NAMESPACE,
        count,
        folder / "weights",
        interval=args.interval,
        weights=[20, 50],
        judge="threshold",
        ready_delay=0.3,
    )
    api = cluster.api
    for name in cluster.names:
        reference_configs(api, name)
    api.create_namespace(ELSEWHERE)
    for namespace in (NAMESPACE, ELSEWHERE):
        for kind, name in noise_names(args.objects):
            write_noise(api, namespace, kind, name, payload(1, random.Random(name)))
    python = sys.executable
    prometheus = Child(
        [python, str(HERE / "scale_prometheus.py"), "--weights", str(folder / "weights")],
        folder / "prometheus.err",
        "the Prometheus stand-in",
    )
    url = "http://" + prometheus.first_line(30).split()[1]
    kubeconfig = api.kubeconfig(folder / "kubeconfig", namespace=NAMESPACE)
    controller = Child(
        [
            *(python, str(HERE / "scale_controller.py"), "--kubeconfig", str(kubeconfig)),
            *("--prometheus", url, "--namespace", NAMESPACE, "--out", str(folder / "c.json")),
            *("--log-file", str(folder / "controller.log")),
        ],
        folder / "controller.err",
        "the controller",
    )
    try:
        controller.first_line(120)
        wait_until(
            f"{count} Rollouts Initialized",
            lambda: cluster.rollouts.count("Initialized") == count,
            120 + 0.5 * count,
            controller,
        )
    except BaseException:
        controller.stop()
        prometheus.stop()
        cluster.close()
        raise
    time.sleep(args.settle)  # the tail of initialisation (targets scaled down) is not measured
    return cluster, prometheus, controller


def triggers(
    args: argparse.Namespace, cluster: Cluster, progressing: Progressing
) -> list[float | None]:
    """Referenced ConfigMaps and Secrets changed one by one under churn: seconds to Progressing."""
    churn = Churn(cluster.api, NAMESPACE, noise_names(args.objects))
    kib = max(args.sizes)
    noise = threading.Thread(
        target=churn.run, args=(args.triggers * args.trigger_gap + 5, args.rate, kib), daemon=True
    )
    noise.start()
    moments: list[tuple[str, float]] = []
    for n, name in enumerate(cluster.names[: args.triggers]):
        moment = time.monotonic()
        if n % 2 == 0:
            cluster.api.apply(config_map(f"{name}-config", NAMESPACE, "v2"))
        else:
            cluster.api.apply(secret(f"{name}-secret", NAMESPACE, base64.b64encode(b"v2").decode()))
        moments.append((name, moment))
        time.sleep(args.trigger_gap)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(progressing.after(n, m) is None for n, m in moments):
        time.sleep(0.1)
    noise.join()
    return [progressing.after(name, moment) for name, moment in moments]


def run(args: argparse.Namespace, count: int) -> Results:
    results = Results(count, args.objects, args.rate, args.duration)
    with tempfile.TemporaryDirectory(prefix="canary-watch-") as tmp:
        cluster, prometheus, controller = start(args, count, Path(tmp))
        try:
            progressing = Progressing(cluster.api)
            phases = [("no churn", idle)]
            watched = Churn(cluster.api, NAMESPACE, noise_names(args.objects))
            elsewhere = Churn(cluster.api, ELSEWHERE, noise_names(args.objects))
            for kib in args.sizes:
                phases.append(
                    (f"churn, {kib} KiB objects", lambda s, k=kib: watched.run(s, args.rate, k))
                )
            top = max(args.sizes)
            phases.append(
                (
                    f"churn, {top} KiB objects, unwatched namespace",
                    lambda s: elsewhere.run(s, args.rate, top),
                )
            )
            for name, work in phases:
                results.phases.append(measure(name, controller, args.duration, work))
            latencies = triggers(args, cluster, progressing)
            results.trigger_seconds = [round(s, 3) for s in latencies if s is not None]
            results.triggers_missed = sum(1 for s in latencies if s is None)
            results.peak_rss_mib = round(memory_kib(controller.pid, "VmHWM") / 1024, 1)
        finally:
            controller.stop()
            prometheus.stop()
            cluster.close()
    return results


def report(args: argparse.Namespace, runs: list[Results]) -> str:
    command = (
        "make bench-watch"
        if not args.quick
        else ".venv/bin/python benchmarks/watch_cost.py --quick"
    )
    sizes = " and ".join(str(r.rollouts) for r in runs)
    lines = [
        "## The cost of watching ConfigMaps and Secrets",
        "",
        f"`{command}` (benchmarks/watch_cost.py; one controller process (benchmarks/"
        f"scale_controller.py) watching namespace `{NAMESPACE}` with {sizes} idle Rollouts "
        f"(interval {args.interval:g} s) whose targets each reference a ConfigMap and a Secret; "
        f"{args.objects} unrelated ConfigMaps and {args.objects} Secrets rewritten round-robin "
        f"at {args.rate:g} writes/s for {args.duration:g} s a phase, after {args.settle:g} s "
        f"to settle; machine: {machine()}).",
        "",
        "| Rollouts | phase | writes | controller CPU (share of a core) "
        "| CPU per write (ms, above no churn) | RSS at the end (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for results in runs:
        base = results.phases[0]
        for phase in results.phases:
            extra = phase.cpu_seconds - base.cpu_share * phase.seconds
            per_write = f"{1000 * extra / phase.writes:.2f}" if phase.writes else "-"
            lines.append(
                f"| {results.rollouts} | {phase.name} | {phase.writes} | {phase.cpu_seconds:.2f}"
                f" s in {phase.seconds:g} s ({100 * phase.cpu_share:.1f}%) | {per_write} "
                f"| {phase.rss_mib:g} |"
            )
    lines.append("")
    for results in runs:
        found = results.trigger_seconds
        if not found:
            continue
        lines.append(
            f"{results.rollouts} Rollouts: a referenced ConfigMap or Secret changed under the "
            f"{max(args.sizes)} KiB churn ({len(found) + results.triggers_missed} changes; the "
            f"interval is {args.interval:g} s, so only the watch starts them early): the Rollout "
            f"turned Progressing after {statistics.median(found):.2f} s (median), "
            f"{max(found):.2f} s at most; {results.triggers_missed} missed. Peak RSS of the "
            f"controller: {results.peak_rss_mib:g} MiB."
        )
        lines.append("")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", default="100,1000", help="sizes, comma-separated")
    parser.add_argument(
        "--objects", type=int, default=50, help="unrelated ConfigMaps (and Secrets)"
    )
    parser.add_argument("--rate", type=float, default=20.0, help="writes a second")
    parser.add_argument("--sizes", default="1,64", help="payload KiB of each churn phase")
    parser.add_argument("--duration", type=float, help="seconds a phase (the interval)")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds before measuring")
    parser.add_argument(
        "--interval",
        type=float,
        default=60.0,
        help="the Rollouts' interval; a phase lasts as long, so each holds one round of ticks",
    )
    parser.add_argument("--triggers", type=int, default=10)
    parser.add_argument("--trigger-gap", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.rollouts, args.objects, args.duration, args.triggers = "10", 10, 5.0, 4
        args.settle = 2.0
    if args.duration is None:
        args.duration = args.interval
    args.sizes = [int(s) for s in str(args.sizes).split(",")]
    args.rollouts = [int(n) for n in str(args.rollouts).split(",")]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # a terminated benchmark stops its controller and its Prometheus stand-in too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    runs = [run(args, count) for count in args.rollouts]
    text = report(args, runs)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"results": [asdict(r) for r in runs]}, indent=2))
    if not args.no_write:
        replace_section("watch-cost", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
