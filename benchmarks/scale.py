"""Controller scale: 10, 100 and 1,000 Rollouts progressing at once on one controller replica.

For each size, a fresh setup:

- the test API server (canary.testing.ApiServer) in this process, with N Deployments (ready)
  and N Rollouts (Istio, weights 5/10/20/50, analysis every 10 s, the default judge), a
  fake kubelet that marks a Deployment ready 2 s after its spec changes, and the helpers of
  benchmarks/scale_cluster.py (they use the store directly, so the API server's request log
  holds the controller's requests only);
- a stand-in for Prometheus in a process of its own (benchmarks/scale_prometheus.py): it speaks
  Prometheus' HTTP API and answers the istio policy's queries per workload, healthy, with the
  canary's request counts proportional to the weight its VirtualService holds now;
- the controller in a process of its own (benchmarks/scale_controller.py), built as
  ``canary controller`` builds it (leader election, notifications, /metrics, 64 workers), with
  its ticks timed: lateness is when a tick started minus when the scheduler had it due.

Once every Rollout is Initialized, every Deployment gets a new image at the same moment (the
burst: its tick lateness, and the time until every canary takes traffic). Then each gets
another new image, spread evenly over one rollout's cycle (``--spread``, by default six
intervals: about how long one rollout of this workload takes from a new image to promoted; the
cycle measured in the window is reported beside it), so that the N rollouts are at every
point of their cycle, as independent rollouts would be (``--lockstep`` skips this); each one
that ends gets a new image at once, so all N keep progressing. The steady state is then measured for
``--duration`` seconds: tick lateness (p50/p99), reconcile duration, API calls and metric
queries per tick, the controller's CPU seconds and peak RSS, and with py-spy
(``pip install -e '.[bench]'``) a profile of the controller at the largest size.

    .venv/bin/python benchmarks/scale.py                   # 10, 100, 1000; ~8 minutes
    .venv/bin/python benchmarks/scale.py --quick           # 10 and 50, ~20 s each
    .venv/bin/python benchmarks/scale.py --sizes 3 --duration 8 --interval 2 --no-write

It prints tables and rewrites the "scale" section of docs/benchmarks.md (and
docs/benchmarks/scale.png) unless ``--no-write``; ``--json FILE`` saves the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report import replace_section  # noqa: E402
from scale_cluster import ROOT, Cluster, make_cluster  # noqa: E402
from scale_gc import FrozenHeap, PauseLog  # noqa: E402

NAMESPACE = "bench"
WEIGHTS = [5, 10, 20, 50]
TARGET_SIZE = 1000
TARGET_LATENESS_P99 = 1.0
TARGET_RSS_MIB = 300.0
PLOT = ROOT / "docs" / "benchmarks" / "scale.png"
CLK_TCK = os.sysconf("SC_CLK_TCK")

console = Console(width=max(Console().width, 200))


# --- processes ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_kib(pid: int, field_name: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    return 0


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1])
    return (
        f"{os.cpu_count()} CPUs ({model}), {memory / 1024 / 1024:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


class Child:
    """A child process whose first line of output says it is ready."""

    def __init__(self, argv: list[str], stderr: Path, what: str) -> None:
        self.what = what
        self._stderr_path = stderr
        self._stderr: IO[bytes] = stderr.open("wb")
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def first_line(self, timeout: float) -> str:
        """The first line it prints (it must print one within ``timeout`` seconds)."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if selector.select(0.2):
                    line = self.process.stdout.readline().decode().strip()
                    if line:
                        return line
                if self.process.poll() is not None:
                    break
        raise RuntimeError(f"{self.what} did not start: {self.stderr_tail()}")

    def stderr_tail(self, lines: int = 15) -> str:
        self._stderr.flush()
        text = self._stderr_path.read_text(errors="replace").strip().splitlines()
        return "\n".join(text[-lines:]) or "(no output)"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 60.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


# --- measuring ---------------------------------------------------------------------------------


@dataclass
class Mark:
    """Counters read at one moment."""

    t: float
    requests: int
    queries: int
    controller_cpu: float
    apiserver_cpu: float
    prometheus_cpu: float
    metrics: dict[str, float]


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def scrape(address: str) -> dict[str, float]:
    """The controller's own counters of interest, from its /metrics."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        text = response.read().decode()
    found: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels = sample.name, sample.labels
            if name == "canary_reconcile_duration_seconds_count":
                found[f"ticks_{labels.get('outcome')}"] += sample.value
            elif name == "canary_route_object_changes_total":
                found[f"route_changes_{labels.get('by')}"] += sample.value
            elif name == "canary_ticks_total":  # why each tick ran, and what it changed
                found[f"tickwhy {labels.get('reason')} {labels.get('effect')}"] += sample.value
            elif name == "canary_wakes_total":
                found[f"wake {labels.get('reason')} {labels.get('fate')}"] += sample.value
            elif name in (
                "canary_reconcile_errors_total",
                "canary_status_conflicts_total",
                "canary_watch_relists_total",
            ):
                found[name] += sample.value
    return dict(found)


def resource_of(method: str, path_qs: str) -> str:
    """``GET deployments``-like names for the API server's request log."""
    path, _, query = path_qs.partition("?")
    parts = [p for p in path.split("/") if p]
    if "namespaces" in parts[:-1] and len(parts) > parts.index("namespaces") + 2:
        rest = parts[parts.index("namespaces") + 2 :]
    else:
        rest = parts[3:] if parts[:1] == ["apis"] else parts[2:]
    if not rest:
        return f"{method} {path}"
    plural = rest[0]
    verb = method
    if method == "GET":
        verb = "WATCH" if "watch=" in query else ("GET" if len(rest) > 1 else "LIST")
    sub = f"/{rest[2]}" if len(rest) > 2 else ""
    return f"{verb} {plural}{sub}"


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


