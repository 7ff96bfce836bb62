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
and, for undecided runs, the median of what the judge said a decision needed.

A canary is **bad** (the promotion bound applies) when it fails at least detect (2x) times as
often as its primary *and* more often than the objective (1%); 2.5x latency (about 4% of
requests over 500 ms against 0.003%) is bad too. The healthy column's judged rollbacks are
what alpha bounds.

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
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from canary.model.analysis import JudgeName
from canary.model.loader import load_rollout
from canary.model.rollout import Rollout
from canary.model.status import Phase
from canary.sim import simulate
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
DETECT = 2.0
OBJECTIVE = 1.0  # percent: the built-in error-rate check's max
BETA = 0.05
PROMOTED_HOUR = 60.0  # minutes a promoted bad canary serves at full traffic before noticed
WORLDS: dict[str, dict[str, float]] = {
    "bursts 6/h 60s x10": {"bursts_per_hour": 6, "burst_seconds": 60, "burst_error_multiplier": 10},
    "bursts 20/h 20s x20": {
        "bursts_per_hour": 20,
        "burst_seconds": 20,
        "burst_error_multiplier": 20,
    },
    "cycle 60% 20m": {"cycle_amplitude": 0.6, "cycle_minutes": 20},
    "pods 2/2 sd 0.5": {"canary_pods": 2, "primary_pods": 2, "pod_error_sd": 0.5},
    "pods 10/10 sd 0.3": {"canary_pods": 10, "primary_pods": 10, "pod_error_sd": 0.3},
    "pods 10/10 sd 0.5": {"canary_pods": 10, "primary_pods": 10, "pod_error_sd": 0.5},
    "pods 1/10 sd 0.5": {"canary_pods": 1, "primary_pods": 10, "pod_error_sd": 0.5},
}


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


@lru_cache(maxsize=4)
def _rollout(judge: str) -> Rollout:
    rollout = load_rollout(EXAMPLE)
    if judge == "flagger":
        rollout.spec.analysis.failure_limit = 5
    return rollout


def run_cell(cell: Cell, judge: str, seeds: int) -> dict[str, Any]:
    scenario = cell.scenario()
    name = JudgeName.THRESHOLD if judge == "flagger" else JudgeName.SEQUENTIAL
    rollout = _rollout(judge)
    excess_rate = (scenario.canary_error_percent - scenario.primary_error_percent) / 100.0
    promoted = judged = undecided = 0
    minutes: list[float] = []
    promoted_minutes: list[float] = []
    costs: list[float] = []
    needs: list[float] = []
    for seed in range(seeds):
        result = simulate(rollout, scenario, seed, judge=name, record_timeline=False)
        minutes.append(result.duration_seconds / 60.0)
        excess = (
            result.canary_errors - result.canary_requests * scenario.primary_error_percent / 100
        )
        cost = max(excess, 0.0)
        if result.phase is Phase.SUCCEEDED:
            promoted += 1
            promoted_minutes.append(result.duration_seconds / 60.0)
            cost += max(excess_rate, 0.0) * cell.rate * PROMOTED_HOUR
        elif "inconclusiveDeadline" in result.reason:
            undecided += 1
            needs.extend(_needed(result.reason))
        elif result.phase is Phase.FAILED:
            judged += 1
        costs.append(cost)
    return {
        "promoted": promoted / seeds,
        "judged": judged / seeds,
        "undecided": undecided / seeds,
        "minutes": statistics.median(minutes),
        "promote_minutes": statistics.median(promoted_minutes) if promoted_minutes else None,
        "cost": statistics.fmean(costs),
        "needs": statistics.median(needs) if needs else None,
    }


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


def wald_minutes(rate: float, errors: float, alpha: float = 0.05, beta: float = BETA) -> float:
    """A floor for promoting a healthy canary on the comparison: Wald's expected number of
    failures for an SPRT of ratio 1 against ratio DETECT at an even split (the most
    informative share), over both sides' failures a minute at the full rate. Not the exact
    minimum: it ignores the steps before 50%, the objective route and overshoot."""
    p_one, p_bad = 0.5, DETECT / (1.0 + DETECT)
    kl = p_one * math.log(p_one / p_bad) + (1 - p_one) * math.log((1 - p_one) / (1 - p_bad))
    failures = (
        (1 - alpha) * math.log((1 - alpha) / beta) - alpha * math.log((1 - beta) / alpha)
    ) / kl
    return failures / (rate * errors / 100.0)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=500)
    parser.add_argument("--judges", default="sequential,flagger")
    parser.add_argument("--worlds", action="store_true", help="the real-traffic rows only")
    parser.add_argument("--rates", default=",".join(str(r) for r in RATES))
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    judges = args.judges.split(",")
    cells: list[Cell] = []
    if args.worlds:
        for world in WORLDS:
            for canary in ("1x", "2x"):
                cells += [Cell(600, 0.5, canary, world), Cell(3000, 1.0, canary, world)]
    else:
        cells = [Cell(r, e, c) for r in rates for e in ERRORS for c in CANARIES]
    head = "| world | rpm | primary | canary | bad | judge | promoted | judged rollback | "
    head += "undecided (rolled back) | median min | promoted: median min | mean cost | "
    head += "needed (median) | Wald min |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    started = time.time()
    for cell in cells:
        for judge in judges:
            row = run_cell(cell, judge, args.seeds)
            needs = f"{row['needs']:,.0f} req" if row["needs"] is not None else ""
            wald = f"{wald_minutes(cell.rate, cell.errors):.1f}" if cell.canary == "1x" else ""
            promote = row["promote_minutes"]
            shown = f"{promote:.1f}" if promote is not None else ""
            print(
                f"| {cell.world or 'calm'} | {cell.rate:g} | {cell.errors:g}% | {cell.canary} | "
                f"{'yes' if cell.bad else ''} | {judge} | {_pct(row['promoted'])} | "
                f"{_pct(row['judged'])} | {_pct(row['undecided'])} | "
                f"{row['minutes']:.1f} | {shown} | "
                f"{row['cost']:,.0f} | {needs} | {wald} |",
                flush=True,
            )
    print(
        f"\n{len(cells)} cells x {len(judges)} judges x {args.seeds} seeds in "
        f"{time.time() - started:.0f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
