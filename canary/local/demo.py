"""`canary demo`: a real rollout on one machine, from two versions to a verdict.

v1 (healthy) and v2 (as the scenario says) run as real HTTP servers; HAProxy splits the
traffic of a steady load between them; Prometheus scrapes HAProxy and both versions; the
engine judges v2 with the shipped `haproxy` policy and promotes or rolls it back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from canary.analysis.provider import MetricsProvider, inner_baseline
from canary.analysis.samples import SideSample, WindowSample
from canary.engine import StepResult
from canary.local.demo_stack import DemoStack, Ports
from canary.local.load import LoadSpec
from canary.local.runner import LocalRunner
from canary.local.service import Behaviour
from canary.local.state import load_state
from canary.local.workload import FixedBackends
from canary.model.analysis import CheckKind, CheckSpec
from canary.model.gates import ApprovalPoint
from canary.model.rollout import Rollout
from canary.sim.result import CheckOutcome, CheckSummary, SimulationResult, TimelineEntry
from canary.traffic.haproxy.router import HaproxyRouter


class DemoScenario(StrEnum):
    HEALTHY = "healthy"
    ERRORS = "errors"
    LATENCY = "latency"
    AB = "ab"


V1 = Behaviour(version="v1", error_rate=0.005, latency_ms=40, seed=1)
_V2 = {
    DemoScenario.HEALTHY: Behaviour(version="v2", error_rate=0.005, latency_ms=40, seed=2),
    DemoScenario.ERRORS: Behaviour(version="v2", error_rate=0.08, latency_ms=40, seed=2),
    DemoScenario.LATENCY: Behaviour(version="v2", error_rate=0.005, latency_ms=450, seed=2),
    DemoScenario.AB: Behaviour(version="v2", error_rate=0.005, latency_ms=40, seed=2),
}
AB_HEADER = "x-canary"
AB_VALUE = "insider"

DEMO_NAME = "demo"
DEMO_NAMESPACE = "local"


def state_file(workdir: Path) -> Path:
    """Where the demo keeps its state: NAME.state.json, the name `canary api --state-dir` and
    `canary run` use, so that the API (`canary get/approve`) serves the demo's rollout."""
    return workdir / f"{DEMO_NAME}.state.json"


@dataclass(frozen=True)
class DemoTiming:
    """How fast the demo runs: the human demo takes about two minutes, tests less."""

    interval: str = "10s"
    rate: float = 40.0
    scrape_interval: float = 1.0
    weights: tuple[int, ...] = (10, 25, 50)
    iterations: int = 5


def demo_rollout(
    scenario: DemoScenario,
    ports: Ports,
    timing: DemoTiming,
    approvals: Sequence[ApprovalPoint] = (),
) -> Rollout:
    strategy: dict[str, Any]
    if scenario is DemoScenario.AB:
        match = [{"headers": {AB_HEADER: {"exact": AB_VALUE}}}]
        strategy = {"abTest": {"iterations": timing.iterations, "match": match}}
    else:
        strategy = {"canary": {"weights": list(timing.weights)}}
    return Rollout.model_validate(
        {
            "metadata": {"name": DEMO_NAME, "namespace": DEMO_NAMESPACE},
            "spec": {
                "targetRef": {"name": "demo"},
                "service": {"port": int(ports.frontend.rpartition(":")[2])},
                "provider": {
                    "name": "haproxy",
                    "haproxy": {
                        "runtimeApi": ports.runtime_api,
                        "primaryAddress": ports.primary,
                        "canaryAddress": ports.canary,
                    },
                },
                "strategy": strategy,
                "analysis": {
                    "interval": timing.interval,
                    "failureLimit": 2,
                    "inconclusiveDeadline": "2m",
                    "minRequests": 10,
                },
                "progressDeadlineSeconds": 60,
                "gates": {"approvals": [p.value for p in approvals]},
            },
        }
    )


class RecordingProvider:
    """Passes queries through and keeps each check's last window, for the timeline."""

    def __init__(self, inner: MetricsProvider) -> None:
        self.inner = inner
        self.last: dict[str, WindowSample] = {}

    def window(self, check: CheckSpec, variables: Any, at: datetime) -> WindowSample:
        self.last.pop(check.name, None)
        sample = self.inner.window(check, variables, at)
        self.last[check.name] = sample
        return sample

    def baseline(
        self, check: CheckSpec, variables: Any, start: datetime, seconds: float
    ) -> SideSample | None:
        return inner_baseline(self.inner, check, variables, start, seconds)


