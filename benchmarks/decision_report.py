"""The decision benchmark's tables, for the terminal (rich) and for docs/benchmarks.md."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from decision_grid import JUDGES, SEQUENTIAL, THRESHOLD, Cell, CellKey
from decision_oracle import Oracle
from decision_targets import ZERO_FLOOR, Target
from rich.console import Console
from rich.table import Table

Results = Mapping[tuple[str, CellKey], Cell]


@dataclass(frozen=True, slots=True)
class Grid:
    """A titled table: a header and rows of text."""

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _num(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:,.{digits}f}"


def _where(key: CellKey) -> list[str]:
    return [f"{key.error:g}%", f"{key.rate:,}"]


def _causes(cell: Cell) -> str:
    causes = cell.causes()
    shown = ", ".join(f"{n} {c}" for c, n in causes.most_common()) or "none"
    return f"{cell.judge}: {shown}"


def _detected(cell: Cell) -> str:
    """The detection rate; `*` under 50%; `(deadline)` when most rollbacks were the
    inconclusive deadline rather than a judgement."""
    text = _pct(cell.rollback_rate) + ("" if cell.detects else "*")
    causes = cell.causes()
    if causes and causes["deadline"] * 2 >= sum(causes.values()):
        text += " (deadline)"
    return text


def healthy_table(results: Results, keys: Sequence[CellKey]) -> Grid:
    header = ["primary errors", "req/min", "primary failures/min"]
    header += [f"false rollbacks: {j} (95%)" for j in JUDGES]
    header += ["false rollbacks by cause"]
    header += [f"promotion min: {j}" for j in JUDGES]
    rows = []
    for key in keys:
        if not key.effect.healthy:
            continue
        cells = [results[(j, key)] for j in JUDGES]
        row = [*_where(key), f"{key.rate * key.error / 100:g}"]
        for cell in cells:
            low, high = cell.interval()
            row.append(f"{_pct(cell.rollback_rate)} ({_pct(low)}-{_pct(high)})")
        row.append("; ".join(_causes(cell) for cell in cells))
        for cell in cells:
            promotion = cell.promotion()
            row.append(_num(promotion, 1) if promotion is not None else f"- ({cell.promoted})")
        rows.append(row)
    note = (
        "A false rollback is any rollback of an A/A canary; the interval is Wilson's. Promotion "
        "is the median minutes from the new revision to Succeeded (30 s readiness and 45 s "
        "promotion included); `- (k)` when fewer than a quarter of the runs (k) were promoted. "
        "Causes: crossing (the sequential judge's decisive evidence), failure limit (failed "
        "ticks), deadline (inconclusive for the 10-minute inconclusiveDeadline)."
    )
    return Grid("Healthy canaries (A/A)", header, rows, note)


def worse_table(results: Results, keys: Sequence[CellKey]) -> Grid:
    header = ["primary errors", "req/min", "canary"]
    header += [f"detected: {j}" for j in JUDGES]
    header += [f"blast med / p90: {j}" for j in JUDGES]
    header += ["threshold / sequential"]
    header += [f"min to rollback: {j}" for j in JUDGES]
    rows = []
    for key in keys:
        if key.effect.healthy:
            continue
        cells = [results[(j, key)] for j in JUDGES]
        row = [*_where(key), key.effect.label]
        row += [_detected(c) for c in cells]
        for cell in cells:
            blast = cell.blast()
            row.append(f"{blast[0]:g} / {blast[1]:g}" if blast else "-")
        thr, seq = results[(THRESHOLD, key)], results[(SEQUENTIAL, key)]
        thr_blast, seq_blast = thr.blast(), seq.blast()
        if thr.detects and seq.detects and thr_blast and seq_blast:
            ratio = max(thr_blast[0], ZERO_FLOOR) / max(seq_blast[0], ZERO_FLOOR)
            row.append(f"{ratio:.1f}x")
        else:
            row.append("-")
        row += [_num(c.minutes_to_rollback(), 1) for c in cells]
        rows.append(row)
    note = (
        "Detected: share of runs rolled back (`*`: under 50%, the judge does not detect there; "
        "`(deadline)`: most of those rollbacks were the inconclusive deadline, not a judgement, "
        "as for mann-whitney where no window reaches minRequests 20). "
        "Blast radius: the canary's bad requests until the rollback, over the rolled-back runs "
        "(failed requests for error effects, requests slower than the 500 ms objective for "
        "latency effects). threshold / sequential: ratio of the median blast radii (each "
        f"floored at {ZERO_FLOOR}) where both detect. Minutes to rollback: median, from the new "
        "revision."
    )
    return Grid("Worse canaries: detection and blast radius", header, rows, note)


def requests_table(
    results: Results,
    keys: Sequence[CellKey],
    oracle: Mapping[CellKey, Oracle],
) -> Grid:
    header = ["primary errors", "req/min", "canary", "true ratio", "oracle SPRT", "oracle (Wald)"]
    header += ["oracle bad"]
    header += ["first window"]
    header += [f"requests to detect: {j}" for j in JUDGES]
    header += ["sequential / oracle"]
    rows = []
    for key in keys:
        if key.effect.healthy:
            continue
        cells = [results[(j, key)] for j in JUDGES]
        figure = oracle[key]
        first = figure.first_window
        row = [*_where(key), key.effect.label, f"{figure.ratio:,.1f}x", _num(figure.requests)]
        row += [_num(figure.wald), _num(figure.bad, 1)]
        row.append(_num(first, 1 if first < 10 else 0))
        row += [_num(c.requests_to_detect()) + ("" if c.detects else "*") for c in cells]
        seq = results[(SEQUENTIAL, key)]
        used = seq.requests_to_detect()
        if used is not None and math.isfinite(figure.requests):
            row.append(f"{used / figure.requests:.2f}x" + ("" if seq.detects else "*"))
        else:
            row.append("-")
        rows.append(row)
    note = (
        "Requests to detect: mean canary requests served until the rollback, over the "
        "rolled-back runs (`*`: the judge detects under 50% there, so these are its luckiest "
        "runs). Oracle SPRT: mean canary requests of the test that knows the true ratio, at the "
        "first step's 5% share, alpha 1/20, against the null the sequential judge tests, "
        "looking at every failure: simulated (4,000 runs, fixed seed), the overshoot past the "
        "threshold included (at 5% one failure multiplies the evidence by under 20, so it needs "
        "at least two). Oracle (Wald): Wald's approximation ln(20) / KL, which ignores the "
        "overshoot and so understates it. True "
        "ratio: the canary's failure rate (errors, or requests over the latency objective) "
        "over the primary's. Oracle bad: the bad requests the canary serves while the oracle "
        "decides (its requests times the canary's failure rate), the blast radius of a test "
        "that knew the answer. First window: canary requests in the first judged window at 5%, "
        "the fewest a judge that looks once a window can use."
    )
    return Grid("Canary requests to detect, beside the oracle SPRT", header, rows, note)


def target_table(found: Sequence[Target]) -> Grid:
    rows = []
    for target in found:
        met = {True: "met", False: "**not met**", None: "n/a"}[target.met]
        rows.append([target.name, target.goal, target.result, met])
    return Grid("Targets", ["target", "goal", "result", ""], rows)


def markdown(grid: Grid) -> str:
    lines = [f"### {grid.title}", ""]
    lines.append("| " + " | ".join(grid.header) + " |")
    lines.append("|" + "---|" * len(grid.header))
    lines += ["| " + " | ".join(row) + " |" for row in grid.rows]
    if grid.note:
        lines += ["", grid.note]
    return "\n".join(lines)


def show(console: Console, grid: Grid) -> None:
    table = Table(title=grid.title, title_justify="left", show_lines=False)
    for index, name in enumerate(grid.header):
        table.add_column(name, justify="left" if index == 0 else "right", overflow="fold")
    for row in grid.rows:
        table.add_row(*(cell.replace("**", "") for cell in row))
    console.print(table)
