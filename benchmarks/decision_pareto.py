"""Which judge is better: each tuned to the same false-rollback level, per cell.

For every cell (requests a minute x primary errors, and the real-traffic worlds of
decision_guarantees.WORLDS at 600/0.5% and 3,000/1%) and every configuration of each judge
family, seeded runs of the istio example through the simulator measure:

- **false rollbacks**: healthy (1x) canaries rolled back for any reason (a judgement, failed
  ticks, or the deadline: a person sees a rollback either way);
- **cost**: the expected bad requests per bad canary (2x, 3x and 5x errors, averaged):
  its excess failed requests during the analysis, plus, when it is promoted, its excess for
  an hour at full traffic (a promoted bad canary is noticed late);
- **promoted share of T-times-worse canaries** (2x and worse, T = 2);
- **median minutes to promote a healthy canary** (over the promoted runs), beside the exact
  fixed-sample minimum and Wald's floor (benchmarks/decision_minimum.py).

Families and their knobs:

- ``flagger``: the threshold judge (errors <= max per 1-minute window, p99 <= 500 ms) with
  minRequests 1 (so it judges at low traffic), max in {1, 2, 5}% and failureLimit in {3, 5, 8};
- ``sequential``: the default judge with detect in {2x, 3x}, onUndecided in {rollback,
  promote} and inconclusiveDeadline in {10m, 20m, 30m, 60m}; the shipped default is detect
  2x, onUndecided rollback, 10m. An hour is what a service at 100 requests a minute needs:
  its primary fails about once in ten minutes at 0.1%, and the heuristic trough guard
  (docs/analysis.md, assumption 3) holds some healthy canaries past 30 minutes there.

Two comparisons per cell: each family tuned (false rollbacks <= TARGET, 2%, the lowest cost;
none: the family cannot reach the target there), and the default settings against Flagger's
rules tuned to false rollbacks no higher than the default's own in that cell.

    .venv/bin/python benchmarks/decision_pareto.py                 # 100 seeds a run set
    .venv/bin/python benchmarks/decision_pareto.py --seeds 30      # a quick look
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from decision_guarantees import WORLD_CELLS, WORLDS
from decision_minimum import Floors, floors, minutes

from canary.analysis.checks import resolve_checks
from canary.model.analysis import JudgeName, UndecidedOutcome
from canary.model.loader import load_rollout
from canary.model.rollout import Rollout
from canary.model.status import Phase
from canary.sim import simulate
from canary.sim.scenario import Scenario

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "podinfo-istio.yaml"
RATES = (100, 600, 3000)
ERRORS = (0.1, 0.5, 1.0)
BAD = (2.0, 3.0, 5.0)
TARGET = 0.02
HOUR = 60.0
DEFAULT_LABEL = "detect 2x, onUndecided rollback, deadline 10m"


@dataclass(frozen=True)
class Config:
    family: str
    knobs: tuple[tuple[str, str], ...]

    @property
    def label(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.knobs)


@dataclass(frozen=True)
class PCell:
    """A cell of the Pareto table: traffic and primary errors, in calm or a world."""

    rate: float
    errors: float
    world: str = ""

    def healthy(self) -> Scenario:
        extra: dict[str, Any] = dict(WORLDS.get(self.world, {}))
        return Scenario(
            name="aa", requests_per_minute=self.rate, primary_error_percent=self.errors, **extra
        )

    @property
    def label(self) -> str:
        return f"{self.world or 'calm'} | {self.rate:g} | {self.errors:g}%"


def configs() -> list[Config]:
    found = [
        Config("flagger", (("max", f"{m:g}%"), ("failureLimit", str(f))))
        for m, f in itertools.product((1.0, 2.0, 5.0), (3, 5, 8))
    ]
    found += [
        Config("sequential", (("detect", d), ("onUndecided", o), ("deadline", w)))
        for d, o, w in itertools.product(
            ("2x", "3x"), ("rollback", "promote"), ("10m", "20m", "30m", "60m")
        )
    ]
    return found


@lru_cache(maxsize=64)
def rollout_for(config: Config) -> Rollout:
    rollout = load_rollout(EXAMPLE)
    knobs = dict(config.knobs)
    analysis = rollout.spec.analysis
    if config.family == "flagger":
        analysis.min_requests = 1
        analysis.failure_limit = int(knobs["failureLimit"])
        maximum = float(knobs["max"].rstrip("%"))
        analysis.checks = [
            c.model_copy(update={"max": maximum}) if c.name == "error-rate" else c
            for c in resolve_checks(rollout)
        ]
    else:
        analysis.detect = float(knobs["detect"].rstrip("x"))
        analysis.on_undecided = UndecidedOutcome(knobs["onUndecided"])
        analysis.inconclusive_deadline = 60.0 * float(knobs["deadline"].rstrip("m"))
    return rollout


@dataclass(frozen=True)
class Outcome:
    false_rollbacks: float
    cost: float
    promoted_bad: float
    promote_minutes: float | None


def measure(config: Config, cell: PCell, seeds: int) -> Outcome:
    rollout = rollout_for(config)
    judge = JudgeName.THRESHOLD if config.family == "flagger" else JudgeName.SEQUENTIAL
    healthy = cell.healthy()
    rolled, taken = 0, []
    for seed in range(seeds):
        result = simulate(rollout, healthy, seed, judge=judge, record_timeline=False)
        if result.phase is Phase.SUCCEEDED:
            taken.append(result.duration_seconds / 60.0)
        else:
            rolled += 1
    costs, promoted = [], 0
    for ratio in BAD:
        world = healthy.model_copy(update={"name": "bad", "canary_error_multiplier": ratio})
        excess_rate = cell.errors * (ratio - 1.0) / 100.0
        for seed in range(seeds):
            result = simulate(rollout, world, seed, judge=judge, record_timeline=False)
            served = result.canary_errors - result.canary_requests * cell.errors / 100.0
            cost = max(served, 0.0)
            if result.phase is Phase.SUCCEEDED:
                promoted += 1
                cost += excess_rate * cell.rate * HOUR
            costs.append(cost)
    return Outcome(
        false_rollbacks=rolled / seeds,
        cost=statistics.fmean(costs),
        promoted_bad=promoted / (seeds * len(BAD)),
        promote_minutes=statistics.median(taken) if taken else None,
    )


def _task(args: tuple[Config, PCell, int]) -> Outcome:
    return measure(*args)


Pick = tuple[Config, Outcome] | None


@dataclass
class CellChoice:
    """One cell's measured configurations and the picks compared."""

    cell: PCell
    outcomes: list[tuple[Config, Outcome]]
    floors: Floors

    def tuned(self, family: str, limit: float = TARGET) -> Pick:
        """The family's cheapest configuration with false rollbacks <= limit."""
        allowed = [
            (c, o)
            for c, o in self.outcomes
            if c.family == family and o.false_rollbacks <= limit + 1e-12
        ]
        return min(allowed, key=lambda p: p[1].cost) if allowed else None

    def default(self) -> tuple[Config, Outcome]:
        return next((c, o) for c, o in self.outcomes if c.label == DEFAULT_LABEL)

    def flagger_at_default(self) -> Pick:
        """Flagger's rules tuned to false rollbacks no higher than the default judge's."""
        return self.tuned("flagger", self.default()[1].false_rollbacks)