@dataclass
class Profile:
    samples: int = 0
    top_self: list[tuple[str, float]] = field(default_factory=list)
    top_total: list[tuple[str, float]] = field(default_factory=list)
    by_module: list[tuple[str, float]] = field(default_factory=list)
    """Samples by the innermost canary module on the stack (else the library), percent."""


def _short(frame: str) -> str:
    """``func (path:line)`` -> ``func (short/path)``, without the line."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rpartition(":")[0] or where.rstrip(")")
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/", "lib/python3."):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})"


def _module(frame: str) -> str:
    where = _short(frame).partition(" (")[2].rstrip(")")
    if where.startswith("canary/"):
        return where.removesuffix(".py")
    return where.split("/")[0].removesuffix(".py")


PLUMBING = (
    "(threading.py)",
    "(concurrent/futures/thread.py)",
    "(scale_controller.py)",
    "(pydantic/_internal/_validate_call.py)",
)
"""Frames on (nearly) every stack, left out of the totals."""


def read_profile(path: Path, top: int = 15) -> Profile:
    """Self and total samples per function from py-spy's raw (collapsed stacks) output."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    modules: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";")]
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            if not frame.endswith(PLUMBING):
                total[frame] += n
        ours = [f for f in stack.split(";") if _module(f).startswith("canary/")]
        modules[_module(ours[-1]) if ours else _module(stack.split(";")[-1])] += n
    if not samples:
        return Profile()

    def share(counter: Counter[str], k: int) -> list[tuple[str, float]]:
        return [(name, 100.0 * n / samples) for name, n in counter.most_common(k)]

    return Profile(samples, share(own, top), share(total, top), share(modules, top))


@dataclass
class SizeResult:
    size: int
    interval: float
    workers: int
    setup_seconds: float = 0.0
    burst_seconds: float | None = None
    """From the image change of all N to the last canary taking traffic."""
    window_seconds: float = 0.0
    ticks: int = 0
    early_ticks: int = 0
    ticks_per_second: float = 0.0
    lateness_p50: float = float("nan")
    lateness_p99: float = float("nan")
    lateness_max: float = float("nan")
    burst_lateness_p99: float = float("nan")
    """Of the ticks from the moment all N images changed at once to the last canary taking
    traffic."""
    queue_p99: float = float("nan")
    """Of the lateness: waiting for a free worker (submitted -> started)."""
    spread_seconds: float = 0.0
    """Over how long the N rollouts' new images were spread before the window (0: lockstep)."""
    cycle_seconds: float = float("nan")
    """One rollout's cycle in the window: N x window / rollouts promoted in it."""
    busiest_second: int = 0
    """Ticks started in the busiest second of the window (against ticks_per_second: whether
    the rollouts were in phase)."""
    reconcile_p50: float = float("nan")
    reconcile_p99: float = float("nan")
    reconcile_mean: float = float("nan")
    api_calls_per_tick: float = 0.0
    api_calls_per_second: float = 0.0
    api_breakdown: list[tuple[str, float]] = field(default_factory=list)
    api_wait_ms_per_tick: float = 0.0
    """Wall time a tick spent in API calls, as the controller saw them (sum per tick)."""
    api_call_p50_ms: float = float("nan")
    api_call_p99_ms: float = float("nan")
    api_latency: list[tuple[str, float, float]] = field(default_factory=list)
    """(call, mean ms, p99 ms) by call, slowest first in total time."""
    query_wait_ms_per_tick: float = 0.0
    query_p50_ms: float = float("nan")
    query_p99_ms: float = float("nan")
    queries_per_tick: float = 0.0
    queries_per_second: float = 0.0
    controller_cpu_seconds: float = 0.0
    controller_cores: float = 0.0
    cpu_ms_per_tick: float = 0.0
    apiserver_cores: float = 0.0
    prometheus_cores: float = 0.0
    peak_rss_mib: float = 0.0
    controller_gc_max: float = 0.0
    """The controller's longest collector pause in the window, s."""
    controller_gc_share: float = 0.0
    """The share of the window the controller spent in its collector."""
    apiserver_gc_max: float = 0.0
    """The API server stand-in's longest collector pause in the window, s (scale_gc.py)."""
    steps: int = 0
    succeeded: int = 0
    failed: int = 0
    reconcile_errors: float = 0.0
    status_conflicts: float = 0.0
    relists: float = 0.0
    route_echoes: float = 0.0
    """Route objects' watch events that were the echoes of the controller's writes (no tick)."""
    route_edits: float = 0.0
    """Route objects' watch events taken for someone else's change (each ticks its Rollout)."""
    profile: Profile | None = None
    profiled: bool = False
    tick_outcomes: dict[str, float] = field(default_factory=dict)
    """Share of the window's ticks by outcome (ok; skipped: an early tick with nothing to do)."""
    tick_reasons: dict[str, float] = field(default_factory=dict)
    """The window's ticks by "reason effect" and early wakes by "wake reason fate" (counts,
    from canary_ticks_total and canary_wakes_total)."""
    load_before: float = 0.0
    load_after: float = 0.0
    """The machine's 1-minute load average around the steady window."""
    problems: list[str] = field(default_factory=list)


def mark(
    cluster: Cluster, controller: Child, prometheus: Child, prom_url: str, address: str
) -> Mark:
    stats = http_json(f"{prom_url}/stats")
    metrics: dict[str, float] = {}
    with contextlib.suppress(OSError):
        metrics = scrape(address)
    return Mark(
        t=time.time(),
        requests=len(cluster.api.requests),
        queries=int(stats["queries"]),
        controller_cpu=cpu_seconds(controller.pid),
        apiserver_cpu=cpu_seconds(os.getpid()),
        prometheus_cpu=cpu_seconds(prometheus.pid),
        metrics=metrics,
    )


def wait_until(what: str, done: Any, timeout: float, alive: Child) -> float:
    """Seconds it took ``done()`` to be true; raises after ``timeout`` or if ``alive`` died."""
    start = time.monotonic()
    while not done():
        if not alive.alive():
            raise RuntimeError(f"the controller exited while waiting for {what}")
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.1)
    return time.monotonic() - start


