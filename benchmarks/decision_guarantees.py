"""The acceptance grid of the two guarantees, through the simulator.

Runs `canary.sim.simulate` on the istio example (weights 5/10/20/50, the built-in error-rate
check — max 1%, margin 0.2 — and latency check, inconclusiveDeadline 10m, onUndecided
rollback, detect 2x, alpha = beta = 0.05) over 100/600/3,000 requests a minute x primary
errors 0.1/0.5/1% x canaries 1x (healthy), 1.5x, 2x, 3x, 5x errors and 1.5x, 2.5x latency,
the same seeds 0..N-1 in every cell, for the default judge (``sequential``) and Flagger's
rules (``flagger``: the threshold judge, errors <= 1% and p99 <= 500 ms per 1-minute window,
failureLimit 5, minRequests 20). Optional rows: the real-traffic worlds of canary/sim/weather.py.

Per cell: promoted, rolled back by a judgement (a crossing or failed ticks) and undecided at
the deadline (rolled back there: onUndecided's default), each a share of the runs; the median
minutes to the decision; the cost of a bad canary — its excess failed requests during the
analysis, plus, when promoted, its excess for an hour at full traffic — as a mean over runs;
for undecided runs, the median of what the judge said a decision needed (canary requests, and
minutes at the last step's traffic); for healthy canaries the median minutes to promote over
*all* runs (undecided and rolled-back runs count as never: "never" when fewer than half are
promoted) and the mean analysis minutes (canary ready to the decision) beside Wald's floor for
a test promoting as often.

A canary is **bad** (the promotion bound applies) when it fails at least detect (2x) times as
often as its primary *and* more often than the objective (1%); 2.5x latency (about 4% of
requests over 500 ms against 0.003%) is bad too. The healthy column's judged rollbacks are
what alpha bounds.

`benchmarks/decision_publish.py` runs this with the Pareto benchmark and writes the docs;
this command prints the grid's table alone:

    .venv/bin/python benchmarks/decision_guarantees.py                # 500 seeds a cell
    .venv/bin/python benchmarks/decision_guarantees.py --seeds 100 --judges sequential
    .venv/bin/python benchmarks/decision_guarantees.py --worlds --seeds 300
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from decision_minimum import Floors, floors, minutes, rpm_for_deadline, wald_analysis_minutes

from canary.model.analysis import JudgeName
from canary.model.loader import load_rollout
from canary.model.rollout import Rollout
from canary.model.status import Phase
from canary.sim import simulate
from canary.sim.result import SimulationResult
from canary.sim.scenario import Scenario

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "podinfo-istio.yaml"
RATES = (100, 600, 3000)
ERRORS = (0.1, 0.5, 1.0)
CANARIES = {
    "1x": (1.0, 1.0),
    "1.5x": (1.5, 1.0),
    "2x": (2.0, 1.0),
    "3x": (3.0, 1.0),
    "5x": (5.0, 1.0),
    "lat1.5x": (1.0, 1.5),
    "lat2.5x": (1.0, 2.5),
}
JUDGES = ("sequential", "flagger")
DETECT = 2.0
OBJECTIVE = 1.0  # percent: the built-in error-rate check's max
PROMOTED_HOUR = 60.0  # minutes a promoted bad canary serves at full traffic before noticed
WORLDS: dict[str, dict[str, float]] = {
    "bursts 6/h 60s x10": {"bursts_per_hour": 6, "burst_seconds": 60, "burst_error_multiplier": 10},
    "bursts 20/h 20s x20": {
        "bursts_per_hour": 20,
        "burst_seconds": 20,
        "burst_error_multiplier": 20,
    },
    "cycle 60% 20m": {"cycle_amplitude": 0.6, "cycle_minutes": 20},
    "cycle 60% 24h": {"cycle_amplitude": 0.6, "cycle_minutes": 1440},
    "pods 2/2 sd 0.5": {"canary_pods": 2, "primary_pods": 2, "pod_error_sd": 0.5},
    "pods 10/10 sd 0": {"canary_pods": 10, "primary_pods": 10, "pod_error_sd": 0.0},
    "pods 10/10 sd 0.3": {"canary_pods": 10, "primary_pods": 10, "pod_error_sd": 0.3},
    "pods 10/10 sd 0.5": {"canary_pods": 10, "primary_pods": 10, "pod_error_sd": 0.5},
    "pods 1/10 sd 0.5": {"canary_pods": 1, "primary_pods": 10, "pod_error_sd": 0.5},
}
WORLD_CELLS = ((600.0, 0.5), (3000.0, 1.0))


@dataclass(frozen=True)
class Cell:
    rate: float
    errors: float
    canary: str
    world: str = ""

    def scenario(self) -> Scenario:
        error_x, latency_x = CANARIES[self.canary]
        extra: dict[str, Any] = dict(WORLDS.get(self.world, {}))
        return Scenario(
            name="grid",
            requests_per_minute=self.rate,
            primary_error_percent=self.errors,
            canary_error_multiplier=error_x,
            canary_latency_multiplier=latency_x,
            **extra,
        )

    @property
    def bad(self) -> bool:
        error_x, latency_x = CANARIES[self.canary]
        if latency_x >= 2.5:
            return True
        return error_x >= DETECT and self.errors * error_x >= OBJECTIVE

    @property
    def healthy(self) -> bool:
        return self.canary == "1x"


@dataclass(frozen=True)
class CellResult:
    """One judge over one cell's seeds. Shares are of the runs; minutes from the new
    revision unless named analysis minutes (canary ready to the decision)."""

    cell: Cell
    judge: str
    seeds: int
    promoted: float
    judged: float
    undecided: float
    minutes: float
    promote_minutes: float | None  # median over the promoted runs
    promote_all: float  # median over all runs, never-promoted ones as inf
    analysis_mean: float  # mean analysis minutes over all runs
    cost: float
    needs: float | None  # median canary requests an undecided run said it needed
    needs_minutes: float | None  # ... in minutes at the last step's canary traffic
    undecided_unsaid: int  # undecided runs whose message gave no traffic figure
    rpm_needed: float  # healthy cells: the traffic the exact minimum needs within the deadline
    floors: Floors
    wald_at_share: float  # Wald's floor (analysis minutes) at this run's promoted share


@lru_cache(maxsize=4)
def judge_rollout(judge: str) -> Rollout:
    rollout = load_rollout(EXAMPLE)
    if judge == "flagger":
        rollout.spec.analysis.failure_limit = 5
    return rollout


def _decided_at(result: SimulationResult) -> float:
    """Virtual seconds to the decision (promotion or rollback started, or the end)."""
    for entry in result.timeline:
        if entry.phase in (Phase.PROMOTING, Phase.ROLLING_BACK, Phase.PAUSED):
            return entry.time
    return result.duration_seconds


def run_cell(cell: Cell, judge: str, seeds: int) -> CellResult:
    scenario = cell.scenario()
    name = JudgeName.THRESHOLD if judge == "flagger" else JudgeName.SEQUENTIAL
    rollout = judge_rollout(judge)
    excess_rate = (scenario.canary_error_percent - scenario.primary_error_percent) / 100.0
    promoted = judged = undecided = unsaid = 0
    all_minutes: list[float] = []
    promoted_minutes: list[float] = []
    ranked: list[float] = []
    analysis: list[float] = []
    costs: list[float] = []
    needs: list[float] = []
    for seed in range(seeds):
        result = simulate(rollout, scenario, seed, judge=name, record_timeline=cell.healthy)
        taken = result.duration_seconds / 60.0
        all_minutes.append(taken)
        if cell.healthy:
            analysis.append((_decided_at(result) - scenario.canary_ready_seconds) / 60.0)
        excess = (
            result.canary_errors - result.canary_requests * scenario.primary_error_percent / 100
        )
        cost = max(excess, 0.0)
        if result.phase is Phase.SUCCEEDED:
            promoted += 1
            promoted_minutes.append(taken)
            cost += max(excess_rate, 0.0) * cell.rate * PROMOTED_HOUR
        elif "inconclusiveDeadline" in result.reason:
            undecided += 1
            said = _needed(result.reason)
            unsaid += not said
            needs.extend(said)
        elif result.phase is Phase.FAILED:
            judged += 1
        ranked.append(taken if result.phase is Phase.SUCCEEDED else math.inf)
        costs.append(cost)
    share = promoted / seeds
    last_share = rollout.spec.strategy.canary_or_default().schedule()[-1] / 100.0
    need = statistics.median(needs) if needs else None
    return CellResult(
        cell=cell,
        judge=judge,
        seeds=seeds,
        promoted=share,
        judged=judged / seeds,
        undecided=undecided / seeds,
        minutes=statistics.median(all_minutes),
        promote_minutes=statistics.median(promoted_minutes) if promoted_minutes else None,
        promote_all=_median_low(ranked),
        analysis_mean=statistics.fmean(analysis) if analysis else math.nan,
        cost=statistics.fmean(costs),
        needs=need,
        needs_minutes=need / (cell.rate * last_share) if need is not None else None,
        undecided_unsaid=unsaid,
        rpm_needed=_rpm_needed(rollout, scenario) if cell.healthy else math.nan,
        floors=floors(rollout, scenario),
        wald_at_share=wald_analysis_minutes(rollout, scenario, share) if cell.healthy else 0.0,
    )


def _rpm_needed(rollout: Rollout, scenario: Scenario) -> float:
    deadline = rollout.spec.analysis.inconclusive_deadline / 60.0
    return rpm_for_deadline(judge_rollout("sequential"), scenario, deadline)


def _median_low(values: list[float]) -> float:
    """The median with infinities (the lower middle for an even count: a run at the deadline
    and one never promoted make the median the deadline's, not 'never')."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def _needed(reason: str) -> list[float]:
    """The 'needs about N more canary requests' figures in a deadline message."""
    found = []
    for part in reason.split("needs about ")[1:]:
        number = part.split(" ", 1)[0].replace(",", "")
        try:
            found.append(float(number))
        except ValueError:
            continue
    return found[:1]


def grid_cells(rates: Iterable[float] = RATES) -> list[Cell]:
    return [Cell(r, e, c) for r in rates for e in ERRORS for c in CANARIES]


def world_cells(only: str = "") -> list[Cell]:
    """The real-traffic rows, or those whose world's name contains ``only``."""
    return [
        Cell(rate, errors, canary, world)
        for world in WORLDS
        if only in world
        for canary in ("1x", "2x")
        for rate, errors in WORLD_CELLS
    ]


def _task(args: tuple[Cell, str, int]) -> CellResult:
    return run_cell(*args)


def run_all(
    cells: Sequence[Cell], judges: Sequence[str], seeds: int, jobs: int = 1
) -> list[CellResult]:
    """Every judge on every cell, in ``jobs`` processes, in the order given."""
    tasks = [(cell, judge, seeds) for cell in cells for judge in judges]
    if jobs <= 1:
        return [_task(t) for t in tasks]
    with ProcessPoolExecutor(jobs) as pool:
        return list(pool.map(_task, tasks))


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"


HEAD = (
    "| world | rpm | primary | canary | bad | judge | promoted | judged rollback | "
    "undecided (rolled back) | median min | promoted: median min | healthy: promoted by "
    "(median of all runs) | exact min | Wald floor | mean analysis min / Wald floor at its "
    "promoted share | mean cost | undecided: needed (median) | undecided without a figure | "
    "traffic the exact minimum needs within the deadline |"
)


def table_row(row: CellResult) -> str:
    cell = row.cell
    need = ""
    if row.needs is not None and row.needs_minutes is not None:
        need = f"{row.needs:,.0f} req (~{row.needs_minutes:.0f} min)"
    promote = f"{row.promote_minutes:.1f}" if row.promote_minutes is not None else ""
    healthy = exact = wald = mean = traffic = ""
    if cell.healthy:
        traffic = f"{row.rpm_needed:,.0f}/min" if math.isfinite(row.rpm_needed) else "never"
        healthy = minutes(row.promote_all)
        exact, wald = minutes(row.floors.fixed), minutes(row.floors.wald)
        mean = f"{row.analysis_mean:.1f} / {row.wald_at_share:.1f}"
    return (
        f"| {cell.world or 'calm'} | {cell.rate:g} | {cell.errors:g}% | {cell.canary} | "
        f"{'yes' if cell.bad else ''} | {row.judge} | {pct(row.promoted)} | "
        f"{pct(row.judged)} | {pct(row.undecided)} | {row.minutes:.1f} | {promote} | "
        f"{healthy} | {exact} | {wald} | {mean} | {row.cost:,.0f} | {need} | "
        f"{row.undecided_unsaid or ''} | {traffic} |"
    )


def table(rows: Sequence[CellResult]) -> str:
    lines = [HEAD, "|" + "---|" * (HEAD.count("|") - 1)]
    return "\n".join([*lines, *(table_row(r) for r in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seeds", type=int, default=500)
    parser.add_argument("--judges", default=",".join(JUDGES))
    parser.add_argument("--worlds", action="store_true", help="the real-traffic rows only")
    parser.add_argument(
        "--only", default="", help="with --worlds: the worlds whose name contains this ('pods')"
    )
    parser.add_argument("--rates", default=",".join(str(r) for r in RATES))
    parser.add_argument("--jobs", type=int, default=1, help="processes")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    judges = args.judges.split(",")
    cells = world_cells(args.only) if args.worlds else grid_cells(rates)
    started = time.time()
    print(table(run_all(cells, judges, args.seeds, args.jobs)))
    print(
        f"\n{len(cells)} cells x {len(judges)} judges x {args.seeds} seeds in "
        f"{time.time() - started:.0f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
