"""Chaos: the controller killed (SIGKILL) at random and at chosen moments while N Rollouts
cycle through healthy, bad and aborted revisions; then every Rollout is checked.

The setup is the scale benchmark's (benchmarks/scale_cluster.py): the test API server in this
process with N Deployments and Rollouts (Istio, weights 20/50, threshold judge, a short
interval), a fake kubelet, and the Prometheus stand-in (benchmarks/scale_prometheus.py) in a
process of its own, told which canaries are bad (they fail half their requests). The
controller runs as ``canary controller`` in processes of its own: one replica, or two (then
the kills hit the Lease holder). Each Rollout that ends gets a new revision at once: healthy
(60%), bad (30%) or healthy but aborted once it takes traffic (10%, through
`KubeRolloutStore.post_command`, the path ``canary abort`` takes). Two Rollouts in five wait for
a person's approval, one before each rollout and one before each promotion (``spec.gates.
approvals``): the benchmark approves as soon as the status says it waits (``canary approve``'s
path), so a lost approval leaves that Rollout stuck.

Kills: at random moments (exponential gaps), and *targeted*: the API server kills the
controller as it receives a chosen write (a route apply, a status write, a scale, a primary
update, an Event, a command's delete), so that write lands and its answer is lost. A killed
replica is started again at once. The faults run kills nothing: the API server answers an HTTP
500 to such a chosen write instead (not stored), at random moments.

After the run a quiet period (every Rollout ended, no outbox left), then every
Rollout is checked: ended (not stuck), the right verdict for its last revision, the primary's
image, the canary scaled to zero, the VirtualService all on the primary with no mirror; over
every cycle: weights never moving backwards, no step skipped or repeated (a healthy cycle
holds 20 then 50), aborts honoured, one terminal Event per cycle; and, followed as the
API server commits each change (benchmarks/chaos_traffic.py), no interval longer than one tick
(the analysis interval) during which a route sends traffic to a canary without ready pods. A
control run without kills runs beside it.

    .venv/bin/python benchmarks/chaos.py            # 100 Rollouts, 50+ kills, 1 and 2 replicas
    .venv/bin/python benchmarks/chaos.py --quick    # 6 Rollouts, a few kills (the CI smoke)

It prints a table and rewrites the "chaos" section of docs/benchmarks.md unless
``--no-write``; ``--json FILE`` saves the figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import mmap
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos_report import Figures, report
from chaos_traffic import UnservedTraffic, canary_weight
from report import replace_section
from scale_cluster import Cluster, make_cluster

from canary.controller.commands import KubeRolloutStore
from canary.controller.kube import Kube
from canary.engine.observations import Command, CommandKind
from canary.testing.storage import Event

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "chaos"
TERMINAL = ("Succeeded", "Failed")
TARGETS = {
    "route": ("PATCH", r"/virtualservices/"),
    "status": ("PUT", r"/rollouts/[^/]+/status$"),
    "scale": ("PATCH", r"/deployments/[^/]+/scale$"),
    "promote": ("PUT", r"/deployments/[^/]+-primary$"),
    "event": ("POST", r"/events$"),
    "command": ("DELETE", r"/rolloutcommands/"),
}
Json = dict[str, Any]


@dataclass
class Cycle:
    kind: str  # healthy, bad, abort
    image: str
    good_image: str
    """The image the primary must run at the end."""
    weights: list[int] = field(default_factory=list)
    aborted: bool = False
    approved: bool = False
    begun: bool = False
    """The Rollout left its terminal phase for this revision."""


class Controllers:
    """``replicas`` controller processes; kill one (the Lease holder), start it again."""

    def __init__(self, kubeconfig: Path, prometheus: str, replicas: int, logs: Path) -> None:
        self.kubeconfig, self.prometheus, self.logs = kubeconfig, prometheus, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.lock = threading.Lock()
        self.restarts = 0
        for n in range(replicas):
            self.start(f"chaos-{n}")

    def start(self, identity: str) -> None:
        argv = [sys.executable, "-m", "canary.cli.main", "controller"]
        argv += ["--kubeconfig", str(self.kubeconfig), "--namespace", NAMESPACE]
        argv += ["--metrics-addr", "127.0.0.1:0", "--lease-namespace", NAMESPACE]
        argv += ["--lease-duration", "3s", "--renew-deadline", "2s", "--retry-period", "500ms"]
        argv += ["--identity", identity, "--prometheus", self.prometheus, "--no-notifications"]
        log = (self.logs / f"{identity}.log").open("ab")
        self.procs[identity] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def kill(self, identity: str | None) -> bool:
        with self.lock:
            if identity is None or identity not in self.procs:
                identity = next(iter(self.procs))
            proc = self.procs[identity]
            if proc.poll() is not None:
                return False
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            self.start(identity)
            self.restarts += 1
            return True

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


class Run:
    def __init__(self, args: argparse.Namespace, mode: str, workdir: Path) -> None:
        self.args, self.mode = args, mode
        self.injected: list[Any] = []
        self.rng = random.Random(args.seed)
        self.workdir = workdir
        count = args.rollouts
        self.cluster: Cluster = make_cluster(
            NAMESPACE,
            count,
            workdir / "weights",
            interval=args.interval,
            weights=[20, 50],
            judge="threshold",
            ready_delay=0.3,
        )
        self.api = self.cluster.api
        (workdir / "bad").write_bytes(bytes(count))
        self._bad_handle = (workdir / "bad").open("r+b")
        self.bad = mmap.mmap(self._bad_handle.fileno(), count)
        self.cycles: dict[str, list[Cycle]] = {n: [] for n in self.cluster.names}
        self.images = dict.fromkeys(self.cluster.names, "podinfo:bench-1")
        self.generation = Counter[str]()
        self.figures = Figures(mode, count)
        self.gates = {n: g for i, n in enumerate(self.cluster.names) if (g := _gate(i))}
        for name, point in self.gates.items():
            ro = self.api.get("canary.dev/v1alpha1", "Rollout", name, NAMESPACE)
            ro["spec"]["gates"] = {"approvals": [point]}
            ro["metadata"].pop("resourceVersion", None)
            self.api.apply(ro)
        self.lock = threading.Lock()
        self.unserved = UnservedTraffic(self.cluster.names)
        for key in (
            ("networking.istio.io", "virtualservices"),
            ("canary.dev", "rollouts"),
            ("apps", "deployments"),
        ):
            listener = _Listener(self, key)
            existing, _ = self.api.store.subscribe(listener, None, lambda _o: True)
            for event in existing:
                listener.push(event)

    # --- the parts -------------------------------------------------------------------------

    def start(self) -> None:
        prometheus = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "scale_prometheus.py"),
                *("--weights", str(self.workdir / "weights")),
                *("--bad", str(self.workdir / "bad")),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert prometheus.stdout is not None
        address = prometheus.stdout.readline().split()[-1]
        self.prometheus = prometheus
        kubeconfig = self.api.kubeconfig(self.workdir / "kubeconfig", namespace=NAMESPACE)
        replicas = 2 if self.mode.endswith("2 replicas") else 1
        self.controllers = Controllers(kubeconfig, f"http://{address}", replicas, self.workdir)
        self.store = KubeRolloutStore(Kube(_client(kubeconfig)))

    def leader(self) -> str | None:
        try:
            lease = self.api.get("coordination.k8s.io/v1", "Lease", "canary", NAMESPACE)
        except Exception:
            return None
        return str((lease.get("spec") or {}).get("holderIdentity") or "") or None

    def kill(self, targeted: bool) -> None:
        if self.controllers.kill(self.leader()):
            with self.lock:
                if targeted:
                    self.figures.kills_targeted += 1
                else:
                    self.figures.kills_random += 1

    def arm(self) -> None:
        """A targeted kill at the next write of a kind chosen at random."""
        method, path = TARGETS[self.rng.choice(sorted(TARGETS))]
        self.api.faults.add(_fault(path, method, lambda: self.kill(targeted=True)))

    def inject(self) -> None:
        """An HTTP 500 on the next write of a kind chosen at random (the write not stored)."""
        method, path = TARGETS[self.rng.choice(sorted(TARGETS))]
        self.injected.append(self.api.faults.fail(path, 500, times=1, method=method))

    # --- cycles ----------------------------------------------------------------------------

    def status(self, name: str) -> Json:
        return self.api.get("canary.dev/v1alpha1", "Rollout", name, NAMESPACE).get("status") or {}

    def ended(self, name: str) -> bool:
        status = self.status(name)
        cycles = self.cycles[name]
        if not cycles:
            return status.get("phase") == "Initialized" and not status.get("outbox")
        return cycles[-1].begun and status.get("phase") in TERMINAL and not status.get("outbox")

    def seen_rollout(self, event: Event) -> None:
        cycles = self.cycles.get(event.obj["metadata"]["name"])
        phase = (event.obj.get("status") or {}).get("phase")
        if cycles and phase not in (*TERMINAL, "Initialized", None):
            cycles[-1].begun = True

    def new_cycle(self, name: str) -> None:
        roll = self.rng.random()
        kind = "healthy" if roll < 0.6 else "bad" if roll < 0.9 else "abort"
        previous = self.cycles[name][-1] if self.cycles[name] else None
        good = (
            self.images[name]
            if previous is None or previous.kind == "healthy"
            else (previous.good_image)
        )
        self.generation[name] += 1
        image = f"podinfo:chaos-{self.generation[name]}"
        index = self.cluster.names.index(name)
        self.bad[index] = 1 if kind == "bad" else 0
        with self.lock:
            self.cycles[name].append(Cycle(kind, image, good))
            self.images[name] = image
            self.figures.cycles += 1
        target = self.api.get("apps/v1", "Deployment", name, NAMESPACE)
        target["spec"]["template"]["spec"]["containers"][0]["image"] = image
        target["metadata"].pop("resourceVersion", None)
        self.api.apply(target)

    def drive(self, until: float) -> None:
        while time.monotonic() < until:
            for name in self.cluster.names:
                self.tend(name)
                if self.ended(name):
                    self.new_cycle(name)
            time.sleep(0.2)

    def tend(self, name: str) -> None:
        """Abort a cycle meant to be aborted once its canary takes traffic; approve a cycle
        waiting at its Rollout's approval point."""
        cycles = self.cycles[name]
        current = cycles[-1] if cycles else None
        if current is None or (current.aborted and current.approved):
            return
        status = self.status(name)
        if current.kind == "abort" and not current.aborted and status.get("canaryWeight", 0) > 0:
            self.send(name, CommandKind.ABORT)
            current.aborted = True
        point = self.gates.get(name)
        if point and not current.approved and status.get("waitingFor") == point:
            self.send(name, CommandKind.APPROVE)
            current.approved = True

    def send(self, name: str, kind: CommandKind) -> None:
        self.store.post_command(NAMESPACE, name, Command(kind=kind, by="chaos"))
        with self.lock:
            if kind is CommandKind.ABORT:
                self.figures.aborts_sent += 1
            else:
                self.figures.approvals_sent += 1

    def route_weight(self, obj: Json) -> int:
        return canary_weight(obj)

    def seen_route(self, event: Event) -> None:
        name = event.obj["metadata"]["name"]
        self.unserved.seen_route(name, None if event.type == "DELETED" else event.obj)
        cycles = self.cycles.get(name)
        if not cycles or event.type == "DELETED":
            return
        weight = self.route_weight(event.obj)
        log = cycles[-1].weights
        if not log or log[-1] != weight:
            log.append(weight)

    # --- the checks ------------------------------------------------------------------------

    def quiet(self, limit: float) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            for name in self.cluster.names:
                self.tend(name)
            if all(self.ended(n) for n in self.cluster.names):
                return
            time.sleep(0.2)

    def check(self) -> None:
        f = self.figures
        self.check_traffic()
        events = self.api.list("v1", "Event", NAMESPACE)
        for name in self.cluster.names:
            cycles = self.cycles[name]
            if not cycles:
                continue
            status = self.status(name)
            last = cycles[-1]
            if not self.ended(name):
                f.stuck += 1
                if last.approved and status.get("waitingFor") == self.gates.get(name):
                    f.commands_lost += 1  # approved, and still waiting for it
                continue
            want = "Succeeded" if last.kind == "healthy" else "Failed"
            if status.get("phase") != want:
                f.wrong_verdict += 1
                if last.kind == "abort":
                    f.commands_lost += 1
            primary = self.api.get("apps/v1", "Deployment", f"{name}-primary", NAMESPACE)
            image = primary["spec"]["template"]["spec"]["containers"][0]["image"]
            if image != (last.image if last.kind == "healthy" else last.good_image):
                f.wrong_image += 1
            target = self.api.get("apps/v1", "Deployment", name, NAMESPACE)
            if target["spec"].get("replicas"):
                f.canary_not_scaled_down += 1
            route = self.api.get("networking.istio.io/v1", "VirtualService", name, NAMESPACE)
            if self.route_weight(route) or "mirror" in json.dumps(route.get("spec")):
                f.route_not_stable += 1
            for cycle in cycles:
                f.weights_backwards += _backwards(cycle.weights)
                if cycle.kind == "healthy" and _steps(cycle.weights) != [20, 50]:
                    f.steps_skipped_or_repeated += 1
            mine = [e for e in events if e["involvedObject"]["name"] == name]
            ended = Counter(e["reason"] for e in mine if e["reason"] in TERMINAL)
            finished = len(cycles) - (0 if self.ended(name) else 1)
            total = sum(ended.values())
            f.events_lost += max(0, finished - total)
            f.events_duplicated += max(0, total - finished)

    def check_traffic(self) -> None:
        """Traffic on a canary without ready pods: tolerated within one tick, not beyond."""
        exposures = self.unserved.exposures()
        beyond = self.unserved.beyond(self.args.interval)
        self.figures.traffic_without_pods = len(beyond)
        longest = max((e.seconds for e in exposures), default=0.0)
        self.figures.longest_without_pods = round(longest, 2)
        self.figures.canaries_routed = self.unserved.routed
        self.figures.canaries_emptied = self.unserved.emptied
        for e in beyond:
            state = "still" if e.ongoing else "for"
            print(
                f"{self.mode}: {e.rollout} sent traffic to a canary without ready pods "
                f"{state} {e.seconds:.1f} s",
                file=sys.stderr,
            )

    def close(self) -> None:
        for part in (getattr(self, "controllers", None),):
            if part is not None:
                part.stop()
        if getattr(self, "prometheus", None) is not None:
            self.prometheus.terminate()
            self.prometheus.wait(10)
        self.cluster.close()
        self.bad.close()
        self._bad_handle.close()


