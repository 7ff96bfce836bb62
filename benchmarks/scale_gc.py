"""Garbage-collector pauses in the scale benchmarks' processes, and keeping the API server
stand-in's out of the controller's figures.

The API server stand-in runs in the benchmark's process, which keeps the request log and every
stored version of every object for the audit: hundreds of thousands of objects by the steady
window. CPython's full collection scans them all, holding the interpreter: measured at 1,000
Rollouts (docs/benchmarks.md, "Controller scale"), passes of 0.6-1.5 s every 10-15 s, during
which every API call the controller made waited, and its ticks queued behind them. A real API
server (Go, a concurrent collector) pauses for well under a millisecond, so the benchmark keeps
the stand-in's collector from pausing it: every second it moves what is alive out of the
collector's passes (``gc.freeze``: a constant-time move; the stand-in's dicts and lists are
freed by reference counting as before, only cyclic garbage is kept until the run ends). The
pauses that remain are measured and reported beside the controller's own
(`PauseLog`, also used in the controller's process, where nothing is changed).
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any


class PauseLog:
    """Every collection of this process: (wall-clock start, generation, seconds)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, int, float]] = []
        self._began = (0.0, 0.0)

    def start(self) -> PauseLog:
        gc.callbacks.append(self._heard)
        return self

    def stop(self) -> None:
        if self._heard in gc.callbacks:
            gc.callbacks.remove(self._heard)

    def _heard(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = (time.time(), time.perf_counter())
        else:
            wall, began = self._began
            self.pauses.append((wall, int(info["generation"]), time.perf_counter() - began))

    def between(self, start: float, end: float) -> list[float]:
        """The seconds of each collection that began in [start, end) (wall clock)."""
        return [seconds for wall, _, seconds in self.pauses if start <= wall < end]


class FrozenHeap:
    """Freezes this process' heap every ``every`` seconds until `stop` (see the module)."""

    def __init__(self, every: float = 1.0) -> None:
        self.every = every
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="frozen-heap", daemon=True)

    def start(self) -> FrozenHeap:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        gc.unfreeze()

    def _run(self) -> None:
        while not self._stopping.wait(self.every):
            gc.freeze()
