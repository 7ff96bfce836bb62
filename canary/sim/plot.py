"""A picture of a simulated rollout: the canary's weight on top, what the checks saw below."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from canary.model.analysis import CheckKind
from canary.sim.result import SimulationResult, TimelineEntry

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
    kinds = [k for k in (CheckKind.ERROR_RATE, CheckKind.LATENCY) if _series(timeline, k)[0]]
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
        f"requests, {result.canary_errors:,} errors"
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


def _series(
    timeline: list[TimelineEntry], kind: CheckKind
) -> tuple[list[float], list[float | None], list[float | None]]:
    """(minutes, canary values, primary values) of the first check of ``kind``."""
    times: list[float] = []
    canary: list[float | None] = []
    primary: list[float | None] = []
    for entry in timeline:
        check = next((c for c in entry.checks if c.kind is kind), None)
        if check is not None:
            times.append(entry.time / 60.0)
            canary.append(check.canary_value)
            primary.append(check.primary_value)
    return times, canary, primary


def _plot_check(ax: Axes, result: SimulationResult, kind: CheckKind) -> None:
    times, canary, primary = _series(result.timeline, kind)
    nan = float("nan")
    ax.plot(times, [nan if v is None else v for v in canary], "o-", color=_CANARY, label="canary")
    ax.plot(
        times, [nan if v is None else v for v in primary], "s--", color=_PRIMARY, label="primary"
    )
    check = next((c for c in result.checks if c.kind is kind), None)
    if check is not None and check.max is not None:
        ax.axhline(check.max, color="tab:red", lw=1, ls=":", label=f"max {check.max:g}")
    ax.set_ylabel("error rate (%)" if kind is CheckKind.ERROR_RATE else "latency p99 (ms)")
    ax.legend(loc="best", fontsize="small")


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