class _Listener:
    """The store's changes of VirtualServices (each weight the route held, in order), of
    Rollouts (a cycle begun) or of Deployments (ready pods), as they are committed."""

    def __init__(self, run: Run, key: tuple[str, str]) -> None:
        self.run = run
        self.key = key

    def push(self, event: Event) -> None:
        if self.key[1] == "virtualservices":
            self.run.seen_route(event)
        elif self.key[1] == "deployments":
            obj = None if event.type == "DELETED" else event.obj
            self.run.unserved.seen_deployment(event.obj["metadata"]["name"], obj)
        else:
            self.run.seen_rollout(event)

    def progress(self, rv: int) -> None:
        pass


def _gate(index: int) -> str | None:
    """The approval point Rollout ``index`` waits at, if any: two in five do."""
    return {1: "rollout", 3: "promotion"}.get(index % 5)


def _fault(path: str, method: str, action: Any) -> Any:
    from canary.testing.faults import Fault

    return Fault(path=path, method=method, times=1, action=action)


def _client(kubeconfig: Path) -> Any:
    from kubernetes import config

    return config.new_client_from_config(config_file=str(kubeconfig))


def _backwards(weights: list[int]) -> int:
    """A rise after a fall within one cycle: traffic moved back to the canary."""
    fell = False
    for before, after in itertools.pairwise(weights):
        if after < before:
            fell = True
        elif after > before and fell:
            return 1
    return 0


