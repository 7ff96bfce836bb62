"""The sequential judge beside Flagger's threshold rule, through the simulator.

Runs `canary.sim.simulate` on the istio example (weights 5/10/20/50, 1-minute ticks, the
default error-rate and latency checks, failureLimit 3, inconclusiveDeadline 10m) over a grid
of total traffic (10, 100, 1,000, 10,000 requests a minute), primary error rate (0.1%, 1%)
and canary error multiplier (1 = A/A, 1.5, 2, 5), for three judges:

- ``sequential``: the default judge;
- ``threshold``: Flagger's rule (errors <= 1%, p99 <= 500 ms per window) with the project's
  default minRequests 20 per window;
- ``threshold/1``: the same rule with minRequests 1, so that it judges the quiet windows it
  would otherwise call inconclusive (the fair comparison at low traffic).

Seeds are 0 .. N-1 in every cell (the same seeds for every judge). Per cell it prints the
false rollback rate (A/A, with a 95% Wilson interval), the detection rate (any rollback of a
worse canary), the blast radius (canary errors served before the rollback, median and p90,
over the detected runs) and the median time to promote a healthy canary (from the new
revision's detection to Succeeded, including the simulated 30 s readiness and 45 s
promotion). Reproduce the table in docs/analysis.md with:

    .venv/bin/python benchmarks/sequential_grid.py            # 300 seeds a cell, a few minutes
    .venv/bin/python benchmarks/sequential_grid.py --quick    # 60 seeds, fewer cells
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from canary.model.analysis import JudgeName
from canary.model.loader import load_rollout
from canary.model.rollout import Rollout
from canary.model.status import Phase
from canary.sim import simulate
from canary.sim.scenario import Scenario

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "podinfo-istio.yaml"
RATES = (10, 100, 1_000, 10_000)
ERRORS = (0.1, 1.0)
EFFECTS = (1.0, 1.5, 2.0, 5.0)
JUDGES = ("sequential", "threshold", "threshold/1")


@dataclass(frozen=True, slots=True)
class Run:
    promoted: bool
    rolled_back: bool
    canary_errors: int
    minutes: float


@lru_cache(maxsize=4)
def _rollout(min_requests: int | None) -> Rollout:
    rollout = load_rollout(EXAMPLE)
    if min_requests is not None:
        rollout.spec.analysis.min_requests = min_requests
    return rollout


def run_one(args: tuple[str, float, float, float, int]) -> Run:
    judge, rate, error, effect, seed = args
    name, _, min_requests = judge.partition("/")
    scenario = Scenario(
        name="grid",
        requests_per_minute=rate,
        primary_error_percent=error,
        canary_error_multiplier=effect,
    )
    rollout = _rollout(int(min_requests) if min_requests else None)
    result = simulate(rollout, scenario, seed, judge=JudgeName(name), record_timeline=False)
    return Run(
        promoted=result.phase is Phase.SUCCEEDED,
        rolled_back=result.phase is Phase.FAILED,
        canary_errors=result.canary_errors,
        minutes=result.duration_seconds / 60.0,
    )


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval for a rate of k in n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class Cell:
    judge: str
    rate: int
    error: float
    effect: float
    runs: tuple[Run, ...]

    @property
    def rolled_back(self) -> int:
        return sum(r.rolled_back for r in self.runs)

    def rate_text(self) -> str:
        k, n = self.rolled_back, len(self.runs)
        low, high = wilson(k, n)
        return f"{100 * k / n:.1f}% ({100 * low:.1f}-{100 * high:.1f})"

    def blast(self) -> str:
        errors = [r.canary_errors for r in self.runs if r.rolled_back]
        if not errors:
            return "-"
        return f"{np.median(errors):.0f} / {np.percentile(errors, 90):.0f}"

    def promotion(self) -> str:
        minutes = [r.minutes for r in self.runs if r.promoted]
        if len(minutes) < len(self.runs) / 4:  # too few promoted for a median that means much
            return f"- ({len(minutes)} promoted)"
        return f"{np.median(minutes):.1f}"


def measure(
    judges: Iterable[str],
    rates: Iterable[int],
    errors: Iterable[float],
    effects: Iterable[float],
    seeds: int,
    jobs: int,
) -> list[Cell]:
    cells = [
        (judge, rate, error, effect)
        for error in errors
        for rate in rates
        for effect in effects
        for judge in judges
    ]
    tasks = [(j, float(r), e, x, s) for j, r, e, x in cells for s in range(seeds)]
    with ProcessPoolExecutor(jobs) as pool:
        runs = list(pool.map(run_one, tasks, chunksize=max(1, seeds // 4)))
    return [
        Cell(judge, rate, error, effect, tuple(runs[i * seeds : (i + 1) * seeds]))
        for i, (judge, rate, error, effect) in enumerate(cells)
    ]


def table(cells: list[Cell], judges: list[str], effects: list[float]) -> str:
    """One row per (primary error, traffic) with every judge's figures side by side."""
    by_key = {(c.judge, c.rate, c.error, c.effect): c for c in cells}
    rows = sorted({(c.error, c.rate) for c in cells})
    worse = [x for x in effects if x != 1.0]
    lines = []
    for judge in judges:
        header = ["primary errors", "req/min", "A/A false rollbacks (95% CI)", "promotion (min)"]
        for x in worse:
            header += [f"{x:g}x detected", f"{x:g}x blast radius med / p90"]
        lines.append(f"\n**{judge}**\n")
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for error, rate in rows:
            aa = by_key.get((judge, rate, error, 1.0))
            row = [f"{error:g}%", f"{rate:,}"]
            row += [aa.rate_text(), aa.promotion()] if aa else ["", ""]
            for x in worse:
                cell = by_key[(judge, rate, error, x)]
                row += [f"{100 * cell.rolled_back / len(cell.runs):.0f}%", cell.blast()]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 seeds, 100 and 1,000 req/min")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per cell (default 300)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--judges", default=",".join(JUDGES), help="comma-separated judges")
    args = parser.parse_args(argv)
    seeds = args.seeds or (60 if args.quick else 300)
    rates = (100, 1_000) if args.quick else RATES
    effects = (1.0, 2.0, 5.0) if args.quick else EFFECTS
    judges = [j for j in args.judges.split(",") if j]
    started = time.monotonic()
    cells = measure(judges, rates, ERRORS, effects, seeds, args.jobs)
    print(f"istio example, seeds 0-{seeds - 1} per cell, {time.monotonic() - started:.0f}s")
    print(table(cells, judges, list(effects)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
