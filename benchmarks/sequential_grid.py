"""The sequential judge beside Flagger's rules, through the simulator.

Runs `canary.sim.simulate` on the istio example (weights 5/10/20/50, ``interval: 1m``, the
default error-rate and latency checks, inconclusiveDeadline 10m) over a grid of total traffic
(10, 100, 1,000, 10,000 requests a minute), primary error rate (0.1%, 1%) and canary effect
(A/A; 1.5x, 2x, 5x the errors; p99 +20% and +100%, latency multipliers 1.2 and 2), for:

- ``sequential``: the default judge, looking every lookInterval (default min(interval, 20s));
- ``flagger``: Flagger's rules, the threshold judge (errors <= 1%, p99 <= 500 ms per 1-minute
  window) with 5 failed checks to roll back, and the project's default minRequests 20 per
  window (no window at 5% of 10 or 100 requests a minute reaches it: it never judges there);
- ``flagger/1``: the same with minRequests 1, the fair comparison at low traffic.

Seeds are 0 .. N-1 in every cell (the same seeds for every judge). Per cell it prints the
false rollback rate (A/A, with a 95% Wilson interval) and the median and mean minutes to
promote a healthy canary (from the new revision's detection to Succeeded, including the
simulated 30 s readiness and 45 s promotion); for worse canaries the detection rate (any
rollback), and for 5x errors the blast radius (canary errors served until the rollback, median,
p90 and mean over the detected runs) and the mean canary requests to the rollback against the
oracle SPRT's (a test that knows the ratio, looking at every request at the first step's 5%
share, the most favourable: ln 20 / the expected log-likelihood ratio per canary request,
against the check's null 1.2x; shown where at least 90% are detected, since the few runs
detected elsewhere are the lucky ones). Reproduce the tables in docs/analysis.md with:

    .venv/bin/python benchmarks/sequential_grid.py                  # 300 seeds a cell
    .venv/bin/python benchmarks/sequential_grid.py --quick          # 60 seeds, fewer cells
    .venv/bin/python benchmarks/sequential_grid.py --look 30s --judges sequential
    .venv/bin/python benchmarks/sequential_grid.py --cells 1000:0.1,100:1 --effects aa --seeds 1000
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
from canary.model.duration import parse_duration
from canary.model.loader import load_rollout
from canary.model.rollout import Rollout
from canary.model.status import Phase
from canary.sim import simulate
from canary.sim.scenario import Scenario

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "podinfo-istio.yaml"
RATES = (10, 100, 1_000, 10_000)
ERRORS = (0.1, 1.0)
JUDGES = ("sequential", "flagger", "flagger/1")
FLAGGER_FAILURE_LIMIT = 5
ALPHA = 0.05
NULL_RATIO = 1.2  # the built-in error-rate check's margin 0.2
FIRST_SHARE = 0.05


@dataclass(frozen=True, slots=True)
class Effect:
    name: str
    errors: float = 1.0  # canary error multiplier
    latency: float = 1.0  # canary latency multiplier


EFFECTS = {
    "aa": Effect("A/A"),
    "1.5x": Effect("1.5x errors", errors=1.5),
    "2x": Effect("2x errors", errors=2.0),
    "5x": Effect("5x errors", errors=5.0),
    "p99+20%": Effect("p99 +20%", latency=1.2),
    "p99+100%": Effect("p99 +100%", latency=2.0),
}


@dataclass(frozen=True, slots=True)
class Run:
    promoted: bool
    rolled_back: bool
    canary_errors: int
    canary_requests: int
    minutes: float


@lru_cache(maxsize=8)
def _rollout(judge: str, look: float | None) -> Rollout:
    rollout = load_rollout(EXAMPLE)
    name, _, min_requests = judge.partition("/")
    analysis = rollout.spec.analysis
    if name == "flagger":
        analysis.failure_limit = FLAGGER_FAILURE_LIMIT
        if min_requests:
            analysis.min_requests = int(min_requests)
    elif look is not None:
        analysis.look_interval = look
    return rollout


def _judge_name(judge: str) -> JudgeName:
    name = judge.partition("/")[0]
    return JudgeName.THRESHOLD if name == "flagger" else JudgeName(name)


def run_one(args: tuple[str, float | None, float, float, str, int]) -> Run:
    judge, look, rate, error, effect, seed = args
    scenario = Scenario(
        name="grid",
        requests_per_minute=rate,
        primary_error_percent=error,
        canary_error_multiplier=EFFECTS[effect].errors,
        canary_latency_multiplier=EFFECTS[effect].latency,
    )
    rollout = _rollout(judge, look)
    result = simulate(rollout, scenario, seed, judge=_judge_name(judge), record_timeline=False)
    return Run(
        promoted=result.phase is Phase.SUCCEEDED,
        rolled_back=result.phase is Phase.FAILED,
        canary_errors=result.canary_errors,
        canary_requests=result.canary_requests,
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


def oracle_requests(primary_error: float, ratio: float = 5.0, share: float = FIRST_SHARE) -> float:
    """Mean canary requests of the oracle SPRT (Wald): ln(1/alpha) over the expected
    log-likelihood ratio per canary request of the failure split, against NULL_RATIO."""
    odds = share / (1 - share)
    p_alt = odds * ratio / (1 + odds * ratio)
    p_null = odds * NULL_RATIO / (1 + odds * NULL_RATIO)
    kl = p_alt * math.log(p_alt / p_null) + (1 - p_alt) * math.log((1 - p_alt) / (1 - p_null))
    failures_per_request = primary_error * (ratio + (1 - share) / share)
    return math.log(1 / ALPHA) / (failures_per_request * kl)


@dataclass(frozen=True, slots=True)
class Cell:
    judge: str
    rate: int
    error: float
    effect: str
    runs: tuple[Run, ...]

    @property
    def rolled_back(self) -> int:
        return sum(r.rolled_back for r in self.runs)

    def rate_text(self) -> str:
        k, n = self.rolled_back, len(self.runs)
        low, high = wilson(k, n)
        return f"{100 * k / n:.1f}% ({100 * low:.1f}-{100 * high:.1f})"

    def detected(self) -> str:
        return f"{100 * self.rolled_back / len(self.runs):.0f}%"

    def blast(self) -> str:
        errors = [r.canary_errors for r in self.runs if r.rolled_back]
        if not errors:
            return "-"
        median, p90 = np.median(errors), np.percentile(errors, 90)
        return f"{median:.0f} / {p90:.0f} / {np.mean(errors):.1f}"

    def served(self) -> str:
        """Mean canary errors over all runs, promoted ones included."""
        return f"{np.mean([r.canary_errors for r in self.runs]):.1f}"

    def requests(self) -> str:
        counts = [r.canary_requests for r in self.runs if r.rolled_back]
        if len(counts) < 0.9 * len(self.runs):  # the few detected runs are the lucky ones
            return f"- ({self.detected()} detected)"
        mean = float(np.mean(counts))
        return f"{mean:,.0f} ({mean / oracle_requests(self.error / 100):.1f}x)"

    def promotion(self) -> str:
        minutes = [r.minutes for r in self.runs if r.promoted]
        if len(minutes) < len(self.runs) / 4:  # too few promoted for a median that means much
            return f"- ({len(minutes)} promoted)"
        return f"{np.median(minutes):.1f} / {np.mean(minutes):.1f}"


def measure(
    judges: Iterable[str],
    look: float | None,
    cells: Iterable[tuple[int, float]],
    effects: Iterable[str],
    seeds: int,
    jobs: int,
) -> list[Cell]:
    keys = [
        (judge, rate, error, effect)
        for rate, error in cells
        for effect in effects
        for judge in judges
    ]
    tasks = [(j, look, float(r), e, x, s) for j, r, e, x in keys for s in range(seeds)]
    with ProcessPoolExecutor(jobs) as pool:
        runs = list(pool.map(run_one, tasks, chunksize=max(1, seeds // 4)))
    return [
        Cell(judge, rate, error, effect, tuple(runs[i * seeds : (i + 1) * seeds]))
        for i, (judge, rate, error, effect) in enumerate(keys)
    ]


def _row_keys(cells: list[Cell]) -> list[tuple[float, int]]:
    return sorted({(c.error, c.rate) for c in cells})


def aa_table(cells: list[Cell], judges: list[str]) -> str:
    by_key = {(c.judge, c.rate, c.error, c.effect): c for c in cells}
    header = ["primary errors", "req/min"]
    header += [f"{j}: false rollbacks (95% CI)" for j in judges]
    header += [f"{j}: promotion median / mean (min)" for j in judges]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for error, rate in _row_keys(cells):
        found = [by_key.get((j, rate, error, "aa")) for j in judges]
        if not any(found):
            continue
        row = [f"{error:g}%", f"{rate:,}"]
        row += [c.rate_text() if c else "" for c in found]
        row += [c.promotion() if c else "" for c in found]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def worse_table(cells: list[Cell], judges: list[str], effects: list[str]) -> str:
    by_key = {(c.judge, c.rate, c.error, c.effect): c for c in cells}
    worse = [e for e in effects if e != "aa"]
    header = ["primary errors", "req/min"]
    header += [f"{EFFECTS[e].name}: {' / '.join(judges)}" for e in worse]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for error, rate in _row_keys(cells):
        row = [f"{error:g}%", f"{rate:,}"]
        for effect in worse:
            found = [by_key.get((j, rate, error, effect)) for j in judges]
            row.append(" / ".join(c.detected() if c else "" for c in found))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def blast_table(cells: list[Cell], judges: list[str]) -> str:
    by_key = {(c.judge, c.rate, c.error, c.effect): c for c in cells}
    header = ["primary errors", "req/min"]
    header += [f"{j}: blast median / p90 / mean" for j in judges]
    header += [f"{j}: errors served, all runs" for j in judges]
    header += ["sequential: canary requests to detect (x oracle)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for error, rate in _row_keys(cells):
        found = [by_key.get((j, rate, error, "5x")) for j in judges]
        if not any(found):
            continue
        row = [f"{error:g}%", f"{rate:,}"]
        row += [c.blast() if c else "" for c in found]
        row += [c.served() if c else "" for c in found]
        seq = by_key.get(("sequential", rate, error, "5x"))
        row.append(seq.requests() if seq else "")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _cells(text: str | None, quick: bool) -> list[tuple[int, float]]:
    if text:
        pairs = [part.split(":") for part in text.split(",") if part]
        return [(int(rate), float(error)) for rate, error in pairs]
    rates = (100, 1_000) if quick else RATES
    return [(rate, error) for error in ERRORS for rate in rates]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 seeds, 100 and 1,000 req/min")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per cell (default 300)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--judges", default=",".join(JUDGES), help="comma-separated judges")
    parser.add_argument("--look", default=None, help="the sequential judge's lookInterval")
    parser.add_argument("--cells", default=None, help="rate:error pairs, e.g. 1000:0.1,100:1")
    parser.add_argument(
        "--effects",
        default=",".join(EFFECTS),
        help=f"among {', '.join(EFFECTS)}".replace("%", "%%"),
    )
    args = parser.parse_args(argv)
    seeds = args.seeds or (60 if args.quick else 300)
    effects = [e for e in args.effects.split(",") if e]
    if args.quick and args.effects == parser.get_default("effects"):
        effects = ["aa", "2x", "5x"]
    judges = [j for j in args.judges.split(",") if j]
    look = parse_duration(args.look) if args.look else None
    started = time.monotonic()
    cells = measure(judges, look, _cells(args.cells, args.quick), effects, seeds, args.jobs)
    shown = f", lookInterval {args.look}" if args.look else ""
    print(f"istio example{shown}, seeds 0-{seeds - 1} per cell, {time.monotonic() - started:.0f}s")
    if "aa" in effects:
        print("\nHealthy canaries (A/A)\n")
        print(aa_table(cells, judges))
    if any(e != "aa" for e in effects):
        print("\nWorse canaries: rolled back\n")
        print(worse_table(cells, judges, effects))
    if "5x" in effects:
        print("\n5x errors: canary errors served\n")
        print(blast_table(cells, judges))
    return 0


if __name__ == "__main__":
    sys.exit(main())
