"""Time passed in for Lease tests (`Clock`, `advance`), and the bounds of a takeover that both
the single leader and the shards must keep (`assert_taken_in_time`)."""

from __future__ import annotations

from canary.controller.leader import EXPIRY_MARGIN


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def advance(clocks: list[Clock], seconds: float) -> None:
    for clock in clocks:
        clock.now += seconds


def assert_taken_in_time(
    run: int, taken: float, last_renewal: float, died: float, duration: float
) -> None:
    """Taken no sooner than ``duration`` after the holder's last renewal (never while it may
    act), and no later than ``duration`` after that renewal, nor after its death (plus the
    round's margin)."""
    assert taken >= last_renewal + duration, f"run {run}: taken before the lease ran out"
    assert taken <= last_renewal + duration + EXPIRY_MARGIN + 1e-6, (
        f"run {run}: taken {taken - last_renewal:.3f}s after the last renewal"
    )
    assert taken - died <= duration + EXPIRY_MARGIN + 1e-6, f"run {run}: not within D of death"
