"""The picture attached to a finished rollout's thread: canary weight over time, failed ticks.

A small PNG drawn from the points the notifier kept while the rollout ran (not the
simulator's plot, which needs per-tick metric series the notifier does not have).
"""

from __future__ import annotations

import io

from canary.notify.notice import Notice

_CANARY = "#e8833a"
_FAILED = "#e01e5a"


def timeline_png(notice: Notice) -> bytes:
    """A PNG of the canary's weight over the rollout, failed ticks marked; empty if no points."""
    points = notice.timeline
    if not points:
        return b""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    start = notice.started_at or points[0].time
    minutes = [(p.time - start).total_seconds() / 60 for p in points]
    end = max((notice.time - start).total_seconds() / 60, minutes[-1])
    fig = Figure(figsize=(7, 2.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.step(
        [*minutes, end],
        [*(p.weight for p in points), points[-1].weight],
        where="post",
        color=_CANARY,
        lw=2,
        label="canary weight",
    )
    failed = [(m, p.weight) for m, p in zip(minutes, points, strict=True) if p.failed]
    if failed:
        ax.plot(
            [m for m, _ in failed],
            [w for _, w in failed],
            "x",
            color=_FAILED,
            ms=9,
            mew=2,
            label="failed tick",
        )
    ax.set_ylim(-5, 105)
    ax.set_xlim(left=0)
    ax.set_ylabel("canary weight (%)")
    ax.set_xlabel("minutes since the rollout started")
    ax.set_title(f"{notice.key} revision {notice.revision or '?'}: {notice.phase.value}")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
