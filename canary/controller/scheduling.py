"""When each Rollout's next tick runs: a timer per Rollout key, a pool of workers to run them.

The tick of a Rollout says when the next one is due (the engine's ``requeueAfter``: the analysis
interval, or sooner while waiting on the world); the key then waits until that moment. A key is
always in exactly one state, *waiting* (on the timer), *ready* (due, waiting for a worker) or
*running*, so one Rollout never has two ticks at once and is never forgotten. Ready keys run
earliest-due first: under a burst every tick waits about as long as the queue, none much longer.
`trigger` asks for an early tick (a Deployment or the Rollout changed): a waiting key is due at
once; a ready one already runs soon; a running one ticks once more when this tick ends.

(This replaced APScheduler, whose one-instance rule *skipped* a run that came due while the
previous run of the job was still returning and left it to the trigger's next fire time, 30 s
later; and whose job store, triggers and events cost a share of every tick.)

When a key's run starts, the scheduler reports its *lateness* (how long after it was due it
started: waiting for a free worker) to ``on_lateness`` as ``scheduled`` or ``early``; `busy` is
how many workers run a tick.

Each early wake names its *reason* (``deployment``, ``command``, ``route``, ...). Wakes that
arrive while a tick is already asked for (the key is due, or a second run after the running one
is asked for) are *coalesced* into that run (no tick of their own); ``on_wake(reason, fate)``
hears each (fate ``ticks`` or ``coalesced``). While a tick runs, `current_wake` on its thread says
why: ``scheduled``, or the reasons of the wakes it took, sorted and joined by ``+``, and
`current_run` when it was due and when it became ready.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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
MIN_DELAY = 0.05
"""The shortest requeue a tick can ask for (a wake is never delayed by it)."""
_local = threading.local()


@dataclass(frozen=True)
class RunTiming:
    """When the run ticking on this thread was due and became ready (time.monotonic)."""

    due: float
    ready: float


def current_wake() -> str:
    """Why the tick running on this thread runs (see the module); "" outside a tick."""
    wake: str = getattr(_local, "wake", "")
    return wake


def current_run() -> RunTiming | None:
    """The timing of the run ticking on this thread; None outside a tick."""
    timing: RunTiming | None = getattr(_local, "run", None)
    return timing


WAITING, READY, RUNNING = "waiting", "ready", "running"


@dataclass(eq=False)
class _Key:
    name: str
    due: float
    state: str = WAITING
    version: int = 0
    """Bumped at each change of ``due`` or state: older timer entries are stale."""
    ready: float = 0.0
    early: set[str] = field(default_factory=set)
    during: list[Wake] = field(default_factory=list)
    removed: bool = False
    requeue: float | None = None
    """The delay of an `ensure` that came while the key's removed run was still running."""


