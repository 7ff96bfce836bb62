"""Time arithmetic on the ``now`` the shell passes in (the engine never reads a clock)."""

from __future__ import annotations

from datetime import UTC, datetime


def aware(moment: datetime) -> datetime:
    """A naive time is taken as UTC, so stored and passed-in times always compare."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def seconds_since(since: datetime | None, now: datetime) -> float:
    """Seconds from ``since`` to ``now``; 0 when ``since`` is unknown."""
    if since is None:
        return 0.0
    return (aware(now) - aware(since)).total_seconds()
