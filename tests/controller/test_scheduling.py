"""The tick scheduler on its own: one tick at a time per key, earliest-due first, nothing lost.

Real threads and the real clock; each test waits for what it needs (never for a fixed time)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

from controller_support import wait_for

from canary.controller.scheduling import TickScheduler, current_run


def test_ready_keys_run_earliest_due_first() -> None:
    """One worker, held by a first tick while three keys come due in a known order: once it is
    free, they run in the order they came due, not in the order they were added."""
    order: list[str] = []
    hold = threading.Event()

    def tick(key: str, early: bool) -> float:
        order.append(key)
        if key == "ns/first":
            hold.wait(10)
        return 3600.0

    scheduler = TickScheduler(tick, workers=1)
    scheduler.start()
    try:
        scheduler.ensure("ns/first")
        wait_for("the first tick", lambda: order)
        for key, delay in (("ns/c", 0.30), ("ns/a", 0.10), ("ns/b", 0.20)):
            scheduler.ensure(key, delay)
        keys = ("ns/a", "ns/b", "ns/c")
        wait_for("all three due", lambda: all((scheduler.due_in(k) or 1) < 0 for k in keys))
        hold.set()
        wait_for("the three ticks", lambda: len(order) == 4)
    finally:
        scheduler.shutdown()
    assert order == ["ns/first", "ns/a", "ns/b", "ns/c"]


def test_a_run_reports_when_it_was_due_and_when_it_became_ready() -> None:
    seen: list[tuple[float, float, float]] = []

    def tick(key: str, early: bool) -> float:
        run = current_run()
        assert run is not None
        seen.append((run.due, run.ready, time.monotonic()))
        return 3600.0

    scheduler = TickScheduler(tick, workers=1)
    scheduler.start()
    try:
        scheduler.ensure("ns/a", 0.05)
        wait_for("the tick", lambda: seen)
    finally:
        scheduler.shutdown()
    due, ready, started = seen[0]
    assert due <= ready <= started
    assert current_run() is None, "outside a tick there is no run"


def test_seeded_random_wakes_never_run_two_ticks_of_one_key_at_once_nor_lose_one() -> None:
    """Many keys, short requeues and wakes from several threads at random moments (seeded),
    also while each key ticks: at no moment do two ticks of one key overlap, and every wake is
    followed by a tick of its key that started after it."""
    keys = [f"ns/r{n}" for n in range(12)]
    running: Counter[str] = Counter()
    overlaps: list[str] = []
    started: dict[str, list[float]] = {key: [] for key in keys}
    lock = threading.Lock()

    def tick(key: str, early: bool) -> float:
        with lock:
            running[key] += 1
            if running[key] > 1:
                overlaps.append(key)
            started[key].append(time.monotonic())
        time.sleep(0.002)
        with lock:
            running[key] -= 1
        return 0.0 if random.Random(key).random() < 0.5 else 0.2

    scheduler = TickScheduler(tick, workers=4)
    scheduler.start()
    last_wake: dict[str, float] = {}

    def waker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(150):
            key = rng.choice(keys)
            with lock:
                last_wake[key] = time.monotonic()
            scheduler.trigger(key, "deployment")
            time.sleep(rng.random() * 0.004)

    try:
        for key in keys:
            scheduler.ensure(key)
        threads = [threading.Thread(target=waker, args=(seed,)) for seed in (1, 2, 3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        woken = dict(last_wake)

        def every_wake_answered() -> bool:
            with lock:
                return all(started[key] and started[key][-1] >= at for key, at in woken.items())

        wait_for("a tick after every key's last wake", every_wake_answered, timeout=30)
    finally:
        scheduler.shutdown()
    assert not overlaps, f"two ticks of one key at once: {sorted(set(overlaps))}"


def test_a_key_removed_while_it_ticks_is_not_requeued_unless_ensured_again() -> None:
    ticks: list[str] = []
    hold = threading.Event()

    def tick(key: str, early: bool) -> float:
        ticks.append(key)
        if len(ticks) <= 2:
            hold.wait(10)
        return 0.0

    scheduler = TickScheduler(tick, workers=2)
    scheduler.start()
    try:
        scheduler.ensure("ns/gone")
        wait_for("its tick", lambda: ticks)
        scheduler.remove("ns/gone")
        assert scheduler.keys() == []
        hold.set()
        wait_for("the tick to end", lambda: scheduler.busy == 0)
        assert scheduler.due_in("ns/gone") is None
        hold.clear()
        scheduler.ensure("ns/back")
        wait_for("the second key's tick", lambda: len(ticks) == 2)
        scheduler.remove("ns/back")
        scheduler.ensure("ns/back", 0.0)  # ensured again while its removed run still ticks
        hold.set()
        wait_for("it to tick again", lambda: len(ticks) >= 3)
    finally:
        scheduler.shutdown()
    assert ticks[:3] == ["ns/gone", "ns/back", "ns/back"]


def test_a_restarted_scheduler_runs_with_its_own_workers_only() -> None:
    """After shutdown and start, the earlier workers end: at most ``workers`` ticks at once."""
    busy_seen: list[int] = []
    lock = threading.Lock()
    running = [0]

    def tick(key: str, early: bool) -> float:
        with lock:
            running[0] += 1
            busy_seen.append(running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        return 0.0

    scheduler = TickScheduler(tick, workers=2)
    scheduler.start()
    for n in range(6):
        scheduler.ensure(f"ns/r{n}")
    wait_for("some ticks", lambda: len(busy_seen) > 10)
    scheduler.shutdown()
    scheduler.start()
    before = len(busy_seen)
    try:
        wait_for("ticks after the restart", lambda: len(busy_seen) > before + 40)
    finally:
        scheduler.shutdown()
    assert max(busy_seen) <= 2
