"""The controller process of the memory soak (benchmarks/memory_soak.py): the sharded
benchmark's replica (`scale_sharded.replica_main`: ``canary controller``'s wiring, its collector
and allocator settings), with a sampler thread that writes, every ``--every`` seconds, one JSON
line to ``--stats``:

    {"t": epoch, "rss_kib": ..., "ticks": ..., "gc": [young, middle, old],
     "malloc": {"arena": ..., "in_use": ..., "free": ..., "mmapped": ...},   # glibc mallinfo2
     "traced": [current, peak] | null, "types": {type: count} | null,
     "sizes": {path: length} | null}

- ``CANARY_SOAK_TRACEMALLOC=N`` in the environment: ``tracemalloc`` from the start, with ``N``
  frames; each sample has its totals, and every ``--snapshot-every`` seconds a snapshot is
  dumped beside the stats file (``snapshot-K.bin``) for the parent to diff;
- ``--types-every S``: the 25 commonest types among the objects the collector tracks, and the
  length of every container the controller holds (tests/controller/state_sizes.py);
- ``CANARY_SOAK_MALLOC_TRIM=S``: ``malloc_trim(0)`` every S seconds
  (`canary.cli.collector.trim_malloc`), to tell memory the allocator holds from memory in use.

The benchmark's tick log is replaced by a counter (the replica's log keeps every tick's times:
tens of bytes a tick, which a soak would count as growth).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import os
import sys
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "controller"))  # state_sizes: the walk

CONTROLLER: list[Any] = []
"""The controller the replica built (kept by `count_ticks`' hook), for `state_sizes`."""

_ticks = [0]
_ticks_lock = threading.Lock()


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _libc() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"))
    except OSError:
        return None


LIBC = _libc()


def malloc_info() -> dict[str, int] | None:
    """glibc's totals over all arenas (mallinfo2, glibc 2.33+); None elsewhere."""
    function = getattr(LIBC, "mallinfo2", None)
    if function is None:
        return None
    function.restype = _MallInfo2
    info = function()
    return {
        "arena": info.arena,  # bytes from the heap (brk and the arenas' heaps)
        "in_use": info.uordblks,
        "free": info.fordblks,  # free, held by malloc
        "mmapped": info.hblkhd,
    }


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def type_counts(top: int = 25) -> dict[str, int]:
    counts = Counter(type(o).__name__ for o in gc.get_objects())
    return dict(counts.most_common(top))


def controller_sizes() -> dict[str, int] | None:
    """The length of every container the controller holds, by path (tests/controller/
    state_sizes.py: a map that grows with the names seen shows here)."""
    if not CONTROLLER:
        return None
    from state_sizes import state_sizes

    return state_sizes(CONTROLLER[0])


def count_ticks() -> None:
    """The replica's tick log (scale_controller.TickLog) counts ticks only."""
    import scale_controller

    def wrap(self: Any, tick: Any) -> Any:
        def counted(key: str, early: bool) -> float:
            try:
                return float(tick(key, early))
            finally:
                with _ticks_lock:
                    _ticks[0] += 1

        return counted

    attach = scale_controller.TickLog.attach.__func__  # type: ignore[attr-defined]

    def attach_and_keep(cls: Any, controller: Any) -> Any:
        CONTROLLER.append(controller)
        return attach(cls, controller)

    scale_controller.TickLog.wrap = wrap  # type: ignore[method-assign]
    scale_controller.TickLog.attach = classmethod(attach_and_keep)  # type: ignore[assignment]


def ticks_so_far() -> int:
    with _ticks_lock:
        return _ticks[0]


def sample(stats: Path, args: argparse.Namespace, stop: threading.Event) -> None:
    started = time.monotonic()
    snapshots = 0
    last_types = last_snapshot = last_trim = float("-inf")
    trim_every = float(os.environ.get("CANARY_SOAK_MALLOC_TRIM") or 0)
    with stats.open("a", encoding="utf-8") as out:
        while not stop.wait(args.every):
            now = time.monotonic() - started
            if trim_every and now - last_trim >= trim_every:
                from canary.cli.collector import trim_malloc

                trim_malloc()
                last_trim = now
            line: dict[str, Any] = {
                "t": time.time(),
                "rss_kib": rss_kib(),
                "ticks": ticks_so_far(),
                "gc": list(gc.get_count()),
                "frozen": gc.get_freeze_count(),
                "malloc": malloc_info(),
                "traced": list(tracemalloc.get_traced_memory())
                if tracemalloc.is_tracing()
                else None,
                "threads": threading.active_count(),
                "types": None,
            }
            if args.types_every and now - last_types >= args.types_every:
                line["types"] = type_counts()
                line["sizes"] = controller_sizes()
                last_types = now
            if (
                tracemalloc.is_tracing()
                and args.snapshot_every
                and now - last_snapshot >= args.snapshot_every
            ):
                tracemalloc.take_snapshot().dump(str(stats.parent / f"snapshot-{snapshots}.bin"))
                line["snapshot"] = snapshots
                snapshots += 1
                last_snapshot = now
            out.write(json.dumps(line) + "\n")
            out.flush()


def main(argv: list[str]) -> int:
    frames = int(os.environ.get("CANARY_SOAK_TRACEMALLOC") or 0)
    if frames:
        tracemalloc.start(frames)
    parser = argparse.ArgumentParser(prog="memory_soak_child.py")
    parser.add_argument("--stats", type=Path, required=True)
    parser.add_argument("--every", type=float, default=5.0)
    parser.add_argument("--types-every", type=float, default=0.0)
    parser.add_argument("--snapshot-every", type=float, default=0.0)
    args, replica_argv = parser.parse_known_args(argv)
    count_ticks()
    stop = threading.Event()
    sampler = threading.Thread(
        target=sample, args=(args.stats, args, stop), name="soak-sampler", daemon=True
    )
    sampler.start()
    from scale_sharded import replica_main

    try:
        return replica_main(replica_argv)
    finally:
        stop.set()
        sampler.join(30)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
