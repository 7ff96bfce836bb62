"""The controller process' garbage collector and allocator, tuned for a long-lived server with
a large heap.

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

And the C allocator (glibc) keeps at most two arenas (`limit_malloc_arenas`), not one per
worker thread: free memory held per arena had put the peak RSS past what a replica is sized for.
With two, glibc holds little free memory in a long run (docs/benchmarks.md, "What grows in a
long run"): `trim_malloc` every minute gave a watching process back 1 MiB of ~145, so nothing
calls it periodically; the memory soak uses it to tell held memory from memory in use.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os

YOUNG_THRESHOLD = 10_000
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 100
MALLOC_ARENAS = 2
"""glibc's malloc arenas (its default: 8 a core). Each thread that allocates gets an arena of
its own up to the limit, and memory freed in one arena serves only that arena: with 32-64
workers the controller's peak RSS grew by tens of MiB of free space held per arena (measured
at 1,000 Rollouts, docs/benchmarks.md "Controller scale"). Python's own small objects come
from its allocator, not from these arenas; its larger buffers (answers, bodies) do. Two arenas
cost nothing measurable here: the workers mostly wait, and the interpreter lets one run at a
time anyway."""
M_ARENA_MAX = -8
"""mallopt's parameter number for the arena limit (glibc's malloc.h)."""

log = logging.getLogger("canary.cli.collector")


def tune_collector() -> None:
    """Rarer collector passes (see the module's docstring)."""
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """At most ``arenas`` glibc malloc arenas in this process (see `MALLOC_ARENAS`); call it
    before threads start. False where the C library is not glibc (nothing to limit, e.g. musl)
    or refused it. ``MALLOC_ARENA_MAX`` in the environment, when set, is left to rule."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_ARENA_MAX, arenas))
    if not done:
        log.debug("mallopt refused the arena limit")
    return done


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"))
    except (OSError, TypeError):
        return None


def trim_malloc() -> bool:
    """Give the free memory glibc's malloc holds back to the system (``malloc_trim(0)``: the
    whole free pages in its heaps, not only at their tops); True when some was released, False
    when none was or the C library has no ``malloc_trim`` (not glibc)."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    return bool(trim(0))


def freeze_startup_heap() -> int:
    """Collect once, then keep everything alive now out of later passes; returns how many
    objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