# --- one size ----------------------------------------------------------------------------------


def run_size(size: int, args: argparse.Namespace, work: Path, profile: bool) -> SizeResult:
    result = SizeResult(size=size, interval=args.interval, workers=args.workers)
    folder = work / f"n{size}"
    folder.mkdir()
    started = time.monotonic()
    cluster = make_cluster(
        NAMESPACE,
        size,
        folder / "weights",
        interval=args.interval,
        weights=WEIGHTS,
        judge=args.judge,
        ready_delay=args.ready_delay,
    )
    children: list[Child] = []
    stand_in_pauses = PauseLog().start()
    frozen = FrozenHeap().start()
    try:
        kubeconfig = cluster.api.kubeconfig(folder / "kubeconfig", namespace=NAMESPACE)
        python = sys.executable
        prometheus = Child(
            [
                python,
                str(HERE / "scale_prometheus.py"),
                "--weights",
                str(folder / "weights"),
                "--rps",
                str(args.rps),
            ],
            folder / "prometheus.err",
            "the Prometheus stand-in",
        )
        children.append(prometheus)
        prom_url = "http://" + prometheus.first_line(30).split()[1]
        controller = Child(
            [
                python,
                str(args.controller_script),
                "--kubeconfig",
                str(kubeconfig),
                "--prometheus",
                prom_url,
                "--namespace",
                NAMESPACE,
                "--workers",
                str(args.workers),
                "--out",
                str(folder / "controller.json"),
                "--log-file",
                str(folder / "controller.log"),
                *(
                    ["--switch-interval", str(args.switch_interval)]
                    if args.switch_interval is not None
                    else []
                ),
                *(["--default-collector"] if args.default_collector else []),
            ],
            folder / "controller.err",
            "the controller",
        )
        children.append(controller)
        address = controller.first_line(120).split()[1]
        wait_until(
            f"{size} Rollouts Initialized",
            lambda: cluster.rollouts.count("Initialized") == size,
            120 + 0.5 * size,
            controller,
        )
        result.setup_seconds = time.monotonic() - started
        console.log(f"{size} rollouts initialized in {result.setup_seconds:.1f}s; new images")

        bumped_at = time.time()
        for name in cluster.names:
            cluster.rollouts.bump(name)
        cluster.rollouts.rebump = True
        try:
            wait_until(
                "every canary taking traffic",
                lambda: cluster.rollouts.taking_traffic() == size,
                max(60.0, 6 * args.interval) + 0.1 * size,
                controller,
            )
            last = cluster.rollouts.last_first_weight()
            result.burst_seconds = (last or time.time()) - bumped_at
        except TimeoutError as exc:
            result.problems.append(str(exc))
        burst = (bumped_at, time.time())
        if args.lockstep:
            time.sleep(max(0.0, bumped_at + args.interval - time.time()))
        else:
            spread_rollouts(cluster, size, spread_of(args), args)
            result.spread_seconds = spread_of(args)

        spy = py_spy() if profile else None
        if spy is not None:
            children.append(
                Child(
                    [
                        spy,
                        "record",
                        "--pid",
                        str(controller.pid),
                        "--duration",
                        str(max(1, int(args.duration))),
                        "--rate",
                        "50",
                        "--nonblocking",
                        *(["--idle"] if args.wall_profile else ["--gil"]),
                        "--format",
                        "raw",
                        "--output",
                        str(folder / "profile.txt"),
                    ],
                    folder / "py-spy.err",
                    "py-spy",
                )
            )
            result.profiled = True
        result.load_before = os.getloadavg()[0]
        start = mark(cluster, controller, prometheus, prom_url, address)
        steady_tally = (cluster.rollouts.tally.steps, cluster.rollouts.tally.succeeded)
        failed_before = cluster.rollouts.tally.failed
        console.log(f"{size} rollouts: steady state for {args.duration:g}s")
        deadline = start.t + args.duration
        while time.time() < deadline:
            if not controller.alive():
                raise RuntimeError(f"the controller exited: {controller.stderr_tail()}")
            time.sleep(min(0.5, max(0.0, deadline - time.time())))
        end = mark(cluster, controller, prometheus, prom_url, address)
        result.load_after = os.getloadavg()[0]
        result.peak_rss_mib = memory_kib(controller.pid, "VmHWM") / 1024
        cluster.rollouts.rebump = False
        tally = cluster.rollouts.tally
        result.steps = tally.steps - steady_tally[0]
        result.succeeded = tally.succeeded - steady_tally[1]
        result.failed = tally.failed - failed_before
        requests = cluster.api.requests[start.requests : end.requests]
        controller.stop()
        out = json.loads((folder / "controller.json").read_text())
        result.peak_rss_mib = max(result.peak_rss_mib, out["vmhwm_kib"] / 1024)
        if result.profiled:
            spy_child = children[-1]
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy_child.process.wait(30)
            if (folder / "profile.txt").exists():
                result.profile = read_profile(folder / "profile.txt")
            else:
                result.problems.append(f"py-spy wrote no profile: {spy_child.stderr_tail(3)}")
        summarise(result, out["ticks"], requests, start, end, burst)
        gc_pauses(result, out.get("gc_pauses", []), stand_in_pauses, start, end)
        if result.succeeded:
            result.cycle_seconds = size * result.window_seconds / result.succeeded
        waits(result, out["calls"], start, end)
    except BaseException:
        for child in children:
            if child.what == "the controller" and child.alive():
                console.log(f"controller stderr: {child.stderr_tail()}")
        raise
    finally:
        for child in reversed(children):
            child.stop(10)
        cluster.close()
        frozen.stop()
        stand_in_pauses.stop()
    if args.keep:
        console.log(f"files of the {size} run kept in {folder}")
    return result


