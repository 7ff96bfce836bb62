"""Simulator throughput: simulated rollouts a second on one core, for backtesting a policy over
thousands of scenarios (target: 1,000 a second).

Runs `canary.sim.simulate(..., record_timeline=False)` on examples/podinfo-istio.yaml (weights
5/10/20/50, 1-minute ticks, the istio policy's error-rate and latency checks) for each judge
and each built-in scenario (healthy: the canary is the primary, an A/A test; error-regression;
latency-regression), seeds 0, 1, 2, ... in one process pinned to one CPU. Throughput is runs per
CPU second of this process (``time.process_time``), so that other work on a shared machine does
not count against it; wall-clock figures are printed beside. Then cProfile over a mix of the
scenarios shows where the time goes, per judge.

    .venv/bin/python benchmarks/simulator.py            # ~1 minute
    .venv/bin/python benchmarks/simulator.py --quick    # a few seconds (the CI smoke test)

It prints tables and rewrites the "simulator" section of docs/benchmarks.md unless
``--no-write``; ``--json FILE`` saves the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import platform
import pstats
import re
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report import replace_section  # noqa: E402

from canary.model.analysis import JudgeName  # noqa: E402
from canary.model.loader import load_rollout  # noqa: E402
from canary.model.rollout import Rollout  # noqa: E402
from canary.model.status import Phase  # noqa: E402
from canary.sim import SCENARIOS, simulate  # noqa: E402

ROOT = HERE.parent
EXAMPLE = ROOT / "examples" / "podinfo-istio.yaml"
TARGET = 1000.0
JUDGES = tuple(j.value for j in JudgeName)

console = Console(width=max(Console().width, 160))


@dataclass
class Cell:
    judge: str
    scenario: str
    runs: int = 0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    promoted: int = 0
    rolled_back: int = 0
    timed_out: int = 0
    virtual_minutes: float = 0.0
    """Mean virtual time from the new revision to the end."""

    @property
    def per_second(self) -> float:
        return self.runs / self.cpu_seconds if self.cpu_seconds else 0.0

    @property
    def per_wall_second(self) -> float:
        return self.runs / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def ms_per_run(self) -> float:
        return 1000 * self.cpu_seconds / self.runs if self.runs else 0.0


@dataclass
class JudgeProfile:
    judge: str
    runs: int
    seconds: float
    top: list[tuple[str, int, float, float]] = field(default_factory=list)
    """(function, calls, own seconds, cumulative seconds), by own time."""
    areas: list[tuple[str, float]] = field(default_factory=list)
    """Share of own time by area (package), percent."""
    notable: list[tuple[str, float]] = field(default_factory=list)
    """Share of the time under a few functions worth knowing about, percent (cumulative)."""


def pin_to_one_cpu() -> str:
    """Run on one CPU (the last one allowed); returns which, or why not."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {allowed[-1]})
        return f"CPU {allowed[-1]}"
    except (AttributeError, OSError) as exc:
        return f"not pinned ({exc})"


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}"


def load() -> str:
    with contextlib.suppress(OSError):
        one, five, _ = os.getloadavg()
        return f"load average {one:.1f} / {five:.1f} (1 / 5 min)"
    return "load unknown"


def measure(rollout: Rollout, judge: str, scenario: str, seconds: float, min_runs: int) -> Cell:
    """Seeds 0, 1, 2... of one judge and scenario for ``seconds`` of CPU (at least ``min_runs``)."""
    cell = Cell(judge, scenario)
    world = SCENARIOS[scenario]
    name = JudgeName(judge)
    for seed in range(3):  # warm up: imports, caches
        simulate(rollout, world, seed=10_000 + seed, judge=name, record_timeline=False)
    minutes = 0.0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    seed = 0
    while True:
        result = simulate(rollout, world, seed=seed, judge=name, record_timeline=False)
        seed += 1
        minutes += result.duration_seconds / 60
        if result.timed_out:
            cell.timed_out += 1
        elif result.phase is Phase.SUCCEEDED:
            cell.promoted += 1
        elif result.phase is Phase.FAILED:
            cell.rolled_back += 1
        if seed >= min_runs and time.process_time() - cpu0 >= seconds:
            break
    cell.cpu_seconds = time.process_time() - cpu0
    cell.wall_seconds = time.perf_counter() - wall0
    cell.runs = seed
    cell.virtual_minutes = minutes / seed
    return cell


