"""How the operator commands show rollouts: a tree for one, a table for many."""

from __future__ import annotations

from datetime import datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from canary.gates.api.models import RolloutSummary, RolloutView, WaitOutcome
from canary.model.analysis import CheckKind
from canary.model.evidence import latency_evidence
from canary.model.status import CheckResult, Phase, RolloutStatus, SideEvidence, Verdict

PHASE_STYLE = {
    Phase.SUCCEEDED: "bold green",
    Phase.FAILED: "bold red",
    Phase.ROLLING_BACK: "bold red",
    Phase.PAUSED: "bold yellow",
    Phase.WAITING: "bold yellow",
    Phase.PROGRESSING: "bold cyan",
    Phase.PROMOTING: "bold cyan",
}
VERDICT_STYLE = {Verdict.PASS: "green", Verdict.FAIL: "red", Verdict.INCONCLUSIVE: "yellow"}
OUTCOME_STYLE = {
    WaitOutcome.SUCCEEDED: "bold green",
    WaitOutcome.FAILED: "bold red",
    WaitOutcome.TIMEOUT: "bold yellow",
}


UNTOUCHED = "no controller has picked it up yet (no status)"
"""What `get` and `list` say of a Rollout whose status no controller (or runner) ever wrote:
its phase would be a default, not something that happened, so none is shown (as kubectl's
PHASE column shows none)."""


def untouched(status: RolloutStatus) -> bool:
    """True for a Rollout no controller has written a status for."""
    return status == RolloutStatus()


def _number(value: float) -> str:
    return f"{value:.4g}"


def evidence(side: SideEvidence | None, check: CheckResult | None = None) -> str:
    """``value (failures/requests)``: the numbers a verdict was drawn from."""
    if side is None:
        return "-"
    if check is not None and check.kind is CheckKind.LATENCY:
        shown = latency_evidence(side, check)
        if shown:
            return shown
    parts = []
    if side.value is not None:
        parts.append(_number(side.value))
    if side.requests is not None:
        counts = f"{side.failures if side.failures is not None else '?'}/{side.requests}"
        parts.append(f"({counts})" if parts else counts)
    return " ".join(parts) or "-"


def _when(time: datetime | None) -> str:
    return time.strftime("%H:%M:%S") if time is not None else "-"


def checks_table(checks: list[CheckResult]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("check", "verdict", "weight"):
        table.add_column(column, no_wrap=True)
    for column in ("canary", "primary"):  # a latency check's evidence wraps after its share
        table.add_column(column, overflow="fold")
    for column in ("statistic", "at"):
        table.add_column(column, no_wrap=True)
    table.add_column("message", overflow="fold")
    for check in checks:
        table.add_row(
            Text(check.name),
            Text(check.verdict.value, style=VERDICT_STYLE[check.verdict]),
            Text(f"{check.weight}%"),
            Text(evidence(check.canary, check)),
            Text(evidence(check.primary, check)),
            Text(_number(check.statistic) if check.statistic is not None else "-"),
            Text(_when(check.time)),
            Text(check.message),
        )
    return table


def _progress(view: RolloutView) -> str:
    status = view.status
    spec = view.spec
    if spec is not None and spec.weights:
        schedule = " → ".join(f"{w}%" for w in spec.weights)
        return f"step {status.step_index + 1} of {len(spec.weights)} ({schedule})"
    if spec is not None and spec.iterations is not None:
        return f"iteration {status.iteration} of {spec.iterations} ({spec.strategy.value})"
    return f"step index {status.step_index}, iteration {status.iteration}"


def rollout_tree(view: RolloutView) -> Tree:
    status = view.status
    if untouched(status):
        tree = Tree(Text.assemble((view.key, "bold"), "  ", ("-", "dim")))
        tree.add(Text(UNTOUCHED, style="yellow"))
        if view.target_revision:
            tree.add(Text(f"target runs revision {view.target_revision}"))
        _add_pending(tree, view)
        return tree
    head = Text.assemble(
        (view.key, "bold"),
        "  ",
        (status.phase.value, PHASE_STYLE.get(status.phase, "bold")),
        f"  weight {status.canary_weight}%",
    )
    tree = Tree(head)
    tree.add(Text(_progress(view)))
    revisions = f"revision: canary {status.canary_revision or '-'}, "
    revisions += f"stable {status.stable_revision or '-'}"
    if view.target_revision and view.target_revision != status.canary_revision:
        revisions += f" (target runs {view.target_revision})"
    tree.add(Text(revisions))
    if status.waiting_for:
        tree.add(Text(f"waiting for: {status.waiting_for}", style="yellow"))
    if status.approvals or status.promote_requested:
        given = ", ".join(status.approvals) or "none"
        extra = "; promote requested" if status.promote_requested else ""
        tree.add(Text(f"approvals: {given}{extra}"))
    limit = f" of {view.spec.failure_limit}" if view.spec is not None else ""
    tree.add(Text(f"failed ticks: {status.failed_checks}{limit}"))
    if status.message:
        tree.add(Text(f"message: {status.message}"))
    _add_pending(tree, view)
    latest = view.latest_checks()
    if latest:
        tree.add(Text("checks (latest)", style="bold")).add(checks_table(latest))
    else:
        tree.add(Text("checks: none yet", style="dim"))
    tree.add(Text(f"last tick: {_when(status.last_tick_at)}", style="dim"))
    return tree


def _add_pending(tree: Tree, view: RolloutView) -> None:
    for command in view.pending_commands:
        point = f" {command.point.value}" if command.point else ""
        tree.add(Text(f"pending: {command.kind.value}{point} by {command.by}", style="magenta"))


def _untouched_line(item: RolloutSummary) -> bool:
    blank = RolloutView(namespace=item.namespace, name=item.name, status=RolloutStatus())
    return item == RolloutSummary.of(blank)


def rollout_table(items: list[RolloutSummary]) -> RenderableType:
    if not items:
        return Text("no rollouts", style="dim")
    table = Table(header_style="bold")
    for column in ("namespace", "name", "phase", "weight", "step", "waiting for"):
        table.add_column(column, no_wrap=True)
    table.add_column("message", overflow="fold")
    for item in items:
        if _untouched_line(item):
            dash = Text("-", style="dim")
            table.add_row(Text(item.namespace), Text(item.name), dash, dash, dash, dash,
                          Text(UNTOUCHED, style="yellow"))  # fmt: skip
            continue
        table.add_row(
            Text(item.namespace),
            Text(item.name),
            Text(item.phase.value, style=PHASE_STYLE.get(item.phase, "")),
            Text(f"{item.canary_weight}%"),
            Text(str(item.step_index + 1)),
            Text(item.waiting_for or "-"),
            Text(item.message),
        )
    return table


def watch_frame(view: RolloutView, note: str) -> RenderableType:
    return Group(rollout_tree(view), Text(note, style="dim"))