def pareto_cells(rates: Sequence[float], errors: Sequence[float], worlds: bool) -> list[PCell]:
    cells = [PCell(r, e) for r, e in itertools.product(rates, errors)]
    if worlds:
        cells += [PCell(r, e, w) for w in WORLDS for r, e in WORLD_CELLS]
    return cells


def run_pareto(cells: Sequence[PCell], seeds: int, jobs: int = 1) -> list[CellChoice]:
    every = configs()
    tasks = [(config, cell, seeds) for cell in cells for config in every]
    if jobs <= 1:
        found = [_task(t) for t in tasks]
    else:
        with ProcessPoolExecutor(jobs) as pool:
            found = list(pool.map(_task, tasks))
    base = load_rollout(EXAMPLE)
    choices = []
    for index, cell in enumerate(cells):
        part = found[index * len(every) : (index + 1) * len(every)]
        choices.append(
            CellChoice(cell, list(zip(every, part, strict=True)), floors(base, cell.healthy()))
        )
    return choices


def full_table(choices: Sequence[CellChoice]) -> str:
    lines = [
        "| world | rpm | primary | judge | knobs | false rollbacks | cost per bad canary | "
        "bad promoted | healthy promoted in (median min) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for choice in choices:
        for config, out in choice.outcomes:
            taken = out.promote_minutes
            lines.append(
                f"| {choice.cell.label} | {config.family} | {config.label} | "
                f"{100 * out.false_rollbacks:.0f}% | {out.cost:,.1f} | "
                f"{100 * out.promoted_bad:.0f}% | "
                f"{f'{taken:.1f}' if taken is not None else 'never'} |"
            )
    return "\n".join(lines)


def _cost(pick: Pick) -> str:
    return f"{pick[1].cost:,.1f}" if pick else "-"


def _ratio(seq: Pick, flg: Pick) -> float | None:
    if seq and flg and flg[1].cost > 0:
        return seq[1].cost / flg[1].cost
    return None


def _promote(pick: Pick) -> str:
    if not pick or pick[1].promote_minutes is None:
        return "never"
    return f"{pick[1].promote_minutes:.1f}"


def tuned_table(choices: Sequence[CellChoice]) -> tuple[str, list[float]]:
    """Each family tuned to false rollbacks <= TARGET; the exact minimum beside each time."""
    lines = [
        "| world | rpm | primary | sequential (knobs) | false rollbacks / bad promoted | cost | "
        "flagger (knobs) | false rollbacks / bad promoted | cost | cost ratio | healthy "
        "promoted in, sequential / flagger (median min) | exact minimum / Wald floor (min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ratios = []
    for choice in choices:
        seq, flg = choice.tuned("sequential"), choice.tuned("flagger")
        ratio = _ratio(seq, flg)
        if ratio is not None:
            ratios.append(ratio)
        cells = []
        for pick in (seq, flg):
            if pick is None:
                cells.append(f"none reaches {TARGET:.0%} | - | -")
            else:
                out = pick[1]
                rates = f"{100 * out.false_rollbacks:.0f}% / {100 * out.promoted_bad:.0f}%"
                cells.append(f"{pick[0].label} | {rates} | {_cost(pick)}")
        lines.append(
            f"| {choice.cell.label} | {cells[0]} | {cells[1]} | "
            f"{f'{ratio:.2f}' if ratio is not None else '-'} | "
            f"{_promote(seq)} / {_promote(flg)} | "
            f"{minutes(choice.floors.fixed)} / {minutes(choice.floors.wald)} |"
        )
    return "\n".join(lines), ratios


def default_table(choices: Sequence[CellChoice]) -> tuple[str, list[float]]:
    """The shipped default against Flagger tuned to no more false rollbacks than it."""
    lines = [
        "| world | rpm | primary | default: false rollbacks / bad promoted | cost | flagger "
        "tuned to at most as many false rollbacks (knobs) | false rollbacks / bad promoted | "
        "cost | cost ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ratios = []
    for choice in choices:
        default, flg = choice.default(), choice.flagger_at_default()
        ratio = _ratio(default, flg)
        if ratio is not None:
            ratios.append(ratio)
        out = default[1]
        mine = f"{100 * out.false_rollbacks:.0f}% / {100 * out.promoted_bad:.0f}%"
        if flg is None:
            theirs = "none that low | - | -"
        else:
            rates = f"{100 * flg[1].false_rollbacks:.0f}% / {100 * flg[1].promoted_bad:.0f}%"
            theirs = f"{flg[0].label} | {rates} | {_cost(flg)}"
        lines.append(
            f"| {choice.cell.label} | {mine} | {out.cost:,.1f} | {theirs} | "
            f"{f'{ratio:.2f}' if ratio is not None else '-'} |"
        )
    return "\n".join(lines), ratios


def ratio_summary(ratios: Sequence[float], cells: int) -> str:
    if not ratios:
        return "no comparable cells"
    cheaper = sum(r < 1 for r in ratios)
    return (
        f"median cost ratio {statistics.median(ratios):.2f}; cheaper in {cheaper} of "
        f"{len(ratios)} comparable cells (of {cells}); worst {max(ratios):.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--rates", default=",".join(str(r) for r in RATES))
    parser.add_argument("--errors", default=",".join(f"{e:g}" for e in ERRORS))
    parser.add_argument("--worlds", action="store_true", help="add the real-traffic rows")
    parser.add_argument("--jobs", type=int, default=1, help="processes")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    errors_list = [float(e) for e in args.errors.split(",")]
    started = time.time()
    cells = pareto_cells(rates, errors_list, args.worlds)
    choices = run_pareto(cells, args.seeds, args.jobs)
    print(full_table(choices))
    tuned, ratios = tuned_table(choices)
    print(f"\nTuned to false rollbacks <= {TARGET:.0%} (per cell, lowest cost):\n\n{tuned}")
    print(f"\nsequential/flagger: {ratio_summary(ratios, len(cells))}")
    default, default_ratios = default_table(choices)
    print(f"\nThe default settings against Flagger tuned to them:\n\n{default}")
    print(f"\ndefault/flagger: {ratio_summary(default_ratios, len(cells))}")
    print(f"\n{args.seeds} seeds per run set in {time.time() - started:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
