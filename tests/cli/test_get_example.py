"""docs/cli.md's `canary get` example is what the command prints for examples/podinfo-istio.yaml
judged by the default judge: the engine and the analysis run for real (the shipped istio policy,
the rollout's own judge), only the metrics come from a fixed provider instead of Prometheus."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine_harness import World
from rich.console import Console

from canary.analysis.analyse import analyse
from canary.analysis.checks import resolve_checks
from canary.analysis.provider import Targets
from canary.analysis.samples import SideSample, WindowSample
from canary.cli.ops import PIPED_WIDTH
from canary.cli.show import rollout_tree
from canary.engine.timing import analysis_window
from canary.gates.api.models import RolloutView, SpecSummary
from canary.model import Rollout
from canary.model.analysis import CheckKind
from canary.model.loader import load_file

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "cli.md"
EXAMPLE = ROOT / "examples" / "podinfo-istio.yaml"


class FixedMetrics:
    """One minute of traffic at 5%: the canary as good as the primary."""

    def window(self, check: Any, variables: Any, at: datetime) -> WindowSample:
        if check.kind is CheckKind.ERROR_RATE:
            canary = SideSample(requests=600, failures=3)
            primary = SideSample(requests=5400, failures=27)
        else:  # requests slower than the latency objective
            canary = SideSample(requests=600, failures=2)
            primary = SideSample(requests=5400, failures=16)
        return WindowSample(canary=canary, primary=primary)


def rendered_get() -> str:
    [rollout] = [d.resource for d in load_file(EXAMPLE) if isinstance(d.resource, Rollout)]
    world = World(ro=rollout, now=datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
    world.initialized().progressing()
    checks = resolve_checks(rollout)
    targets = Targets(
        namespace="test", target="podinfo", canary="podinfo-canary", primary="podinfo-primary"
    )
    while world.status is not None and world.status.step_index == 0:
        status = world.status
        window = analysis_window(rollout, status, world.now)
        results, _ = analyse(rollout, status, checks, FixedMetrics(), targets, window, world.now)
        world.tick(checks=results)
    assert world.status is not None
    view = RolloutView(
        namespace="test",
        name="podinfo",
        target_revision=world.status.canary_revision,
        spec=SpecSummary.of(rollout),
        status=world.status,
    )
    # as `canary get podinfo` prints it into a pipe or a file
    console = Console(width=PIPED_WIDTH, color_system=None, record=True, file=io.StringIO())
    console.print(rollout_tree(view))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


def documented_get() -> str:
    text = DOC.read_text()
    section = text[text.index("## `canary get NAME") :]
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block is not None
    return "\n".join(line.rstrip() for line in block.group(1).splitlines())


def test_the_documented_get_is_what_the_default_judge_produces() -> None:
    actual = rendered_get()
    assert documented_get() == actual, (
        "docs/cli.md's `canary get` example is stale; replace its block with:\n" + actual
    )