ProviderFactory = Callable[[str], MetricsProvider]
Progress = Callable[[TimelineEntry], None]


def run_demo(
    scenario: DemoScenario,
    workdir: Path,
    provider_factory: ProviderFactory,
    *,
    timing: DemoTiming | None = None,
    on_tick: Progress | None = None,
    log: Callable[[str], None] = print,
    approvals: Sequence[ApprovalPoint] = (),
) -> tuple[SimulationResult, DemoStack]:
    """Start the stack, run the rollout to its end, stop everything; the report and the
    (closed) stack, whose load generator counts say who served what."""
    timing = timing or DemoTiming()
    ports = Ports.pick()
    rollout = demo_rollout(scenario, ports, timing, approvals)
    tagged = 0.3 if scenario is DemoScenario.AB else 0.0
    load = LoadSpec(target=ports.frontend, rate=timing.rate, tagged_share=tagged)
    stack = DemoStack(rollout, ports, workdir, V1, _V2[scenario], load, timing.scrape_interval)
    timeline: list[TimelineEntry] = []
    with stack:
        router = HaproxyRouter(rollout, stack.map_dir)
        state = load_state(state_file(workdir), rollout, stable="v1")
        settings = rollout.spec.provider.haproxy
        assert settings is not None
        workload = FixedBackends(settings, router.runtime, "v2", state.workload)
        provider = RecordingProvider(provider_factory(f"http://{ports.prometheus}"))
        runner = LocalRunner(
            rollout, state_file(workdir), state, router, workload, provider, log=log
        )

        kinds = {c.name: c.kind for c in runner.checks}
        summaries = [
            CheckSummary(
                name=c.name,
                kind=c.kind,
                judge=(c.judge or rollout.spec.analysis.judge).value,
                max=c.max,
                min=c.min,
            )
            for c in runner.checks
        ]

        def record(result: StepResult, elapsed: float) -> None:
            entry = _entry(result, elapsed, provider, kinds)
            timeline.append(entry)
            if on_tick is not None:
                on_tick(entry)

        started = datetime.now(UTC)
        final = runner.run(on_tick=record)
        duration = (datetime.now(UTC) - started).total_seconds()
    generator = stack.generator
    codes = generator.codes if generator else {}
    report = SimulationResult(
        scenario=f"local demo: {scenario.value}",
        seed=0,
        phase=final.status.phase,
        message=final.status.message,
        checks=summaries,
        canary_requests=_served(timeline, "canary", "requests"),
        canary_errors=_served(timeline, "canary", "failures"),
        duration_seconds=duration,
        final_weight=final.route.canary_weight,
        primary_revision=final.workload.primary_revision,
        stable_revision=final.status.stable_revision,
        notes=[f"load generator answers by status: {dict(sorted(codes.items()))}"],
        timeline=timeline,
    )
    return report, stack


def _entry(
    result: StepResult,
    elapsed: float,
    provider: RecordingProvider,
    kinds: dict[str, CheckKind | None],
) -> TimelineEntry:
    outcomes = []
    for check in result.status.checks:
        if check.time != result.status.last_tick_at or check.name not in provider.last:
            continue
        window = provider.last[check.name]
        canary, primary = window.canary, window.primary
        outcomes.append(
            CheckOutcome(
                name=check.name,
                kind=kinds.get(check.name),
                judge=check.judge,
                verdict=check.verdict,
                canary_requests=canary.requests if canary else None,
                canary_failures=canary.failures if canary else None,
                canary_value=_rate_or_value(check.name, canary),
                primary_requests=primary.requests if primary else None,
                primary_failures=primary.failures if primary else None,
                primary_value=_rate_or_value(check.name, primary),
                statistic=check.statistic,
                message=check.message,
            )
        )
    return TimelineEntry(
        time=round(elapsed, 1),
        phase=result.status.phase,
        weight=result.status.canary_weight,
        checks=outcomes,
        message=result.status.message,
    )


def _rate_or_value(name: str, side: Any) -> float | None:
    if side is None:
        return None
    if name == "error-rate":
        return round(100.0 * side.failures / side.requests, 3) if side.requests else None
    return None if side.value is None else round(float(side.value), 1)


def _served(timeline: list[TimelineEntry], side: str, what: str) -> int:
    total = 0
    for entry in timeline:
        for check in entry.checks:
            if check.name == "error-rate":
                total += getattr(check, f"{side}_{what}") or 0
    return total
