"""The timeline of a rollout as a table, and its one-line summary (simulate, run, demo)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from rich.table import Table
from rich.text import Text

from canary.cli.output import console
from canary.model.analysis import CheckKind
from canary.model.duration import format_duration
from canary.model.status import Phase, Verdict
from canary.sim import SimulationResult
from canary.sim.result import CheckOutcome

_VERDICT_STYLE = {Verdict.PASS: "green", Verdict.FAIL: "red", Verdict.INCONCLUSIVE: "yellow"}
_PHASE_STYLE = {Phase.SUCCEEDED: "bold green", Phase.FAILED: "bold red"}
_PIPED_WIDTH = 160


def fail(lines: list[str]) -> NoReturn:
    err = console(stderr=True)
    for line in lines:
        err.print(Text(line, style="red"))
    raise SystemExit(1)


def write_plot(draw: Callable[[Path], Path], path: Path, *, stderr: bool = False) -> None:
    """Draw into ``path`` with ``draw``; say where, or fail naming the file."""
    try:
        written = draw(path)
    except OSError as exc:
        fail([f"{path}: cannot write the plot: {exc.strerror or exc}"])
    console(stderr=stderr).print(Text(f"plot written to {written}"))


def print_timeline(result: SimulationResult, title: str, *, virtual: bool = True) -> None:
    out = console()
    if not out.is_terminal:
        out.width = _PIPED_WIDTH
    table = Table(title=Text(title), title_justify="left", expand=False)
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
    out.print(summary(result, virtual=virtual))
    for note in result.notes:
        out.print(Text(f"note: {note}", style="yellow"))


def summary(result: SimulationResult, *, virtual: bool = True) -> Text:
    """One line: the outcome, how long it took, what the canary served."""
    rate = 100.0 * result.canary_errors / result.canary_requests if result.canary_requests else 0
    judges = ", ".join(f"{c.name} by {c.judge}" for c in result.checks) or "no checks"
    line = Text()
    line.append(result.phase.value, style=_PHASE_STYLE.get(result.phase, "bold yellow"))
    line.append(
        f" after {format_duration(round(result.duration_seconds))}"
        f"{' of virtual time' if virtual else ''}: the canary served "
        f"{result.canary_requests:,} requests, {result.canary_errors:,} failed ({rate:.2f}%); "
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
        # The judged number is the share slower than the objective; the p99 is read from
        # histogram buckets, an estimate (docs/policies.md).
        slow = _share(check.canary_failures, check.canary_requests)
        slow_primary = _share(check.primary_failures, check.primary_requests)
        text.append(f" {slow} vs {slow_primary} slow")
        text.append(f" p99~{_num(canary, '{:.0f}ms')}", "dim")
    else:
        text.append(f" {_num(canary, '{:g}')} vs {_num(primary, '{:g}')}")
    if check.canary_requests is not None:
        text.append(f" n={check.canary_requests:,}", style="dim")
    return text


def _share(failures: int | None, requests: int | None) -> str:
    return "-" if failures is None or not requests else f"{100.0 * failures / requests:.1f}%"


def _num(value: float | None, form: str) -> str:
    return "-" if value is None else form.format(value)
