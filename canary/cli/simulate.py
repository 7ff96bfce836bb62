"""`canary simulate FILE`: run a rollout through the engine in virtual time with synthetic
traffic from a scenario, and show what happened tick by tick."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import click
from rich.table import Table
from rich.text import Text

from canary.analysis.checks import CheckResolutionError
from canary.analysis.judges.base import JudgeError
from canary.cli.output import OUTPUT_OPTION, console, print_json
from canary.model.analysis import CheckKind
from canary.model.duration import format_duration
from canary.model.loader import LoadError, load_rollout
from canary.model.status import Phase, Verdict
from canary.sim import SCENARIOS, SimulationResult, get_scenario
from canary.sim import simulate as run_simulation
from canary.sim.result import CheckOutcome

_VERDICT_STYLE = {Verdict.PASS: "green", Verdict.FAIL: "red", Verdict.INCONCLUSIVE: "yellow"}
_PHASE_STYLE = {Phase.SUCCEEDED: "bold green", Phase.FAILED: "bold red"}
_PIPED_WIDTH = 160


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--scenario",
    type=click.Choice(list(SCENARIOS)),
    default="healthy",
    show_default=True,
    help="The synthetic world: how the canary behaves against the primary.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the randomness.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also draw the rollout into this PNG file.",
)
@OUTPUT_OPTION
def simulate(file: Path, scenario: str, seed: int, plot_path: Path | None, output: str) -> None:
    """Run the Rollout in FILE through the engine in virtual time, with synthetic traffic.

    The exit code is 0 whatever the rollout's outcome (it is in the output); 1 when the file
    is not a valid Rollout.
    """
    try:
        rollout = load_rollout(file)
    except LoadError as exc:
        _fail([str(p) for p in exc.problems])
    try:
        result = run_simulation(rollout, get_scenario(scenario), seed)
    except CheckResolutionError as exc:
        _fail([f"{file}: {exc.path}: {exc.message}"])
    except JudgeError as exc:
        _fail([f"{file}: spec.analysis.judge: {exc}"])
    if output == "json":
        print_json(result.to_json_data())
    else:
        _print_table(result, f"{file} --scenario {scenario} --seed {seed}")
    if plot_path is not None:
        from canary.sim.plot import plot_result

        try:
            written = plot_result(result, plot_path)
        except OSError as exc:
            _fail([f"{plot_path}: cannot write the plot: {exc.strerror or exc}"])
        console(stderr=output == "json").print(Text(f"plot written to {written}"))


def _fail(lines: list[str]) -> NoReturn:
    err = console(stderr=True)
    for line in lines:
        err.print(Text(line, style="red"))
    raise SystemExit(1)


def _print_table(result: SimulationResult, title: str) -> None:
    out = console()
    if not out.is_terminal:
        out.width = _PIPED_WIDTH
    table = Table(title=Text(f"canary simulate {title}"), title_justify="left", expand=False)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("phase", no_wrap=True)
    table.add_column("weight", justify="right", no_wrap=True)
    names = [c.name for c in result.checks]
    for name in names:
        table.add_column(name, no_wrap=True)
    table.add_column("message", overflow="fold")
    for entry in result.timeline:
        by_name = {c.name: c for c in entry.checks}
        cells = [_check_cell(by_name[n]) if n in by_name else Text("") for n in names]
        table.add_row(
            Text(f"+{format_duration(entry.time)}"),
            Text(entry.phase.value, style=_PHASE_STYLE.get(entry.phase, "")),
            Text(f"{entry.weight}%"),
            *cells,
            Text(entry.message),
        )
    out.print(table)
    out.print(summary(result))
    for note in result.notes:
        out.print(Text(f"note: {note}", style="yellow"))


def summary(result: SimulationResult) -> Text:
    """One line: the outcome, how long it took, what the canary served."""
    rate = 100.0 * result.canary_errors / result.canary_requests if result.canary_requests else 0
    judges = ", ".join(f"{c.name} by {c.judge}" for c in result.checks) or "no checks"
    line = Text()
    line.append(result.phase.value, style=_PHASE_STYLE.get(result.phase, "bold yellow"))
    line.append(
        f" after {format_duration(result.duration_seconds)} of virtual time: the canary served "
        f"{result.canary_requests:,} requests, {result.canary_errors:,} errors ({rate:.2f}%); "
        f"final canary weight {result.final_weight}%, primary runs {result.primary_revision} "
        f"(scenario {result.scenario}, seed {result.seed}; {judges})"
    )
    return line


def _check_cell(check: CheckOutcome) -> Text:
    text = Text(check.verdict.value, style=_VERDICT_STYLE[check.verdict])
    canary, primary = check.canary_value, check.primary_value
    if check.kind is CheckKind.ERROR_RATE:
        text.append(f" {_num(canary, '{:.2f}%')} vs {_num(primary, '{:.2f}%')}")
    elif check.kind is CheckKind.LATENCY:
        text.append(f" {_num(canary, '{:.0f}')} vs {_num(primary, '{:.0f}ms')}")
    else:
        text.append(f" {_num(canary, '{:g}')} vs {_num(primary, '{:g}')}")
    if check.canary_requests is not None:
        text.append(f" n={check.canary_requests:,}", style="dim")
    return text


def _num(value: float | None, form: str) -> str:
    return "-" if value is None else form.format(value)