def _steps(weights: list[int]) -> list[int]:
    return [w for w in weights if w > 0]


def run_mode(args: argparse.Namespace, mode: str, chaos: str) -> Figures:
    """One run; ``chaos``: "none", "kills" or "faults" (500s on writes)."""
    with tempfile.TemporaryDirectory(prefix="canary-chaos-") as tmp:
        run = Run(args, mode, Path(tmp))
        started = time.monotonic()
        try:
            run.start()
            deadline = started + args.duration
            agent = {"kills": _killer, "faults": _faulter}.get(chaos)
            thread = threading.Thread(target=agent, args=(run, deadline), daemon=True)
            if agent is not None:
                thread.start()
            run.drive(deadline)
            if agent is not None:
                thread.join()
            run.api.faults.clear()
            run.quiet(args.quiet)
            run.check()
            run.figures.restarts = run.controllers.restarts
            run.figures.faults = sum(fault.hits for fault in run.injected)
        finally:
            run.figures.seconds = round(time.monotonic() - started, 1)
            run.close()
        return run.figures


def _killer(run: Run, deadline: float) -> None:
    rng = random.Random(run.args.seed + 1)
    gap = run.args.duration / max(1, run.args.kills)
    while time.monotonic() < deadline - run.args.interval * 4:
        time.sleep(rng.expovariate(1 / gap))
        if rng.random() < 0.5:
            run.kill(targeted=False)
        else:
            run.arm()


