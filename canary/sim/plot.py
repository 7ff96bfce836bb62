"""A picture of a simulated rollout: the canary's weight on top, what the checks judged below.

Each check's panel draws the number its judges decide on: the share of failed requests for an
error-rate check, the share of requests slower than the objective (``max`` ms) for a latency
check, against the check's limit. A latency check's p99 is read from histogram buckets, so it
is only an estimate inside a bucket: it is drawn faintly on its own axis, labelled as such,
never as the judged line (docs/analysis.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from canary.analysis.judges.sequential import LATENCY_SLOW_SHARE
from canary.model.analysis import CheckKind
from canary.sim.result import CheckOutcome, SimulationResult, TimelineEntry

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_CANARY = "tab:orange"
_PRIMARY = "tab:blue"


def plot_result(result: SimulationResult, path: Path) -> Path:
    """Write a PNG of ``result`` to ``path`` (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timeline = result.timeline
    minutes = [e.time / 60.0 for e in timeline]
    kinds = [k for k in (CheckKind.ERROR_RATE, CheckKind.LATENCY) if _series(timeline, k)]
    fig, axes = plt.subplots(
        1 + len(kinds), 1, sharex=True, figsize=(10, 3 + 2.6 * len(kinds)), squeeze=False
    )
    top = axes[0][0]
    top.step(minutes, [e.weight for e in timeline], where="post", color=_CANARY, lw=2)
    top.set_ylabel("canary weight (%)")
    top.set_ylim(-5, 105)
    top.set_title(
        f"{result.scenario} (seed {result.seed}): {result.phase.value} after "
        f"{result.duration_seconds / 60:.1f} min; canary served {result.canary_requests:,} "
        f"requests, {result.canary_errors:,} failed"
    )
    for row, kind in enumerate(kinds, start=1):
        _plot_check(axes[row][0], result, kind)
    for ax in (a[0] for a in axes):
        ax.grid(alpha=0.3)
        _mark_phases(ax, timeline, label=ax is top)
    axes[-1][0].set_xlabel("minutes since the new revision was detected")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@dataclass(frozen=True)
class Panel:
    """What one check's panel draws: minutes, each side's judged share in percent (None: no
    requests, nothing to judge), the limit line and, for latency, each side's p99 estimate."""

    minutes: list[float]
    canary: list[float | None]
    primary: list[float | None]
    limit: float | None
    limit_label: str
    ylabel: str
    canary_p99: list[float | None]
    primary_p99: list[float | None]


def panel(result: SimulationResult, kind: CheckKind) -> Panel:
    """The judged numbers of the first check of ``kind``, tick by tick."""
    minutes: list[float] = []
    canary: list[float | None] = []
    primary: list[float | None] = []
    canary_p99: list[float | None] = []
    primary_p99: list[float | None] = []
    for entry in result.timeline:
        check = next((c for c in entry.checks if c.kind is kind), None)
        if check is None:
            continue
        minutes.append(entry.time / 60.0)
        canary.append(_share(check.canary_failures, check.canary_requests))
        primary.append(_share(check.primary_failures, check.primary_requests))
        if kind is CheckKind.LATENCY:
            canary_p99.append(check.canary_value)
            primary_p99.append(check.primary_value)
    summary = next((c for c in result.checks if c.kind is kind), None)
    objective = summary.max if summary is not None else None
    if kind is CheckKind.LATENCY:
        above = f"slower than {objective:g} ms" if objective is not None else "slow"
        return Panel(
            minutes,
            canary,
            primary,
            100.0 * LATENCY_SLOW_SHARE,
            f"limit {100.0 * LATENCY_SLOW_SHARE:g}% (p99 within the objective)",
            f"requests {above} (%)",
            canary_p99,
            primary_p99,
        )
    label = f"max {objective:g}%" if objective is not None else ""
    return Panel(minutes, canary, primary, objective, label, "failed requests (%)", [], [])


def _share(failures: int | None, requests: int | None) -> float | None:
    if failures is None or not requests:
        return None
    return 100.0 * failures / requests


def _series(timeline: list[TimelineEntry], kind: CheckKind) -> list[CheckOutcome]:
    return [c for e in timeline for c in e.checks if c.kind is kind]


def _plot_check(ax: Axes, result: SimulationResult, kind: CheckKind) -> None:
    data = panel(result, kind)
    nan = float("nan")

    def line(values: list[float | None]) -> list[float]:
        return [nan if v is None else v for v in values]

    ax.plot(data.minutes, line(data.canary), "o-", color=_CANARY, label="canary")
    ax.plot(data.minutes, line(data.primary), "s--", color=_PRIMARY, label="primary")
    if data.limit is not None:
        ax.axhline(data.limit, color="tab:red", lw=1, ls=":", label=data.limit_label)
    ax.set_ylabel(data.ylabel)
    ax.legend(loc="upper left", fontsize="small")
    if any(v is not None for v in data.canary_p99 + data.primary_p99):
        estimate = ax.twinx()
        estimate.plot(data.minutes, line(data.canary_p99), ":", color=_CANARY, alpha=0.45)
        estimate.plot(data.minutes, line(data.primary_p99), ":", color=_PRIMARY, alpha=0.45)
        estimate.set_ylabel("p99 estimate (ms, within a bucket)", color="grey")
        estimate.tick_params(axis="y", colors="grey")


def _mark_phases(ax: Axes, timeline: list[TimelineEntry], *, label: bool) -> None:
    """A vertical line where the phase changes, named on the top chart."""
    previous = None
    for entry in timeline:
        if entry.phase is not previous:
            ax.axvline(entry.time / 60.0, color="grey", lw=0.8, ls="--")
            if label:
                ax.annotate(
                    entry.phase.value,
                    (entry.time / 60.0, 100),
                    rotation=90,
                    fontsize="x-small",
                    va="top",
                    ha="right",
                )
            previous = entry.phase