class TickScheduler:
    """One timer per Rollout key ("namespace/name"), ticks run on ``workers`` threads."""

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
        self._workers = max(1, workers)
        mutex = threading.RLock()
        self._lock = threading.Condition(mutex)
        """Held for every change of state; the dispatcher waits on it for the timer."""
        self._ready_cv = threading.Condition(mutex)
        """Idle workers wait on it for a ready key."""
        self._idle = threading.Condition(mutex)
        """`shutdown` waits on it for the running ticks to end."""
        self._keys: dict[str, _Key] = {}
        self._timers: list[tuple[float, int, _Key, int]] = []
        self._ready: list[tuple[float, int, _Key]] = []
        self._order = itertools.count()
        self._busy = 0
        self._running = False
        self._stopping = False
        self._generation = 0
        """Threads of an earlier start (before a shutdown) end instead of working on."""

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._running and not self._stopping:
                return
            self._running, self._stopping = True, False
            self._generation += 1
            generation = self._generation
        threads = [
            threading.Thread(
                target=self._dispatch, args=(generation,), name="canary-ticks", daemon=True
            )
        ]
        threads += [
            threading.Thread(
                target=self._work, args=(generation,), name=f"canary-tick-{n}", daemon=True
            )
            for n in range(self._workers)
        ]
        for thread in threads:
            thread.start()

    def shutdown(self, wait: bool = True, timeout: float = 60.0) -> None:
        """Stop starting ticks; with ``wait``, wait (up to ``timeout``) for the running ones."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
            self._ready_cv.notify_all()
            if wait:
                self._idle.wait_for(lambda: self._busy == 0, timeout)
            self._running = False

    @property
    def running(self) -> bool:
        return self._running and not self._stopping

    @property
    def busy(self) -> int:
        """Workers running a tick now."""
        with self._lock:
            return self._busy

    # -- keys -----------------------------------------------------------------------------

    def keys(self) -> list[str]:
        with self._lock:
            return [name for name, key in self._keys.items() if not key.removed]

    def ensure(self, key: str, delay: float = 0.0) -> None:
        """A timer for ``key``, first run after ``delay`` seconds (kept as it is if it exists)."""
        with self._lock:
            known = self._keys.get(key)
            if known is not None and not known.removed:
                return
            if known is not None:  # removed while it runs: its run requeues it when it ends
                known.removed, known.requeue = False, max(0.0, delay)
                return
            entry = _Key(key, time.monotonic() + max(0.0, delay))
            self._keys[key] = entry
            self._wait(entry, entry.due)

    def remove(self, key: str) -> None:
        with self._lock:
            entry = self._keys.get(key)
            if entry is None:
                return
            entry.version += 1  # its timer and ready entries are stale from now
            if entry.state == RUNNING:
                entry.removed, entry.requeue = True, None
            else:
                del self._keys[key]

    def remove_all(self) -> None:
        for key in self.keys():
            self.remove(key)

    def due_in(self, key: str) -> float | None:
        """Seconds until ``key``'s next tick (None: not scheduled, or running now)."""
        with self._lock:
            entry = self._keys.get(key)
            if entry is None or entry.removed or entry.state == RUNNING:
                return None
            return entry.due - time.monotonic()

    def trigger(self, key: str, reason: str = "change", echo: Echo | None = None) -> None:
        """Tick ``key`` as soon as possible (an early tick), because of ``reason``; one wake
        while another already waits for that tick is coalesced into it. A wake that comes while
        ``key`` ticks is settled when that tick ends: ``echo`` (when given) then says whether
        it was the echo of that tick's own write, whose answer the tick had not yet recorded
        when the watch delivered it (dropped: the tick acted on what it wrote); any other runs
        one more tick at once."""
        with self._lock:
            entry = self._keys.get(key)
            if entry is None or entry.removed:
                return
            if entry.state == RUNNING:
                entry.during.append((reason, echo))
                return
            coalesced = bool(entry.early) or entry.state == READY
            entry.early.add(reason)
            if entry.state == WAITING:
                self._wait(entry, min(entry.due, time.monotonic()))
        self._woken(reason, "coalesced" if coalesced else "ticks")

    # -- the timer and the workers --------------------------------------------------------

    def _wait(self, entry: _Key, due: float) -> None:
        """(Under the lock.) ``entry`` waits on the timer until ``due``."""
        entry.state, entry.due = WAITING, due
        entry.version += 1
        heapq.heappush(self._timers, (due, next(self._order), entry, entry.version))
        if self._timers[0][2] is entry:
            self._lock.notify_all()  # the dispatcher may sleep past it

    def _current(self, generation: int) -> bool:
        """(Under the lock.) Whether threads of ``generation`` should go on."""
        return not self._stopping and generation == self._generation

    def _dispatch(self, generation: int) -> None:
        """Move keys whose time has come from the timer to the ready queue."""
        with self._lock:
            while self._current(generation):
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    due, _, entry, version = heapq.heappop(self._timers)
                    if version == entry.version and entry.state == WAITING:
                        entry.state, entry.ready = READY, now
                        heapq.heappush(self._ready, (due, next(self._order), entry))
                        self._ready_cv.notify()
                wait = self._timers[0][0] - now if self._timers else None
                self._lock.wait(wait)

    def _work(self, generation: int) -> None:
        while True:
            with self._lock:
                entry = self._next_ready(generation)
                if entry is None:
                    return
                self._busy += 1
            try:
                self._run(entry)
            finally:
                with self._lock:
                    self._busy -= 1
                    self._idle.notify_all()

    def _next_ready(self, generation: int) -> _Key | None:
        """(Under the lock.) The earliest-due ready key, marked running; None when stopping."""
        while self._current(generation):
            while self._ready:
                _, _, entry = heapq.heappop(self._ready)
                if entry.state == READY and self._keys.get(entry.name) is entry:
                    entry.state = RUNNING
                    return entry
            self._ready_cv.wait()
        return None

    def _run(self, entry: _Key) -> None:
        started = time.monotonic()
        with self._lock:
            reasons, entry.early = entry.early, set()
            due, ready = entry.due, entry.ready
        delay = 60.0
        _local.wake = "+".join(sorted(reasons)) if reasons else SCHEDULED
        _local.run = RunTiming(due, ready)
        try:
            if self._on_lateness is not None:
                self._on_lateness("early" if reasons else "scheduled", max(0.0, started - due))
            delay = self._tick(entry.name, bool(reasons))
        except Exception:  # the tick reports its own errors; never let one kill the worker
            log.exception("tick of %s failed", entry.name)
        finally:
            _local.wake, _local.run = "", None
        self._requeue(entry, delay)

    def _requeue(self, entry: _Key, delay: float) -> None:
        """Settle the wakes that came while ``entry`` ticked, then set its next run: at once
        when one of them asks for a tick, else after ``delay``."""
        again = False
        while True:
            with self._lock:
                wakes, entry.during = entry.during, []
                if not wakes:
                    self._after_run(entry, 0.0 if again else max(delay, MIN_DELAY))
                    return
            again = self._settle(entry, wakes) or again

    def _after_run(self, entry: _Key, delay: float) -> None:
        """(Under the lock.) The key waits again, or leaves if it was removed meanwhile."""
        if entry.removed:
            if entry.requeue is None:
                self._keys.pop(entry.name, None)
                return
            # removed, then ensured again while it ran
            entry.removed, delay, entry.requeue = False, entry.requeue, None
        self._wait(entry, time.monotonic() + delay)

    def _settle(self, entry: _Key, wakes: list[Wake]) -> bool:
        """The wakes that came while ``entry`` ticked: whether any asks for another tick (its
        reasons are then that tick's)."""
        echoed = [_was_echo(echo) for _, echo in wakes]
        echoes = [reason for (reason, _), was in zip(wakes, echoed, strict=True) if was]
        real = [reason for (reason, _), was in zip(wakes, echoed, strict=True) if not was]
        with self._lock:
            waiting = bool(entry.early)
            entry.early.update(real)
        for reason in echoes:
            self._woken(reason, "echo")
        for index, reason in enumerate(real):
            self._woken(reason, "coalesced" if waiting or index else "ticks")
        return bool(real)

    def _woken(self, reason: str, fate: str) -> None:
        if self._on_wake is None:
            return
        try:
            self._on_wake(reason, fate)
        except Exception:  # an observer must never leave a key running forever
            log.exception("the wake observer failed")


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