def _faulter(run: Run, deadline: float) -> None:
    rng = random.Random(run.args.seed + 2)
    gap = run.args.duration / max(1, run.args.faults)
    while time.monotonic() < deadline - run.args.interval * 4:
        time.sleep(rng.expovariate(1 / gap))
        run.inject()


MODES = (
    ("control", "control, 1 replica", "none"),
    ("1", "kills, 1 replica", "kills"),
    ("2", "kills, 2 replicas", "kills"),
    ("faults", "500s on writes, 1 replica", "faults"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=100)
    parser.add_argument("--kills", type=int, default=30, help="kills per run (about)")
    parser.add_argument("--faults", type=int, default=60, help="500s per faults run (about)")
    parser.add_argument("--duration", type=float, default=180.0)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--quiet", type=float, default=90.0)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--modes",
        default="control,1,2,faults",
        help="control, 1 (replica), 2 (replicas), faults (500s on writes), comma-separated",
    )
    args = parser.parse_args(argv)
    # a terminated benchmark stops its controllers and its Prometheus stand-in too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    if args.quick:
        args.rollouts, args.kills, args.faults, args.duration, args.quiet = 6, 6, 10, 40.0, 60.0
    chosen = {m.strip() for m in args.modes.split(",")}
    results = [run_mode(args, name, chaos) for key, name, chaos in MODES if key in chosen]
    text = report(args, results)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"results": [asdict(r) for r in results]}, indent=2))
    if not args.no_write:
        replace_section("chaos", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