def add_workload_arguments(parser: argparse.ArgumentParser) -> None:
    """``--spread``, ``--ready-delay`` and ``--rps``, as this benchmark and the sharded ones
    take them."""
    parser.add_argument(
        "--spread",
        type=float,
        default=None,
        help="seconds over which the rollouts' new images are spread before the window "
        "(default: six intervals, about one rollout's cycle; the measured cycle is reported)",
    )
    parser.add_argument("--ready-delay", type=float, default=2.0, help="seconds to pods ready")
    parser.add_argument(
        "--rps", type=float, default=1000.0, help="requests a second a service (both versions)"
    )


def spread_of(args: argparse.Namespace) -> float:
    """Seconds over which the rollouts' phases are spread (``--spread``, else six intervals)."""
    return float(args.spread) if args.spread is not None else 6.0 * args.interval


def spread_rollouts(cluster: Any, size: int, spread: float, args: argparse.Namespace) -> None:
    """A new image for each rollout, evenly over ``spread`` seconds: a new revision restarts a
    rollout, and an ended one restarts at once, so from here on the N rollouts are at every
    point of a cycle that long, as N independent rollouts would be. Returns once the last one
    has had an interval to start."""
    console.log(f"{size} rollouts: new images again, spread over {spread:g}s")
    began = time.time()
    for index, name in enumerate(cluster.names):
        time.sleep(max(0.0, began + index * spread / size - time.time()))
        cluster.rollouts.bump(name)
    time.sleep(max(0.0, began + spread + args.interval + args.ready_delay + 1 - time.time()))


def gc_pauses(
    result: SizeResult,
    controller: list[list[float]],
    stand_in: PauseLog,
    start: Mark,
    end: Mark,
) -> None:
    """The window's collector pauses: the controller's, and the API server stand-in's."""
    own = [seconds for wall, _, seconds in controller if start.t <= wall < end.t]
    result.controller_gc_max = max(own, default=0.0)
    result.controller_gc_share = sum(own) / max(1e-9, end.t - start.t)
    result.apiserver_gc_max = max(stand_in.between(start.t, end.t), default=0.0)


def summarise(
    result: SizeResult,
    ticks: list[list[Any]],
    requests: list[tuple[str, str, int]],
    start: Mark,
    end: Mark,
    burst: tuple[float, float],
) -> None:
    window = end.t - start.t
    result.window_seconds = window
    steady = [t for t in ticks if start.t <= t[3] < end.t]
    in_burst = [t for t in ticks if burst[0] <= t[3] < burst[1]]
    late = [max(0.0, t[3] - t[1]) for t in steady]
    result.ticks = len(steady)
    result.early_ticks = sum(1 for t in steady if t[5])
    result.ticks_per_second = len(steady) / window
    result.lateness_p50 = percentile(late, 50)
    result.lateness_p99 = percentile(late, 99)
    result.lateness_max = max(late) if late else float("nan")
    result.burst_lateness_p99 = percentile([max(0.0, t[3] - t[1]) for t in in_burst], 99)
    result.queue_p99 = percentile([max(0.0, t[3] - t[2]) for t in steady], 99)
    per_second = Counter(int(t[3] - start.t) for t in steady)
    result.busiest_second = max(per_second.values(), default=0)
    durations = [t[4] - t[3] for t in steady]
    result.reconcile_p50 = percentile(durations, 50)
    result.reconcile_p99 = percentile(durations, 99)
    result.reconcile_mean = float(np.mean(durations)) if durations else float("nan")
    count = max(1, len(steady))
    result.api_calls_per_tick = len(requests) / count
    result.api_calls_per_second = len(requests) / window
    kinds = Counter(resource_of(method, path) for method, path, _ in requests)
    result.api_breakdown = [(k, n / count) for k, n in kinds.most_common(12)]
    queries = end.queries - start.queries
    result.queries_per_tick = queries / count
    result.queries_per_second = queries / window
    result.controller_cpu_seconds = end.controller_cpu - start.controller_cpu
    result.controller_cores = result.controller_cpu_seconds / window
    result.cpu_ms_per_tick = 1000 * result.controller_cpu_seconds / count
    result.apiserver_cores = (end.apiserver_cpu - start.apiserver_cpu) / window
    result.prometheus_cores = (end.prometheus_cpu - start.prometheus_cpu) / window

    def delta(name: str) -> float:
        return end.metrics.get(name, 0.0) - start.metrics.get(name, 0.0)

    result.reconcile_errors = delta("canary_reconcile_errors_total")
    result.status_conflicts = delta("canary_status_conflicts_total")
    result.relists = delta("canary_watch_relists_total")
    result.route_echoes = delta("route_changes_canary")
    result.route_edits = delta("route_changes_others")
    outcomes = {
        name.removeprefix("ticks_"): delta(name)
        for name in end.metrics
        if name.startswith("ticks_")
    }
    done = sum(outcomes.values())
    if done:
        result.tick_outcomes = {k: v / done for k, v in sorted(outcomes.items()) if v}
    why = [name for name in end.metrics if name.startswith(("tickwhy ", "wake "))]
    result.tick_reasons = {
        name.removeprefix("tickwhy "): delta(name) for name in sorted(why) if delta(name)
    }


def waits(result: SizeResult, calls: list[list[Any]], start: Mark, end: Mark) -> None:
    """How long the ticks waited on the API server and on Prometheus."""
    steady = [c for c in calls if start.t <= c[0] < end.t]
    count = max(1, result.ticks)
    queries = [c[2] for c in steady if c[1] == "prometheus query"]
    api = [c for c in steady if c[1] != "prometheus query"]
    result.api_wait_ms_per_tick = 1000 * sum(c[2] for c in api) / count
    result.query_wait_ms_per_tick = 1000 * sum(queries) / count
    result.api_call_p50_ms = 1000 * percentile([c[2] for c in api], 50)
    result.api_call_p99_ms = 1000 * percentile([c[2] for c in api], 99)
    result.query_p50_ms = 1000 * percentile(queries, 50)
    result.query_p99_ms = 1000 * percentile(queries, 99)
    by: dict[str, list[float]] = {}
    for c in steady:
        by.setdefault(c[1], []).append(c[2])
    ranked = sorted(by.items(), key=lambda kv: -sum(kv[1]))
    result.api_latency = [
        (name, 1000 * float(np.mean(v)), 1000 * percentile(v, 99)) for name, v in ranked[:12]
    ]


