"""A picture of a backtest: each check's canary and primary failure share per look, and the
verdicts, with the decision marked."""

from __future__ import annotations

from pathlib import Path

from canary.model.status import Verdict
from canary.sim.backtest import BacktestResult, Look

_COLOURS = {Verdict.PASS: "tab:green", Verdict.FAIL: "tab:red", Verdict.INCONCLUSIVE: "gold"}


def plot_backtest(result: BacktestResult, path: Path) -> Path:
    """Write a PNG of ``result`` to ``path`` (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [c.name for c in result.looks[0].checks] if result.looks else []
    fig, axes = plt.subplots(
        max(len(names), 1), 1, sharex=True, figsize=(10, 2.8 * max(len(names), 1)), squeeze=False
    )
    minutes = [(look.end - result.start).total_seconds() / 60 for look in result.looks]
    for row, name in enumerate(names):
        ax = axes[row][0]
        for side, colour in (("canary", "tab:orange"), ("primary", "tab:blue")):
            ax.plot(
                minutes,
                [_share(look, name, side) for look in result.looks],
                color=colour,
                marker=".",
                label=side,
            )
        for x, look in zip(minutes, result.looks, strict=True):
            verdict = next((c.verdict for c in look.checks if c.name == name), None)
            if verdict is not None:
                ax.axvspan(x - 0.02, x + 0.02, color=_COLOURS[verdict], alpha=0.5)
        ax.set_ylabel(f"{name}: failed %")
        ax.legend(loc="upper left")
    decision = result.decision
    if decision.at is not None:
        at = (decision.at - result.start).total_seconds() / 60
        for row in axes:
            row[0].axvline(at, color=_COLOURS[decision.verdict], lw=2)
    axes[-1][0].set_xlabel(f"minutes after {result.start:%Y-%m-%d %H:%M:%S} UTC")
    axes[0][0].set_title(f"{result.rollout}: {decision.verdict.value} ({decision.reason})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _share(look: Look, name: str, side: str) -> float:
    check = next((c for c in look.checks if c.name == name), None)
    if check is None:
        return float("nan")
    counts = check.canary if side == "canary" else check.primary
    if counts is None or not counts.requests:
        return float("nan")
    return 100.0 * (counts.failures or 0) / counts.requests
