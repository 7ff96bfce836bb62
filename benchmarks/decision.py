"""Decision benchmark (issue #7): the three judges through the simulator, over a grid.

The istio example (examples/podinfo-istio.yaml: weights 5/10/20/50, 1-minute ticks, the built-in
error-rate and latency checks) runs in virtual time through ``canary.sim.simulate`` over total
traffic (10, 100, 1,000, 10,000 requests a minute), primary error rate (0.1%, 1%) and canary
effect (A/A; 1.5x, 2x, 5x the errors; p99 +20% and +100%), seeds 0 .. N-1 in every cell for
every judge: ``threshold`` as Flagger's documented rules, ``mann-whitney`` with Kayenta's
defaults, ``sequential`` (the default). It prints the tables, rewrites the "decision" section of
docs/benchmarks.md and docs/benchmarks/decision.png, and prints the headline as its last line:

    make bench-decision                                       # 500 seeds a cell, every rate
    .venv/bin/python benchmarks/decision.py --quick            # 60 seeds, 100 and 1,000 req/min
    .venv/bin/python benchmarks/decision.py --quick --no-write --seeds 4 --rates 100
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path

from decision_grid import (
    JUDGES,
    QUICK_RATES,
    RATES,
    SEQUENTIAL,
    Cell,
    CellKey,
    Run,
    chunks,
    grid,
    judge_rollout,
    look_seconds,
    run_chunk,
)
from decision_oracle import cell_oracle
from decision_report import healthy_table, markdown, requests_table, show, target_table, worse_table
from decision_setup import setup_text
from decision_targets import headline, targets
from report import replace_section
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parents[1]
PICTURE = ROOT / "docs" / "benchmarks" / "decision.png"
FULL_SEEDS = 500
QUICK_SEEDS = 60
CHUNK = 50


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(
    keys: Sequence[CellKey], seeds: int, jobs: int, err: Console
) -> dict[tuple[str, CellKey], Cell]:
    """Every judge on every cell over seeds 0 .. seeds-1, in ``jobs`` processes."""
    tasks = chunks(JUDGES, keys, seeds, CHUNK)
    parts: dict[tuple[str, CellKey], dict[int, list[Run]]] = defaultdict(dict)
    total = len(JUDGES) * len(keys) * seeds
    with (
        ProcessPoolExecutor(jobs) as pool,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=not err.is_terminal,
        ) as progress,
    ):
        bar = progress.add_task("simulated rollouts", total=total)
        futures = {pool.submit(run_chunk, task): task for task in tasks}
        for future in as_completed(futures):
            judge, key, start, stop = futures[future]
            parts[(judge, key)][start] = future.result()
            progress.advance(bar, stop - start)
            done = sum(len(r) for r in parts[(judge, key)].values())
            if not err.is_terminal and done == seeds:
                err.print(f"done: {judge:<12} {key.short()}", highlight=False)
    return {
        (judge, key): Cell(judge, key, tuple(r for s in sorted(p) for r in p[s]))
        for (judge, key), p in parts.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_SEEDS} seeds, 100 and 1,000 req/min"
    )
    parser.add_argument("--seeds", type=int, help=f"seeds per cell (default {FULL_SEEDS})")
    parser.add_argument("--rates", help="comma-separated requests a minute (default all four)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    parser.add_argument(
        "--no-write", action="store_true", help="leave docs/benchmarks.md and the plot alone"
    )
    args = parser.parse_args(argv)
    seeds = args.seeds or (QUICK_SEEDS if args.quick else FULL_SEEDS)
    if args.rates:
        rates = tuple(int(r.replace("_", "")) for r in args.rates.split(",") if r)
    else:
        rates = QUICK_RATES if args.quick else RATES
    keys = grid(rates)
    err = Console(stderr=True)
    out = Console(width=None if sys.stdout.isatty() else 400)

    started = time.monotonic()
    results = measure(keys, seeds, args.jobs, err)
    wall = time.monotonic() - started

    rollout = judge_rollout(SEQUENTIAL)
    share = (
        rollout.spec.strategy.canary.schedule()[0] / 100.0 if rollout.spec.strategy.canary else 0.05
    )
    looks = {judge: look_seconds(judge) for judge in JUDGES}
    look = looks[SEQUENTIAL]
    oracle = {
        k: cell_oracle(rollout, k.scenario(), k.effect.kind == "latency", share, look / 60.0)
        for k in keys
    }
    found = targets(results, keys, oracle, looks)
    tables = [
        target_table(found),
        healthy_table(results, keys),
        worse_table(results, keys),
        requests_table(results, keys, oracle),
    ]
    for table in tables:
        show(out, table)
    for target in found:
        if target.detail:
            out.print(f"[bold]{target.name}[/bold]: {target.detail}", highlight=False)
    line = headline(results, keys)
    runs = len(JUDGES) * len(keys) * seeds
    out.print(
        f"{runs:,} simulated rollouts in {wall:.0f} s on {args.jobs} processes", highlight=False
    )

    if not args.no_write:
        from decision_plot import plot

        plot(results, keys, PICTURE)
        command = " ".join(["python benchmarks/decision.py", *(argv or sys.argv[1:])]).strip()
        if command == "python benchmarks/decision.py":
            command = "make bench-decision"
        context = (
            f"`{command}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores "
            f"({_cpu()}), Python {platform.python_version()}, {args.jobs} processes: seeds "
            f"0-{seeds - 1} in every cell for every judge, {len(keys)} cells x {len(JUDGES)} "
            f"judges = {runs:,} simulated rollouts in {wall:.0f} s."
        )
        body = [
            context,
            "*The judges' rollbacks, detection and blast radius at their shipped settings. This "
            "section's headline takes medians over rolled-back runs only and compares judges at "
            "different false-rollback rates, so it cannot say which judge is better: see "
            "[Decision guarantees](#decision-guarantees) for the cost including promoted bad "
            "canaries, with every judge tuned to the same false-rollback level.*",
            f"**Rollback headline:** `{line}`",
            setup_text(rates, share, looks),
            markdown(tables[0]),
            "\n\n".join(f"- **{t.name}**: {t.detail}" for t in found if t.detail),
            f"![blast radius and false rollbacks per judge]"
            f"({PICTURE.relative_to(ROOT / 'docs').as_posix()})",
            *(markdown(t) for t in tables[1:]),
        ]
        replace_section("decision", "\n\n".join(b for b in body if b))
        out.print(f"wrote docs/benchmarks.md (decision) and {PICTURE.relative_to(ROOT)}")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