# --- output ------------------------------------------------------------------------------------


def fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{value:.{digits}f}{unit}"


COLUMNS: list[tuple[str, Callable[[SizeResult], str]]] = [
    ("rollouts", lambda r: f"{r.size:,}"),
    ("ticks/s", lambda r: fmt(r.ticks_per_second, digits=1)),
    ("busiest second", lambda r: f"{r.busiest_second}"),
    (
        "spread / cycle",
        lambda r: f"{r.spread_seconds:.0f} / {fmt(r.cycle_seconds, ' s', 0)}",
    ),
    ("early", lambda r: f"{100 * r.early_ticks / r.ticks:.0f}%" if r.ticks else "n/a"),
    ("lateness p50", lambda r: fmt(r.lateness_p50, " s", 3)),
    ("lateness p99", lambda r: fmt(r.lateness_p99, " s", 3)),
    ("burst p99", lambda r: fmt(r.burst_lateness_p99, " s", 2)),
    (
        "reconcile p50 / p99",
        lambda r: f"{fmt(r.reconcile_p50, '', 3)} / {fmt(r.reconcile_p99, ' s', 3)}",
    ),
    ("API calls/tick", lambda r: fmt(r.api_calls_per_tick, digits=1)),
    ("waiting on API/tick", lambda r: fmt(r.api_wait_ms_per_tick, " ms", 0)),
    ("queries/tick", lambda r: fmt(r.queries_per_tick, digits=2)),
    ("waiting on queries/tick", lambda r: fmt(r.query_wait_ms_per_tick, " ms", 0)),
    (
        "controller CPU",
        lambda r: (
            f"{fmt(r.controller_cpu_seconds, ' s', 1)} ({fmt(r.controller_cores, '', 2)} cores)"
        ),
    ),
    ("CPU/tick", lambda r: fmt(r.cpu_ms_per_tick, " ms", 1)),
    ("peak RSS", lambda r: fmt(r.peak_rss_mib, " MiB", 0)),
    (
        "GC pauses: controller max / share, stand-in max",
        lambda r: (
            f"{1000 * r.controller_gc_max:.0f} ms / {100 * r.controller_gc_share:.1f}%, "
            f"{1000 * r.apiserver_gc_max:.0f} ms"
        ),
    ),
    ("API server cores", lambda r: fmt(r.apiserver_cores, digits=2)),
    ("burst", lambda r: fmt(r.burst_seconds, " s", 1)),
    ("steps / promoted", lambda r: f"{r.steps} / {r.succeeded}"),
    ("machine load", lambda r: f"{r.load_before:.1f} / {r.load_after:.1f}"),
]


def print_results(results: list[SizeResult]) -> None:
    table = Table(title="Controller scale (steady state)")
    for name, _ in COLUMNS:
        table.add_column(name, justify="right")
    for r in results:
        table.add_row(*[cell(r) for _, cell in COLUMNS])
    console.print(table)
    for r in results:
        if r.problems:
            console.print(f"[yellow]{r.size}: {'; '.join(r.problems)}[/yellow]")
    biggest = max(results, key=lambda r: r.size)
    calls = Table(title=f"API calls per tick at {biggest.size:,} rollouts")
    calls.add_column("request")
    calls.add_column("per tick", justify="right")
    for name, per in biggest.api_breakdown:
        calls.add_row(name, f"{per:.2f}")
    console.print(calls)
    waited = Table(title=f"Calls as the controller waited on them at {biggest.size:,} rollouts")
    waited.add_column("call")
    waited.add_column("mean ms", justify="right")
    waited.add_column("p99 ms", justify="right")
    for name, mean, p99 in biggest.api_latency:
        waited.add_row(name, f"{mean:.1f}", f"{p99:.1f}")
    console.print(waited)
    profiled = [r for r in results if r.profile is not None and r.profile.samples]
    if profiled:
        r = profiled[-1]
        assert r.profile is not None
        prof = Table(
            title=f"Controller profile at {r.size:,} rollouts (py-spy, {r.profile.samples} samples)"
        )
        prof.add_column("self %", justify="right")
        prof.add_column("function (self)")
        prof.add_column("total %", justify="right")
        prof.add_column("function (total)")
        for (a, pa), (b, pb) in zip(r.profile.top_self, r.profile.top_total, strict=False):
            prof.add_row(f"{pa:.1f}", a, f"{pb:.1f}", b)
        console.print(prof)
        mods = Table(title="Where the samples fall (innermost canary module, else library)")
        mods.add_column("module")
        mods.add_column("%", justify="right")
        for name, pct in r.profile.by_module:
            mods.add_row(name, f"{pct:.1f}")
        console.print(mods)


