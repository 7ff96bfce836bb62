"""The controller process' garbage collector, tuned for a long-lived server with a large heap.

CPython's cyclic collector runs a young-generation pass every 700 net allocations and, every
100 of those, a pass over the whole heap. The controller keeps every watched object in its
caches (a quarter of a GiB at 1,000 Rollouts), and each Prometheus answer it decodes allocates
thousands of small objects: measured at 1,000 Rollouts (docs/benchmarks.md, "Controller
scale"), full passes took 230 ms each, every worker waiting behind them, and the collector was
17% of the process' CPU. Two changes, both in the process's entry point and nowhere else (tests
import the controller into processes of their own):

- the young generation is collected every 10,000 allocations, not 700: the objects a tick
  allocates mostly die with it (freed by reference counting, which the collector does not
  delay), so passes are rarer for little memory (measured at 1,000 Rollouts: 50,000 held
  about 30 MiB more at the peak, past the 300 MiB a replica is sized for);
- once the caches are first synced, what is alive (modules, models, the caches' first fill) is
  frozen out of the collector's passes (``gc.freeze``), so a full pass scans only what came
  later. Frozen objects are still freed by reference counting; a reference cycle among them
  that dies later is not, which the controller's objects (JSON dicts and lists) do not form.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 100


def tune_collector() -> None:
    """Rarer collector passes (see the module's docstring)."""
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)


def freeze_startup_heap() -> int:
    """Collect once, then keep everything alive now out of later passes; returns how many
    objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
