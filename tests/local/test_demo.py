"""The local demo end to end: real services, real HAProxy, real Prometheus, real load.

The three scenarios run once each, side by side (a demo mostly waits for its next analysis
interval, so three cost about the time of one), and the tests below assert on their results.

Measured figures (requests the bad canary served, how long the healthy rollout took) are
printed for the record, never asserted: timings belong in benchmarks, not tests.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from canary.analysis.prometheus import PrometheusProvider, PrometheusSettings
from canary.local.demo import DemoScenario, DemoTiming, run_demo
from canary.local.demo_stack import DemoStack
from canary.model import Phase
from canary.sim.result import SimulationResult, TimelineEntry

FAST = DemoTiming(interval="3s", rate=40, scrape_interval=0.5, weights=(10, 50), iterations=3)


def provider(url: str) -> PrometheusProvider:
    return PrometheusProvider(PrometheusSettings(url=url))


@dataclass(frozen=True)
class DemoRun:
    report: SimulationResult
    stack: DemoStack
    seen: list[tuple[float, TimelineEntry]]  # (monotonic seconds, entry) of every tick


def run(scenario: DemoScenario, tmp: Path) -> DemoRun:
    seen: list[tuple[float, TimelineEntry]] = []
    report, stack = run_demo(
        scenario,
        tmp,
        provider,
        timing=FAST,
        on_tick=lambda entry: seen.append((time.monotonic(), entry)),
        log=lambda _: None,
    )
    return DemoRun(report, stack, seen)


SCENARIOS = (DemoScenario.HEALTHY, DemoScenario.ERRORS, DemoScenario.AB)


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> dict[DemoScenario, Future[DemoRun]]:
    """Each scenario's run, all three at once (every stack has ports and a folder of its own).
    A run that raised fails only the test that asks for it, with its exception."""
    with ThreadPoolExecutor(len(SCENARIOS), thread_name_prefix="demo") as pool:
        runs = {
            s: pool.submit(run, s, tmp_path_factory.mktemp(f"demo-{s.value}")) for s in SCENARIOS
        }
    return runs


def last_versions(stack: DemoStack, count: int) -> set[str]:
    assert stack.generator is not None
    return {a.version for a in list(stack.generator.answers)[-count:]}


def test_healthy_canary_is_promoted_and_ends_with_all_traffic(
    demos: dict[DemoScenario, Future[DemoRun]],
) -> None:
    healthy = demos[DemoScenario.HEALTHY].result()
    report, stack = healthy.report, healthy.stack
    assert report.phase is Phase.SUCCEEDED, report.message
    assert report.primary_revision == "v2"
    assert report.final_weight == 0  # all traffic on the primary server, which now runs v2
    assert last_versions(stack, 20) == {"v2"}
    print(f"healthy rollout took {report.duration_seconds:.0f}s")
    assert not any(p.running for p in stack.processes)


def test_bad_canary_is_rolled_back_and_ends_on_the_primary(
    demos: dict[DemoScenario, Future[DemoRun]],
) -> None:
    bad = demos[DemoScenario.ERRORS].result()
    report, stack = bad.report, bad.stack
    assert report.phase is Phase.FAILED, report.message
    assert report.primary_revision == "v1"
    assert report.final_weight == 0
    assert last_versions(stack, 20) == {"v1"}
    assert stack.generator is not None
    served = [a for a in stack.generator.answers if a.version == "v2"]
    errors = sum(1 for a in served if a.code == "500")
    print(f"bad canary served {len(served)} requests ({errors} errors) before the rollback")
    assert not any(p.running for p in stack.processes)


def test_ab_test_sends_only_matching_requests_to_the_canary(
    demos: dict[DemoScenario, Future[DemoRun]],
) -> None:
    ab = demos[DemoScenario.AB].result()
    report, stack, seen = ab.report, ab.stack, ab.seen
    assert report.phase is Phase.SUCCEEDED, report.message
    assert all(entry.weight == 0 for _, entry in seen)
    started = next(t for t, e in seen if "analysis started" in e.message)
    promoting = next(t for t, e in seen if e.phase is Phase.PROMOTING)
    assert stack.generator is not None
    during = [a for a in stack.generator.answers if started + 0.5 < a.at < promoting - 0.5]
    tagged = {a.version for a in during if a.tagged}
    untagged = {a.version for a in during if not a.tagged}
    assert tagged == {"v2"}, "a request with x-canary: insider reached the primary"
    assert untagged == {"v1"}, "a request without the header reached the canary"


def test_missing_haproxy_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from canary.local.processes import ProcessError

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("shutil.which", lambda *a, **k: None)
    with pytest.raises(ProcessError, match="haproxy not found: install it with"):
        run_demo(DemoScenario.HEALTHY, tmp_path / "w", provider, timing=FAST, log=lambda _: None)
