"""When each Rollout's next tick runs: one APScheduler job per Rollout, at its own cadence.

The job of a Rollout runs its tick, and the tick says when the next one is due (the engine's
``requeueAfter``: the analysis interval, or sooner while waiting on the world); the job is then
rescheduled to that. Jobs run on a thread pool with ``max_instances=1`` and ``coalesce``, so
one Rollout never has two ticks at once and runs missed while one was running collapse into
one. `trigger` asks for an early tick (a Deployment or the Rollout changed): the job's next
run is moved to now, and when the tick is running already, another one follows it at once.

Each time it sets a job's next run the scheduler notes when that run is due; a run reports its
*lateness* (how long after that it started: waiting for a free worker, or for the scheduler)
to ``on_lateness`` as ``scheduled`` or ``early``, and `busy` is how many workers run a tick.

Each early wake names its *reason* (``deployment``, ``command``, ``route``, ...). Wakes that
arrive while one is already waiting to run, or while a second run after the running one is
already asked for, are *coalesced* into that run (no tick of their own); ``on_wake(reason,
fate)`` hears each (fate ``ticks`` or ``coalesced``). While a tick runs, `current_wake` on its
thread says why: ``scheduled``, or the reasons of the wakes it took, sorted and joined by
``+``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor  # type: ignore[import-untyped]
from apscheduler.jobstores.base import JobLookupError  # type: ignore[import-untyped]
from apscheduler.schedulers.background import (  # type: ignore[import-untyped]
    BackgroundScheduler,
)
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

log = logging.getLogger("canary.controller.scheduling")

TickFunction = Callable[[str, bool], float]
"""(rollout key, early) -> seconds until the next tick."""
LatenessObserver = Callable[[str, float], None]
"""("scheduled" or "early", seconds after it was due that a tick started)."""
WakeObserver = Callable[[str, str], None]
"""(the wake's reason, "ticks", "coalesced" or "echo")."""
Echo = Callable[[], bool]
"""Whether a wake was the echo of a write of the tick that ran when it came (asked once that
tick has ended)."""
Wake = tuple[str, Echo | None]

SCHEDULED = "scheduled"
"""`current_wake` of a tick that runs at its requeue time."""
EARLY = "early"
"""The reason of an early tick run without the scheduler (tests driving ticks by hand)."""
_local = threading.local()


def current_wake() -> str:
    """Why the tick running on this thread runs (see the module); "" outside a tick."""
    wake: str = getattr(_local, "wake", "")
    return wake


MIN_DELAY = 0.05
FALLBACK = 30.0
"""Seconds between runs should a tick not reschedule itself (it always does)."""


class TickScheduler:
    """One job per Rollout key ("namespace/name")."""

    def __init__(
        self,
        tick: TickFunction,
        *,
        workers: int = 8,
        on_lateness: LatenessObserver | None = None,
        on_wake: WakeObserver | None = None,
    ) -> None:
        self._tick = tick
        self._on_lateness = on_lateness
        self._on_wake = on_wake
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self._lock = threading.Condition()
        self._stopping = False
        self._early: dict[str, set[str]] = {}
        """The keys woken early, with the reasons of their wakes."""
        self._running: set[str] = set()
        self._during: dict[str, list[Wake]] = {}
        """The wakes of each running key that came while it ran, settled when it ends."""
        self._due: dict[str, float] = {}
        """When each job's next run is due (time.monotonic)."""

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self, wait: bool = True, timeout: float = 60.0) -> None:
        """Stop starting ticks; with ``wait``, wait for the running ones to finish.

        (APScheduler's own ``shutdown(wait=True)`` waits while holding the lock a finishing
        job needs to reschedule itself: the ticks are waited for here instead.)"""
        with self._lock:
            self._stopping = True
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        if wait:
            with self._lock:
                self._lock.wait_for(lambda: not self._running, timeout)

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    @property
    def busy(self) -> int:
        """Workers running a tick now."""
        with self._lock:
            return len(self._running)

    def keys(self) -> list[str]:
        return [str(job.id) for job in self._scheduler.get_jobs()]

    def ensure(self, key: str, delay: float = 0.0) -> None:
        """A job for ``key``, first run after ``delay`` seconds (kept as it is if it exists)."""
        if self._scheduler.get_job(key) is not None:
            return
        with self._lock:
            self._due[key] = time.monotonic() + max(0.0, delay)
        self._scheduler.add_job(
            self._run,
            IntervalTrigger(seconds=60, timezone=UTC),
            args=[key],
            id=key,
            name=f"tick {key}",
            next_run_time=_after(delay),
            replace_existing=True,
        )

    def remove(self, key: str) -> None:
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(key)
        with self._lock:
            self._early.pop(key, None)
            self._during.pop(key, None)
            self._due.pop(key, None)

    def due_in(self, key: str) -> float | None:
        """Seconds until ``key``'s next tick (None: not scheduled, or running now)."""
        with self._lock:
            due = self._due.get(key)
        return None if due is None else due - time.monotonic()

    def remove_all(self) -> None:
        for key in self.keys():
            self.remove(key)

    def trigger(self, key: str, reason: str = "change", echo: Echo | None = None) -> None:
        """Tick ``key`` as soon as possible (an early tick), because of ``reason``; one wake
        while another already waits for that tick is coalesced into it. A wake that comes while
        ``key`` ticks is settled when that tick ends: ``echo`` (when given) then says whether
        it was the echo of that tick's own write, whose answer the tick had not yet recorded
        when the watch delivered it (dropped: the tick acted on what it wrote); any other runs
        one more tick at once."""
        with self._lock:
            if key in self._running:
                self._during.setdefault(key, []).append((reason, echo))
                return
            waiting = key in self._early
            self._early.setdefault(key, set()).add(reason)
            # due now, or earlier when a run already waits (overdue) for a worker
            self._due[key] = min(self._due.get(key, float("inf")), time.monotonic())
        self._woken(reason, "coalesced" if waiting else "ticks")
        self._move(key, 0.0)

    def _settle(self, key: str, wakes: list[Wake]) -> bool:
        """The wakes that came while ``key`` ticked: whether any asks for another tick (its
        reasons are then that tick's)."""
        echoed = [_was_echo(echo) for _, echo in wakes]
        echoes = [reason for (reason, _), was in zip(wakes, echoed, strict=True) if was]
        real = [reason for (reason, _), was in zip(wakes, echoed, strict=True) if not was]
        with self._lock:
            waiting = key in self._early
            if real:
                self._early.setdefault(key, set()).update(real)
                self._due[key] = time.monotonic()
        for reason in echoes:
            self._woken(reason, "echo")
        for index, reason in enumerate(real):
            self._woken(reason, "coalesced" if waiting or index else "ticks")
        return bool(real)

    def _woken(self, reason: str, fate: str) -> None:
        if self._on_wake is not None:
            self._on_wake(reason, fate)

    def _move(self, key: str, delay: float) -> None:
        with contextlib.suppress(JobLookupError):
            self._scheduler.modify_job(key, next_run_time=_after(delay))

    def _run(self, key: str) -> None:
        started = time.monotonic()
        with self._lock:
            reasons = self._early.pop(key, None)
            self._running.add(key)
            due = self._due.pop(key, None)
        early = reasons is not None
        if due is not None and self._on_lateness is not None:
            self._on_lateness("early" if early else "scheduled", max(0.0, started - due))
        delay = 60.0
        _local.wake = "+".join(sorted(reasons)) if reasons else SCHEDULED
        try:
            delay = self._tick(key, early)
        except Exception:  # the tick reports its own errors; never let one kill the job
            log.exception("tick of %s failed", key)
        finally:
            _local.wake = ""
        with self._lock:
            during = self._during.pop(key, [])
            stopping = self._stopping
        # (still running: a wake that comes meanwhile waits in _during, settled below)
        if self._settle(key, during):
            delay = 0.0
        if not stopping:
            self._reschedule(key, delay)
        with self._lock:
            self._running.discard(key)
            late = self._during.pop(key, [])
            self._lock.notify_all()
        if late and not stopping and self._settle(key, late):
            self._move(key, 0.0)

    def _reschedule(self, key: str, delay: float) -> None:
        delay = max(delay, MIN_DELAY)
        with self._lock:
            self._due[key] = time.monotonic() + delay
        trigger = IntervalTrigger(
            seconds=max(delay, FALLBACK), start_date=_after(delay), timezone=UTC
        )
        try:
            self._scheduler.reschedule_job(key, trigger=trigger)
        except JobLookupError:  # removed while it ran: the Rollout was deleted, or leadership lost
            with self._lock:
                self._due.pop(key, None)
                self._early.pop(key, None)


def _was_echo(echo: Echo | None) -> bool:
    """Asked once; a question that fails counts as a change (a needless tick, never a lost
    one)."""
    if echo is None:
        return False
    try:
        return echo()
    except Exception:
        log.exception("could not tell an echo from a change")
        return False


def _after(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=max(0.0, seconds))
