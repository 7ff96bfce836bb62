"""Which judge is better: each tuned to the same false-rollback level, per cell.

For every cell (requests a minute x primary errors) and every configuration of each judge
family, seeded runs of the istio example through the simulator measure:

- **false rollbacks**: healthy (1x) canaries rolled back for any reason (a judgement, failed
  ticks, or the deadline: a person sees a rollback either way);
- **cost**: the expected bad requests per bad canary (2x, 3x and 5x errors, averaged):
  its excess failed requests during the analysis, plus, when it is promoted, its excess for
  an hour at full traffic (a promoted bad canary is noticed late);
- **promoted share of T-times-worse canaries** (2x and worse, T = 2);
- **median minutes to promote a healthy canary**.

Families and their knobs:

- ``flagger``: the threshold judge (errors <= max per 1-minute window, p99 <= 500 ms) with
  minRequests 1 (so it judges at low traffic), max in {1, 2, 5}% and failureLimit in {3, 5, 8};
- ``sequential``: the default judge with detect in {2x, 3x}, onUndecided in {rollback,
  promote} and inconclusiveDeadline in {10m, 20m, 30m}.

Per cell and family the configuration with false rollbacks <= TARGET (2%) and the lowest cost
is chosen (none: the family cannot reach the target there); the headline compares the chosen
configurations. The whole table of configurations is printed too (the Pareto data).

    .venv/bin/python benchmarks/decision_pareto.py                 # 100 seeds a run set
    .venv/bin/python benchmarks/decision_pareto.py --seeds 30      # a quick look
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

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


@dataclass(frozen=True)
class Config:
    family: str
    knobs: tuple[tuple[str, str], ...]

    @property
    def label(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.knobs)


def configs() -> list[Config]:
    found = [
        Config("flagger", (("max", f"{m:g}%"), ("failureLimit", str(f))))
        for m, f in itertools.product((1.0, 2.0, 5.0), (3, 5, 8))
    ]
    found += [
        Config("sequential", (("detect", d), ("onUndecided", o), ("deadline", w)))
        for d, o, w in itertools.product(
            ("2x", "3x"), ("rollback", "promote"), ("10m", "20m", "30m")
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


@dataclass
class Outcome:
    false_rollbacks: float
    cost: float
    promoted_bad: float
    promote_minutes: float | None


def measure(config: Config, rate: float, errors: float, seeds: int) -> Outcome:
    rollout = rollout_for(config)
    judge = JudgeName.THRESHOLD if config.family == "flagger" else JudgeName.SEQUENTIAL
    healthy = Scenario(name="aa", requests_per_minute=rate, primary_error_percent=errors)
    rolled, minutes = 0, []
    for seed in range(seeds):
        result = simulate(rollout, healthy, seed, judge=judge, record_timeline=False)
        if result.phase is Phase.SUCCEEDED:
            minutes.append(result.duration_seconds / 60.0)
        else:
            rolled += 1
    costs, promoted = [], 0
    for ratio in BAD:
        world = healthy.model_copy(update={"name": "bad", "canary_error_multiplier": ratio})
        excess_rate = errors * (ratio - 1.0) / 100.0
        for seed in range(seeds):
            result = simulate(rollout, world, seed, judge=judge, record_timeline=False)
            served = result.canary_errors - result.canary_requests * errors / 100.0
            cost = max(served, 0.0)
            if result.phase is Phase.SUCCEEDED:
                promoted += 1
                cost += excess_rate * rate * HOUR
            costs.append(cost)
    return Outcome(
        false_rollbacks=rolled / seeds,
        cost=statistics.fmean(costs),
        promoted_bad=promoted / (seeds * len(BAD)),
        promote_minutes=statistics.median(minutes) if minutes else None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--rates", default=",".join(str(r) for r in RATES))
    parser.add_argument("--errors", default=",".join(f"{e:g}" for e in ERRORS))
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    errors_list = [float(e) for e in args.errors.split(",")]
    started = time.time()
    chosen: dict[tuple[float, float], dict[str, tuple[Config, Outcome] | None]] = {}
    print(
        "| rpm | primary | judge | knobs | false rollbacks | cost per bad canary | "
        "bad promoted | healthy promoted in (median min) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for rate, errors in itertools.product(rates, errors_list):
        best: dict[str, tuple[Config, Outcome] | None] = {"flagger": None, "sequential": None}
        for config in configs():
            out = measure(config, rate, errors, args.seeds)
            minutes = f"{out.promote_minutes:.1f}" if out.promote_minutes is not None else "never"
            print(
                f"| {rate:g} | {errors:g}% | {config.family} | {config.label} | "
                f"{100 * out.false_rollbacks:.0f}% | {out.cost:,.1f} | "
                f"{100 * out.promoted_bad:.0f}% | {minutes} |",
                flush=True,
            )
            current = best[config.family]
            if out.false_rollbacks <= TARGET and (current is None or out.cost < current[1].cost):
                best[config.family] = (config, out)
        chosen[(rate, errors)] = best
    _headline(chosen)
    print(f"\n{args.seeds} seeds per run set in {time.time() - started:.0f}s", file=sys.stderr)
    return 0


def _headline(chosen: dict[tuple[float, float], dict[str, tuple[Config, Outcome] | None]]) -> None:
    print(f"\nTuned to false rollbacks <= {TARGET:.0%} (per cell, lowest cost):\n")
    print("| rpm | primary | sequential (knobs) | cost | flagger (knobs) | cost | cost ratio |")
    print("|---|---|---|---|---|---|---|")
    ratios = []
    for (rate, errors), best in chosen.items():
        seq, flg = best["sequential"], best["flagger"]
        cells = []
        for pick in (seq, flg):
            cells.append(
                (f"{pick[0].label}", f"{pick[1].cost:,.1f}") if pick else ("none reaches 2%", "-")
            )
        ratio = ""
        if seq and flg and flg[1].cost > 0:
            value = seq[1].cost / flg[1].cost
            ratios.append(value)
            ratio = f"{value:.2f}"
        print(
            f"| {rate:g} | {errors:g}% | {cells[0][0]} | {cells[0][1]} | {cells[1][0]} | "
            f"{cells[1][1]} | {ratio} |"
        )
    if ratios:
        better = sum(r < 1 for r in ratios)
        print(
            f"\nmedian cost ratio sequential/flagger {statistics.median(ratios):.2f}; "
            f"sequential cheaper in {better} of {len(ratios)} comparable cells; "
            f"worst {max(ratios):.2f}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
