"""The decision benchmark's picture: blast radius and false rollbacks per judge across the grid."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from decision_grid import JUDGES, Cell, CellKey
from decision_targets import FALSE_ROLLBACK_LIMIT, ZERO_FLOOR

_COLOURS = {"threshold": "tab:red", "mann-whitney": "tab:blue", "sequential": "tab:green"}
_MARKERS = {"threshold": "s", "mann-whitney": "^", "sequential": "o"}


def _label(key: CellKey) -> str:
    return f"{key.error:g}% {key.rate:,}/min {key.effect.label}"


def plot(results: Mapping[tuple[str, CellKey], Cell], keys: Sequence[CellKey], path: Path) -> Path:
    """Write the PNG: top, median blast radius (log scale, bars to p90; hollow where the judge
    detects under half the runs); bottom, A/A false rollback rates with 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    worse = [k for k in keys if not k.effect.healthy]
    healthy = [k for k in keys if k.effect.healthy]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(max(10.0, 0.32 * len(worse) + 3), 10), height_ratios=(3, 2)
    )
    width = 0.26
    for index, judge in enumerate(JUDGES):
        offset = (index - 1) * width
        for x, key in enumerate(worse):
            cell = results[(judge, key)]
            blast = cell.blast()
            if blast is None:
                continue
            median, p90 = max(blast[0], ZERO_FLOOR), max(blast[1], ZERO_FLOOR)
            colour = _COLOURS[judge]
            top.plot([x + offset] * 2, [median, p90], color=colour, lw=1, alpha=0.6)
            top.plot(
                x + offset,
                median,
                marker=_MARKERS[judge],
                color=colour,
                markerfacecolor=colour if cell.detects else "white",
                linestyle="none",
            )
    handles = [
        Line2D([], [], marker=_MARKERS[j], color=_COLOURS[j], linestyle="none", label=j)
        for j in JUDGES
    ]
    top.legend(handles=handles, loc="upper left")
    top.set_yscale("log")
    top.set_ylabel("bad canary requests before rollback\n(median, bar to p90)")
    top.set_xticks(range(len(worse)), [_label(k) for k in worse], rotation=90, fontsize=7)
    top.set_title("Blast radius per judge (hollow: detects under 50% of runs; 0 is drawn at 0.5)")
    top.grid(axis="y", which="both", alpha=0.3)

    for index, judge in enumerate(JUDGES):
        offset = (index - 1) * width
        xs, ys, lows, highs = [], [], [], []
        for x, key in enumerate(healthy):
            cell = results[(judge, key)]
            low, high = cell.interval()
            xs.append(x + offset)
            ys.append(100 * cell.rollback_rate)
            lows.append(max(0.0, 100 * (cell.rollback_rate - low)))
            highs.append(max(0.0, 100 * (high - cell.rollback_rate)))
        bottom.errorbar(
            xs,
            ys,
            yerr=[lows, highs],
            fmt=_MARKERS[judge],
            color=_COLOURS[judge],
            label=judge,
            capsize=3,
        )
    bottom.axhline(100 * FALSE_ROLLBACK_LIMIT, color="black", ls="--", lw=1)
    bottom.set_yscale("symlog", linthresh=1.0)
    bottom.set_ylim(-0.2, 200)
    bottom.set_ylabel("false rollbacks on A/A (%)\n(95% Wilson interval)")
    bottom.set_title("False rollbacks per judge on healthy canaries (dashed: the 5% target)")
    bottom.set_xticks(range(len(healthy)), [_label(k) for k in healthy], rotation=30, fontsize=8)
    bottom.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