AREAS = (
    ("canary/engine/", "canary.engine (plan, step)"),
    ("canary/analysis/judges/", "canary.analysis.judges"),
    ("canary/analysis/stats", "canary.analysis.stats"),
    ("canary/analysis/", "canary.analysis (checks, policies)"),
    ("canary/sim/", "canary.sim (runner, traffic, world)"),
    ("canary/model/", "canary.model"),
    ("site-packages/pydantic", "pydantic"),
    ("site-packages/scipy", "scipy"),
    ("site-packages/numpy", "numpy"),
    ("site-packages/yaml", "yaml (policy files)"),
)

NOTABLE = {
    "resolve_checks": "resolve_checks (the policy's checks, resolved at every run)",
    "builtin_dir": "builtin_dir (finding the policy files, every run)",
    "step": "engine step",
    "plan": "engine plan",
    "mannwhitneyu": "scipy mannwhitneyu",
    "axis_nan_policy_wrapper": "scipy's axis/nan-policy wrapper around it",
    "_describe": "sequential judge: building the message",
}


def _area(filename: str) -> str:
    for marker, name in AREAS:
        if marker in filename:
            return name
    if "<built-in" in filename or filename == "~":
        return "builtins (numpy and pydantic C code)"
    return "other (stdlib)"


def _where(filename: str) -> str:
    for marker in ("site-packages/", f"{ROOT}/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return re.sub(r".*/lib/python3\.\d+/", "", filename)


def profile(rollout: Rollout, judge: str, runs: int, top: int = 15) -> JudgeProfile:
    """cProfile over ``runs`` rollouts, the scenarios in turn."""
    names = list(SCENARIOS)
    worlds = [SCENARIOS[n] for n in names]
    name = JudgeName(judge)
    for seed in range(3):
        simulate(rollout, worlds[seed % len(worlds)], seed=seed, judge=name, record_timeline=False)
    profiler = cProfile.Profile()
    started = time.process_time()
    profiler.enable()
    for seed in range(runs):
        simulate(rollout, worlds[seed % len(worlds)], seed=seed, judge=name, record_timeline=False)
    profiler.disable()
    seconds = time.process_time() - started
    stats = pstats.Stats(profiler)
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0
    rows = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    areas: dict[str, float] = defaultdict(float)
    notable: dict[str, float] = defaultdict(float)
    for (filename, _, function), (_, _, own, cumulative, _) in raw.items():
        areas[_area(filename)] += own
        label = NOTABLE.get(function)
        if label and ("canary/" in filename or "scipy" in filename):
            notable[label] = max(notable[label], cumulative)
    return JudgeProfile(
        judge=judge,
        runs=runs,
        seconds=seconds,
        top=[
            (f"{function} ({_where(filename)}:{line})", calls, own, cumulative)
            for (filename, line, function), (_, calls, own, cumulative, _) in rows
        ],
        areas=sorted(((k, 100 * v / total) for k, v in areas.items()), key=lambda kv: -kv[1]),
        notable=sorted(((k, 100 * v / total) for k, v in notable.items()), key=lambda kv: -kv[1]),
    )


def overall(cells: list[Cell], judge: str) -> float:
    """Runs a CPU second over every scenario of ``judge`` (as many runs of each as measured)."""
    mine = [c for c in cells if c.judge == judge]
    # the mean time per run over scenarios, each weighted equally
    per_run = sum(c.cpu_seconds / c.runs for c in mine) / len(mine)
    return 1.0 / per_run if per_run else 0.0


def print_results(cells: list[Cell], profiles: list[JudgeProfile]) -> None:
    table = Table(title="Simulated rollouts a second, one core (CPU time; wall in brackets)")
    table.add_column("judge")
    for scenario in SCENARIOS:
        table.add_column(scenario, justify="right")
    table.add_column("all (equal mix)", justify="right")
    table.add_column("target 1,000/s", justify="right")
    for judge in dict.fromkeys(c.judge for c in cells):
        row = [judge]
        for scenario in SCENARIOS:
            cell = next(c for c in cells if c.judge == judge and c.scenario == scenario)
            row.append(f"{cell.per_second:,.0f} ({cell.per_wall_second:,.0f})")
        mixed = overall(cells, judge)
        row += [f"{mixed:,.0f}", _against(mixed)]
        table.add_row(*row)
    console.print(table)
    outcomes = Table(title="What the runs did")
    for column in ("judge", "scenario", "runs", "ms/run", "promoted", "rolled back", "timed out"):
        outcomes.add_column(column, justify="right")
    outcomes.add_column("virtual min/run", justify="right")
    for c in cells:
        outcomes.add_row(
            c.judge,
            c.scenario,
            str(c.runs),
            f"{c.ms_per_run:.2f}",
            str(c.promoted),
            str(c.rolled_back),
            str(c.timed_out),
            f"{c.virtual_minutes:.1f}",
        )
    console.print(outcomes)
    for p in profiles:
        top = Table(title=f"cProfile, {p.judge}: {p.runs} runs, top {len(p.top)} by own time")
        for column in ("own s", "cum s", "calls", "function"):
            top.add_column(column, justify="right" if column != "function" else "left")
        for function, calls, own, cumulative in p.top:
            top.add_row(f"{own:.3f}", f"{cumulative:.3f}", f"{calls:,}", function)
        console.print(top)
        areas = Table(title=f"{p.judge}: own time by area; time under notable functions")
        areas.add_column("area")
        areas.add_column("%", justify="right")
        areas.add_column("under")
        areas.add_column("%", justify="right")
        rows = max(len(p.areas), len(p.notable))
        for i in range(rows):
            a = p.areas[i] if i < len(p.areas) else ("", None)
            n = p.notable[i] if i < len(p.notable) else ("", None)
            areas.add_row(
                a[0],
                "" if a[1] is None else f"{a[1]:.1f}",
                n[0],
                "" if n[1] is None else f"{n[1]:.1f}",
            )
        console.print(areas)


def _against(value: float) -> str:
    if value >= TARGET:
        return f"met (x{value / TARGET:.1f})"
    return f"not met ({100 * value / TARGET:.0f}% of it)" if value else "not met"


def figure_args(argv: list[str]) -> list[str]:
    """The command line without the options that do not change the figures."""
    shown: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--json":
            skip = True
        elif not (arg == "--no-write" or arg.startswith("--json=")):
            shown.append(arg)
    return shown


def markdown(
    cells: list[Cell],
    profiles: list[JudgeProfile],
    args: argparse.Namespace,
    pinned: str,
    loads: tuple[str, str],
    wall: float,
) -> str:
    shown = figure_args(args.argv)
    command = (
        "make bench-sim"
        if not shown
        else "python benchmarks/simulator.py " + " ".join(shlex.quote(a) for a in shown)
    )
    scenarios = list(SCENARIOS)
    out = [
        "## Simulator throughput",
        "",
        f"`{command}` — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}, one process "
        f"pinned to {pinned}; {loads[0]} at the start, {loads[1]} at the end; "
        f"{wall:.0f} s in all.",
        "",
        "`canary.sim.simulate(rollout, scenario, seed, judge=..., record_timeline=False)` on "
        "`examples/podinfo-istio.yaml` (weights 5/10/20/50, 1-minute ticks, the istio policy's "
        "error-rate and latency checks), seeds 0, 1, 2, ... for "
        f"{args.seconds:g} s of CPU per cell. Rollouts a second are runs per CPU second of the "
        "process (`time.process_time`), so other work on a shared machine does not count; "
        "wall-clock figures are in brackets. *All* is an equal mix of the scenarios. "
        "Target: 1,000 a second.",
        "",
        "| judge | " + " | ".join(scenarios) + " | all (equal mix) | target |",
        "|---|" + "---:|" * (len(scenarios) + 2),
    ]
    for judge in dict.fromkeys(c.judge for c in cells):
        row = [judge]
        for scenario in scenarios:
            cell = next(c for c in cells if c.judge == judge and c.scenario == scenario)
            row.append(f"{cell.per_second:,.0f} ({cell.per_wall_second:,.0f})")
        mixed = overall(cells, judge)
        row += [f"**{mixed:,.0f}**", _against(mixed)]
        out.append("| " + " | ".join(row) + " |")
    out += [
        "",
        "| judge | scenario | runs | ms a run | promoted | rolled back | timed out | "
        "virtual minutes a run |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        *[
            f"| {c.judge} | {c.scenario} | {c.runs:,} | {c.ms_per_run:.2f} | {c.promoted} | "
            f"{c.rolled_back} | {c.timed_out} | {c.virtual_minutes:.1f} |"
            for c in cells
        ],
    ]
    for p in profiles:
        out += [
            "",
            f"Where the time goes, {p.judge} (cProfile, {p.runs} runs over the scenarios in "
            f"turn; own time by area, and the share of time under a few functions):",
            "",
            "| area | % own time | | under | % of time |",
            "|---|---:|---|---|---:|",
        ]
        rows = max(len(p.areas), len(p.notable))
        for i in range(rows):
            a = p.areas[i] if i < len(p.areas) else ("", None)
            n = p.notable[i] if i < len(p.notable) else ("", None)
            out.append(
                f"| {a[0]} | {'' if a[1] is None else f'{a[1]:.1f}'} | | {n[0]} | "
                f"{'' if n[1] is None else f'{n[1]:.1f}'} |"
            )
    default = next((p for p in profiles if p.judge == JudgeName.SEQUENTIAL.value), None)
    if default is not None:
        out += [
            "",
            f"Top {len(default.top)} functions by own time, {default.judge} (the default judge):",
            "",
            "| own s | cumulative s | calls | function |",
            "|---:|---:|---:|---|",
            *[
                f"| {own:.3f} | {cum:.3f} | {calls:,} | `{function}` |"
                for function, calls, own, cum in default.top
            ],
        ]
    return "\n".join(out)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (the CI smoke test)")
    parser.add_argument("--seconds", type=float, help="CPU seconds per cell (default 4; quick 0.2)")
    parser.add_argument("--min-runs", type=int, help="runs per cell at least (default 20; quick 3)")
    parser.add_argument(
        "--judges", default=",".join(JUDGES), help=f"comma-separated (default {','.join(JUDGES)})"
    )
    parser.add_argument(
        "--profile-runs", type=int, help="rollouts under cProfile per judge (default 150; quick 6)"
    )
    parser.add_argument("--rollout", type=Path, default=EXAMPLE, help="the Rollout to simulate")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    args.argv = argv
    args.seconds = args.seconds if args.seconds is not None else (0.2 if args.quick else 4.0)
    args.min_runs = args.min_runs if args.min_runs is not None else (3 if args.quick else 20)
    if args.profile_runs is None:
        args.profile_runs = 6 if args.quick else 150
    args.judge_list = [j.strip() for j in args.judges.split(",") if j.strip()]
    unknown = [j for j in args.judge_list if j not in JUDGES]
    if unknown:
        parser.error(f"unknown judge(s) {', '.join(unknown)} (known: {', '.join(JUDGES)})")
    return args


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    began = time.perf_counter()
    box: list[float] = []
    yield box
    box.append(time.perf_counter() - began)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    pinned = "no CPU in particular" if args.no_pin else pin_to_one_cpu()
    rollout = load_rollout(args.rollout)
    start_load = load()
    cells: list[Cell] = []
    profiles: list[JudgeProfile] = []
    with timed() as wall:
        for judge in args.judge_list:
            for scenario in SCENARIOS:
                cell = measure(rollout, judge, scenario, args.seconds, args.min_runs)
                cells.append(cell)
                console.log(
                    f"{judge:>12} {scenario:<18} {cell.runs:>6} runs  "
                    f"{cell.per_second:>7,.0f}/s CPU  {cell.per_wall_second:>7,.0f}/s wall"
                )
        for judge in args.judge_list:
            profiles.append(profile(rollout, judge, args.profile_runs))
    print_results(cells, profiles)
    console.print(f"{pinned}; {start_load} at the start, {load()} at the end; {wall[0]:.0f} s")
    if args.json:
        payload = {
            "machine": machine(),
            "pinned": pinned,
            "cells": [asdict(c) | {"per_second": c.per_second} for c in cells],
            "overall": {j: overall(cells, j) for j in args.judge_list},
            "profiles": [asdict(p) for p in profiles],
        }
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    if not args.no_write:
        replace_section(
            "simulator", markdown(cells, profiles, args, pinned, (start_load, load()), wall[0])
        )
        console.print("wrote the simulator section of docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