def breaking_point(results: list[SizeResult]) -> list[str]:
    """Where p99 lateness crosses the target, measured and estimated."""
    measured = sorted((r for r in results if r.ticks), key=lambda r: r.size)
    kept = [r for r in measured if r.lateness_p99 < TARGET_LATENESS_P99]
    broke = [r for r in measured if r.lateness_p99 >= TARGET_LATENESS_P99]
    lines = []
    if kept and broke and broke[0].size > kept[-1].size:
        lines.append(
            f"- It keeps p99 lateness under {TARGET_LATENESS_P99:g} s at {kept[-1].size:,} "
            f"rollouts and not at {broke[0].size:,} ({broke[0].lateness_p99:.1f} s: ticks queue "
            "for the workers, and the backlog grows for as long as the load lasts)."
        )
    elif broke and not kept:
        lines.append(f"- It misses the lateness target at every size run, {broke[0].size:,} on.")
    elif kept and not broke:
        lines.append("- It keeps p99 lateness under the target at every size run.")
    demand = demand_per_rollout(results)
    if demand and kept:
        r = kept[-1]
        cpu = 1000.0 / r.cpu_ms_per_tick / demand if r.cpu_ms_per_tick else float("inf")
        pool = r.workers / r.reconcile_mean / demand if r.reconcile_mean else float("inf")
        lines.append(
            f"- Each rollout asks for {demand * r.interval:.1f} ticks an interval (measured at "
            f"{r.size:,}, {100 * r.early_ticks / r.ticks:.0f}% of them early ticks woken by "
            f"Deployment changes). At {r.cpu_ms_per_tick:.1f} ms of CPU a tick one core of "
            f"Python serves about {cpu:,.0f} rollouts; {r.workers} workers at "
            f"{1000 * r.reconcile_mean:.0f} ms a tick about {pool:,.0f}. So one replica tops out "
            f"near {min(cpu, pool):,.0f} rollouts at a {r.interval:g} s interval here; the "
            f"target needs about {TARGET_SIZE * demand * r.cpu_ms_per_tick / 1000:.1f} cores of "
            "Python "
            f"({TARGET_SIZE:,} x {demand * r.interval:.1f} ticks every {r.interval:g} s x "
            f"{r.cpu_ms_per_tick:.1f} ms) of the one a process has at most"
            + (
                ": more than it has."
                if TARGET_SIZE * demand * r.cpu_ms_per_tick / 1000 >= 1.0
                else ", with the interpreter then busy that share of the time (every tick waits "
                "for it the more, the closer to one)."
            )
        )
    return lines


def verdict(results: list[SizeResult]) -> list[str]:
    lines = []
    target = [r for r in results if r.size == TARGET_SIZE]
    if not target:
        lines.append(
            f"The target size ({TARGET_SIZE:,} rollouts) was not run: no verdict on the target."
        )
        return lines
    r = target[0]
    interval_ok = r.interval == 10
    late_ok = r.lateness_p99 < TARGET_LATENESS_P99
    rss_ok = r.peak_rss_mib < TARGET_RSS_MIB
    late_how = (
        f"{TARGET_LATENESS_P99 - r.lateness_p99:.2f} s to spare"
        if late_ok
        else f"{r.lateness_p99 / TARGET_LATENESS_P99:.1f}x over"
    )
    rss_how = (
        f"{TARGET_RSS_MIB - r.peak_rss_mib:.0f} MiB to spare"
        if rss_ok
        else f"{r.peak_rss_mib - TARGET_RSS_MIB:.0f} MiB over"
    )
    lines.append(
        f"- p99 tick lateness at {TARGET_LATENESS_P99:g} s or less: "
        f"**{'met' if late_ok else 'not met'}**: {r.lateness_p99:.3f} s ({late_how})"
        + ("" if interval_ok else f" (at a {r.interval:g} s interval, not 10 s)")
    )
    lines.append(
        f"- peak RSS under {TARGET_RSS_MIB:g} MiB: **{'met' if rss_ok else 'not met'}**: "
        f"{r.peak_rss_mib:.0f} MiB ({rss_how})"
    )
    return lines


def demand_per_rollout(results: list[SizeResult]) -> float | None:
    """Ticks a second each rollout asks for, from the largest size that kept up (p99 lateness
    under the target): early ticks and short requeues included."""
    kept_up = [r for r in results if r.ticks and r.lateness_p99 < TARGET_LATENESS_P99]
    if not kept_up:
        return None
    best = max(kept_up, key=lambda r: r.size)
    return best.ticks_per_second / best.size


def limits(results: list[SizeResult]) -> list[str]:
    """Where it breaks, from the figures: the controller's CPU (a GIL-bound process runs Python
    on one core at a time) and its worker pool (workers / a tick's wall time)."""
    lines = []
    demand = demand_per_rollout(results)
    for r in results:
        if not r.ticks:
            continue
        cpu_rate = 1000.0 / r.cpu_ms_per_tick if r.cpu_ms_per_tick > 0 else float("inf")
        pool = r.workers / r.reconcile_mean if r.reconcile_mean > 0 else float("inf")
        line = (
            f"- {r.size:,} rollouts: {r.ticks_per_second:.1f} ticks/s"
            + (
                " (" + ", ".join(f"{100 * v:.0f}% {k}" for k, v in r.tick_outcomes.items()) + ")"
                if r.tick_outcomes
                else ""
            )
            + f", each {r.cpu_ms_per_tick:.1f}"
            f" ms of controller CPU and {1000 * r.reconcile_mean:.0f} ms of wall time "
            f"({r.api_wait_ms_per_tick:.0f} ms waiting on {r.api_calls_per_tick:.0f} API calls, "
            f"{r.query_wait_ms_per_tick:.0f} ms on {r.queries_per_tick:.1f} queries); the "
            f"controller used {r.controller_cores:.2f} cores, the API server "
            f"{r.apiserver_cores:.2f}. One core of Python at this CPU a tick runs "
            f"{cpu_rate:.0f} ticks/s; "
            f"{r.workers} workers at this wall time run {pool:.0f} ticks/s"
        )
        if demand:
            line += (
                f": with {demand * r.interval:.2f} ticks a rollout every {r.interval:g} s, "
                f"enough for {cpu_rate / demand:,.0f} (CPU) and {pool / demand:,.0f} (workers) "
                "rollouts"
            )
        lines.append(line + ".")
    return lines


def figure_args(argv: list[str]) -> list[str]:
    """The command line without the options that do not change the figures."""
    shown: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--json",):
            skip = True
        elif not (arg in ("--keep", "--no-write") or arg.startswith("--json=")):
            shown.append(arg)
    return shown


