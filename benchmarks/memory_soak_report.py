"""The memory soak's figures (benchmarks/memory_soak.py): the slopes, the table, the plot, and
the allocation sites that grew (tracemalloc snapshots' diff)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PLOT = ROOT / "docs" / "benchmarks" / "memory_soak.png"


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y); NaN with fewer than 3 points."""
    if len(points) < 3:
        return float("nan")
    x, y = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    if np.ptp(x) == 0:
        return float("nan")
    return float(np.polyfit(x, y, 1)[0])


def after_warmup(variant: Any, warmup_minutes: float) -> list[Any]:
    start = variant.synced_at + 60 * warmup_minutes
    return [s for s in variant.samples if s.t >= start]


def figures(variant: Any, warmup_minutes: float) -> dict[str, float]:
    """RSS at start, at sync, peak, end; slopes after the warmup (per hour, per 1,000 watch
    events; over the whole window and its second half)."""
    samples = variant.samples
    late = after_warmup(variant, warmup_minutes)
    half = late[len(late) // 2 :]
    synced = [s for s in samples if s.t >= variant.synced_at]
    nan = float("nan")
    return {
        "start": samples[0].rss_mib if samples else nan,
        "synced": synced[0].rss_mib if synced else nan,
        "warm": late[0].rss_mib if late else nan,
        "peak": max((s.rss_mib for s in samples), default=nan),
        "end": samples[-1].rss_mib if samples else nan,
        "per_hour": 3600 * slope([(s.t, s.rss_mib) for s in late]),
        "per_hour_late": 3600 * slope([(s.t, s.rss_mib) for s in half]),
        "per_1000_events": 1000 * slope([(s.events, s.rss_mib) for s in late]),
        "events": (late[-1].events - late[0].events) if late else 0,
        "window_minutes": (late[-1].t - late[0].t) / 60 if late else 0.0,
    }


def container_growth(variant: Any, warmup_minutes: float, top: int = 5) -> list[str]:
    """The controller's containers (`state_sizes`) that grew most from the first walk after
    the warmup to the last."""
    walks = [s for s in variant.child_stats if s.get("sizes")]
    if len(walks) < 2:
        return []
    start = walks[0]["t"] + 60 * warmup_minutes
    first = next((w for w in walks if w["t"] >= start), walks[0])
    last = walks[-1]
    grew = sorted(
        ((size - first["sizes"].get(path, 0), path, size) for path, size in last["sizes"].items()),
        reverse=True,
    )
    return [f"`{path}` {size - diff:,} -> {size:,}" for diff, path, size in grew[:top] if diff > 0]


def fmt(value: float, digits: int = 0) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"


def child_line(variant: Any) -> str:
    """The child's own view at the end: Python's traced memory, malloc's free bytes, ticks."""
    stats = variant.child_stats
    if not stats:
        return ""
    first, last = stats[0], stats[-1]
    parts = [f"{last.get('ticks', 0):,} ticks"]
    if last.get("malloc"):
        m0, m1 = first["malloc"], last["malloc"]
        parts.append(
            f"malloc in use {m0['in_use'] / 2**20:.0f} -> {m1['in_use'] / 2**20:.0f} MiB, free "
            f"held {m0['free'] / 2**20:.0f} -> {m1['free'] / 2**20:.0f} MiB"
        )
    if last.get("traced"):
        parts.append(
            f"traced by tracemalloc {first['traced'][0] / 2**20:.0f} -> "
            f"{last['traced'][0] / 2**20:.0f} MiB"
        )
    return f"{variant.name} ({variant.role}): " + "; ".join(parts)


def markdown(result: Any) -> str:
    lines = [
        "## Memory over a long run",
        "",
        f"`{result.command}` — {result.when}, {result.machine}; {result.size:,} Rollouts and "
        f"their Deployments, mode **{result.mode}** "
        + (
            f"({result.churn:g} object writes a second by the benchmark)"
            if result.mode == "watch"
            else "(the first process ticks every Rollout, each kept cycling)"
        )
        + (
            f", {result.recreate:g} Rollouts a second created under new names and deleted "
            f"({result.recreated:,} in all)"
            if result.recreate
            else ""
        )
        + f"; {result.minutes:g} minutes, slopes after a {result.warmup:g}-minute warmup, "
        f"{result.events:,} watch events in the namespace.",
        "",
        "| process | role | RSS at start MiB | after sync | after warmup | peak | end "
        "| slope MiB/hour | second half MiB/hour | MiB per 1,000 events |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for variant in result.variants:
        f = figures(variant, result.warmup)
        lines.append(
            f"| {variant.name} | {variant.role} | {fmt(f['start'])} | {fmt(f['synced'])} | "
            f"{fmt(f['warm'])} | {fmt(f['peak'])} | {fmt(f['end'])} | "
            f"{fmt(f['per_hour'], 1)} | {fmt(f['per_hour_late'], 1)} | "
            f"{fmt(f['per_1000_events'], 3)} |"
        )
    lines += ["", "RSS MiB by minute:", ""]
    names = [f"{v.name} ({v.role})" for v in result.variants]
    lines += ["| minute | events | " + " | ".join(names) + " |"]
    lines += ["|---:|---:|" + "---:|" * len(names)]
    first = result.variants[0]
    minute = 0
    for index, sample in enumerate(first.samples):
        if sample.t < 60 * minute and index != len(first.samples) - 1:
            continue
        row = [f"{sample.t / 60:.0f}", f"{sample.events:,}"]
        row += [
            fmt(v.samples[index].rss_mib) if index < len(v.samples) else "" for v in result.variants
        ]
        lines.append("| " + " | ".join(row) + " |")
        minute = int(sample.t // 60) + 1
    extra = [child_line(v) for v in result.variants]
    for variant in result.variants:
        grew = container_growth(variant, result.warmup)
        if variant.child_stats and any(s.get("sizes") for s in variant.child_stats):
            extra.append(
                f"{variant.name} ({variant.role}): containers that grew most after the warmup: "
                + ("; ".join(grew) if grew else "none")
            )
    if any(extra):
        lines += ["", *(f"- {e}" for e in extra if e)]
    return "\n".join(lines)


def plot(result: Any, path: Path = PLOT) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 3.2))
    for variant in result.variants:
        axes.plot(
            [s.t / 60 for s in variant.samples],
            [s.rss_mib for s in variant.samples],
            label=f"{variant.name} ({variant.role})",
        )
    axes.set_xlabel("minutes")
    axes.set_ylabel("RSS MiB")
    axes.set_title(f"controller RSS, {result.size:,} Rollouts, {result.mode} mode")
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def top_growth(folder: Path, first: float, top: int = 15) -> list[str]:
    """The allocation sites that grew most between snapshot ``first`` (the first after the
    warmup) and the last one in ``folder``."""
    snapshots = sorted(folder.glob("snapshot-*.bin"), key=lambda p: int(p.stem.split("-")[1]))
    if len(snapshots) < 2:
        return []
    index = min(int(first + 0.999), len(snapshots) - 2)
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    before = tracemalloc.Snapshot.load(str(snapshots[index])).filter_traces(ignore)
    after = tracemalloc.Snapshot.load(str(snapshots[-1])).filter_traces(ignore)
    stats = after.compare_to(before, "lineno")
    lines = []
    for stat in stats[:top]:
        frame = stat.traceback[0]
        lines.append(
            f"{stat.size_diff / 1024:+10.0f} KiB {stat.count_diff:+8d} blocks "
            f"{frame.filename}:{frame.lineno}"
        )
    return lines