def markdown(results: list[SizeResult], args: argparse.Namespace, wall: float) -> str:
    shown = figure_args(args.argv)
    command = (
        "make bench-scale"
        if not shown
        else "python benchmarks/scale.py " + " ".join(shlex.quote(a) for a in shown)
    )
    head = "| " + " | ".join(name for name, _ in COLUMNS) + " |"
    rule = "|" + "---:|" * len(COLUMNS)
    rows = ["| " + " | ".join(cell(r) for _, cell in COLUMNS) + " |" for r in results]
    out = [
        "## Controller scale",
        "",
        f"`{command}` — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}; "
        f"{wall / 60:.1f} minutes in all.",
        "",
        f"One controller replica ({args.workers} workers, leader election, notifications and "
        f"/metrics on, as `canary controller` runs) in a process of its own; N Rollouts "
        f"(Istio, weights {'/'.join(map(str, WEIGHTS))}, analysis every {args.interval:g} s, "
        f"judge {args.judge or 'the default (sequential)'}) on the test API server "
        f"(`canary.testing.ApiServer`, in the benchmark's process; canary's CRDs without their "
        f"CEL rules, which its cel-python interpreter takes ~20 ms a Rollout write to run, and "
        f"schemaless Istio CRDs), a fake kubelet marking Deployments ready "
        f"{args.ready_delay:g} s after they change. Once all N are Initialized, all N targets "
        f"get a new image at the same moment (*the burst*: its p99 lateness, and the time until "
        f"every canary took traffic); "
        + (
            "then the steady state is measured in that lockstep. "
            if args.lockstep
            else f"then each gets another new image, spread evenly over {spread_of(args):g} s "
            "(*spread*: about one rollout's cycle from a new image to promoted; a new revision "
            "restarts a rollout), so that the N rollouts are at every point of their cycle, as "
            "independent rollouts would be; every rollout that ends gets a new image at once, so "
            "all N keep progressing (*cycle*: the rollouts' cycle in the window, N x window / "
            "promoted; *busiest second*: the ticks started in the window's busiest second, "
            "against the mean ticks/s: how far the rollouts were in phase). "
        )
        + f"The steady state is measured for {args.duration:g} s a size. Metrics come from a "
        f"stand-in for Prometheus (`benchmarks/scale_prometheus.py`, a process of its own): it "
        f"speaks Prometheus' HTTP API (`/api/v1/query`) and answers the istio policy's "
        f"combined queries (requests, failures, quantile, each "
        f"`sum by (destination_workload)`): instant vectors, and the matrices of the exact-count "
        f"subqueries (`[<lookback + window>s:1s]`: a point a second over the look and the "
        f"provider's 120-s lookback, six series) for the two workloads named in the query: healthy "
        f"(0.1% errors, 0.2% slower than the objective, p99 180 ms), {args.rps:g} requests a "
        f"second a service split by the canary weight the rollout's VirtualService holds at "
        f"that moment. Real Prometheus scraping 1,000 services' telemetry would measure "
        f"Prometheus, not the controller.",
        "",
        "**Lateness** is when a tick started minus when it was due (the end of the previous "
        "tick plus its `requeueAfter`, or the moment an early tick was asked for), measured "
        "inside the controller's process from its scheduler (in a cluster, the "
        "controller's `canary_tick_lateness_seconds` histogram). **Reconcile** is a tick's wall "
        "time; *waiting on API* and *waiting "
        "on queries* are the wall time of its API calls and metric queries as the controller "
        "saw them. API calls are counted at the API server, queries at the stand-in, per tick "
        "of the window. CPU is the controller process' user+system seconds over the window, "
        "peak RSS its VmHWM. *Machine load* is the 1-minute load average before and after the "
        "window: the machine is shared, and the API server (its cores are in the table) and "
        "the stand-in run on it too.",
        "",
        head,
        rule,
        *rows,
        "",
        f"Targets ({TARGET_SIZE:,} rollouts at a 10 s interval):",
        "",
        *verdict(results),
        *breaking_point(results),
        "",
        "By size:",
        "",
        *limits(results),
    ]
    problems = [f"- {r.size:,}: {p}" for r in results for p in r.problems]
    if problems:
        out += ["", "Problems during the run:", "", *problems]
    biggest = max(results, key=lambda r: r.size)
    out += [
        "",
        f"API calls per tick at {biggest.size:,} rollouts:",
        "",
        "| request | per tick |",
        "|---|---:|",
        *[f"| `{name}` | {per:.2f} |" for name, per in biggest.api_breakdown],
        "",
        f"Calls as the controller waited on them at {biggest.size:,} rollouts (wall time, "
        "its own GIL waits included):",
        "",
        "| call | mean ms | p99 ms |",
        "|---|---:|---:|",
        *[f"| `{name}` | {mean:.1f} | {p99:.1f} |" for name, mean, p99 in biggest.api_latency],
    ]
    profiled = [r for r in results if r.profile is not None and r.profile.samples]
    if profiled:
        r = profiled[-1]
        assert r.profile is not None
        out += [
            "",
            f"Profile of the controller at {r.size:,} rollouts (py-spy `--gil`, 50 Hz: "
            f"{r.profile.samples:,} samples of the thread holding the GIL over the steady window, "
            "so what the interpreter spends its one core on):",
            "",
            "| self % | function | total % | function |",
            "|---:|---|---:|---|",
            *[
                f"| {pa:.1f} | `{a}` | {pb:.1f} | `{b}` |"
                for (a, pa), (b, pb) in zip(r.profile.top_self, r.profile.top_total, strict=False)
            ],
            "",
            "Samples by the innermost canary module on the stack (library time counted where "
            "canary called it):",
            "",
            "| module | % |",
            "|---|---:|",
            *[f"| `{name}` | {pct:.1f} |" for name, pct in r.profile.by_module],
        ]
    elif not any(r.profiled for r in results):
        out += ["", "No profile: install py-spy (`pip install -e '.[bench]'`) to get one."]
    if PLOT.exists() and not args.no_write:
        out += ["", "![tick lateness by size](benchmarks/scale.png)"]
    return "\n".join(out)


def plot(results: list[SizeResult]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r.size for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))

    def floor(values: list[float]) -> list[float]:
        return [max(v, 1e-3) if v == v else float("nan") for v in values]

    left.plot(sizes, floor([r.lateness_p50 for r in results]), "o-", label="p50")
    left.plot(sizes, floor([r.lateness_p99 for r in results]), "s-", label="p99")
    left.plot(
        sizes, floor([r.burst_lateness_p99 for r in results]), "^--", label="p99 in the burst"
    )
    left.axhline(TARGET_LATENESS_P99, color="red", linestyle=":", label="target p99")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_ylim(bottom=1e-3)
    left.set_xlabel("rollouts")
    left.set_ylabel("tick lateness (s; 1 ms floor)")
    left.legend()
    left.grid(True, which="both", alpha=0.3)
    right.plot(sizes, [r.peak_rss_mib for r in results], "o-", label="peak RSS (MiB)")
    right.axhline(TARGET_RSS_MIB, color="red", linestyle=":", label="target RSS")
    right.set_xscale("log")
    right.set_xlabel("rollouts")
    right.set_ylabel("MiB")
    twin = right.twinx()
    twin.plot(sizes, [r.controller_cores for r in results], "s--", color="green", label="cores")
    twin.set_ylabel("controller CPU (cores)")
    right.legend(loc="upper left")
    twin.legend(loc="lower right")
    right.grid(True, which="both", alpha=0.3)
    fig.suptitle("canary controller: one replica, all rollouts progressing")
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=100)
    plt.close(fig)


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="One controller replica with 10, 100 and 1,000 Rollouts progressing at once."
    )
    parser.add_argument("--quick", action="store_true", help="10 and 50 rollouts, 20 s each")
    parser.add_argument("--sizes", help="comma-separated numbers of rollouts (default 10,100,1000)")
    parser.add_argument(
        "--duration", type=float, help="seconds of steady state a size (default 90; quick 20)"
    )
    parser.add_argument("--interval", type=float, default=10.0, help="analysis interval, s")
    parser.add_argument("--workers", type=int, default=64, help="the controller's --workers")
    parser.add_argument("--judge", default=None, help="the rollouts' judge (default: the model's)")
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="a what-if: the controller's sys.setswitchinterval (Python's default: 0.005 s)",
    )
    parser.add_argument(
        "--default-collector",
        action="store_true",
        help="a what-if: CPython's collector thresholds, nothing frozen and glibc's malloc "
        "arenas in the controller (canary controller tunes all three: canary/cli/collector.py)",
    )
    parser.add_argument(
        "--lockstep",
        action="store_true",
        help="measure the N rollouts in step (as the burst left them), not spread over a cycle",
    )
    add_workload_arguments(parser)
    parser.add_argument(
        "--profile",
        choices=["largest", "all", "none"],
        default="largest",
        help="py-spy the controller at which sizes",
    )
    parser.add_argument(
        "--wall-profile",
        action="store_true",
        help="profile wall time of every thread (py-spy --idle) instead of the GIL holder",
    )
    parser.add_argument(
        "--controller-script",
        type=Path,
        default=HERE / "scale_controller.py",
        help="the controller's process (a variant of scale_controller.py measures a change "
        "before it lands)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the run's files (logs)")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="write docs/ from the figures a run saved with --json (runs nothing)",
    )
    args = parser.parse_args(argv)
    args.argv = argv
    if args.sizes:
        args.size_list = [int(s) for s in args.sizes.split(",") if s.strip()]
    else:
        args.size_list = [10, 50] if args.quick else [10, 100, 1000]
    if args.duration is None:
        args.duration = 20.0 if args.quick else 90.0
    if any(s < 1 for s in args.size_list) or args.duration <= 0:
        parser.error("sizes and --duration must be positive")
    return args


@contextlib.contextmanager
def interrupted_as_exit() -> Iterator[None]:
    """SIGTERM behaves as Ctrl-C, so the children are stopped by the finally blocks."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


SAVED = (
    "interval",
    "workers",
    "judge",
    "rps",
    "ready_delay",
    "duration",
    "lockstep",
    "spread",
    "argv",
)


def load_results(path: Path, args: argparse.Namespace) -> tuple[list[SizeResult], float]:
    """The results a run saved with --json; its options replace those of ``args``."""
    payload = json.loads(path.read_text(encoding="utf-8"))
    for name, value in (payload.get("args") or {}).items():
        setattr(args, name, value)
    results = []
    for raw in payload["results"]:
        profile = raw.pop("profile", None)
        result = SizeResult(**raw)
        result.profile = Profile(**profile) if profile else None
        results.append(result)
    return results, float(payload["wall_seconds"])


def write_docs(results: list[SizeResult], args: argparse.Namespace, wall: float) -> None:
    plot(results)
    replace_section("scale", markdown(results, args, wall))
    console.print("wrote the scale section of docs/benchmarks.md and docs/benchmarks/scale.png")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.render is not None:
        saved, wall = load_results(args.render, args)
        print_results(saved)
        write_docs(saved, args, wall)
        return 0
    began = time.monotonic()
    results: list[SizeResult] = []
    largest = max(args.size_list)
    keep = Path(tempfile.mkdtemp(prefix="canary-scale-"))
    try:
        with interrupted_as_exit():
            for size in args.size_list:
                profile = args.profile == "all" or (args.profile == "largest" and size == largest)
                results.append(run_size(size, args, keep, profile))
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]")
        return 130
    finally:
        if not args.keep:
            shutil.rmtree(keep, ignore_errors=True)
    wall = time.monotonic() - began
    print_results(results)
    for line in verdict(results) + limits(results):
        console.print(line)
    console.print(f"wall time {wall:.0f} s")
    if args.json:
        payload = {
            "wall_seconds": wall,
            "machine": machine(),
            "args": {name: getattr(args, name) for name in SAVED},
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    if not args.no_write:
        write_docs(results, args, wall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
