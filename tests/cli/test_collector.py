"""The controller process' collector settings (canary/cli/collector.py), in a process of its own:
they are process-wide, and the test process keeps CPython's defaults."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

SCRIPT = """
import gc, json
from canary.cli.collector import freeze_startup_heap, tune_collector
before = gc.get_threshold()
tune_collector()
cache = [{"kind": "Rollout", "n": i} for i in range(1000)]
frozen = freeze_startup_heap()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": frozen,
                  "counts": gc.get_count()}))
"""


def test_the_controller_collects_less_often_and_freezes_its_startup_heap() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    seen = json.loads(out)
    assert seen["before"] == [700, 10, 10]
    assert seen["after"] == [10_000, 20, 100]
    # the 1,000 cached dicts (and the modules) are out of the collector's passes
    assert seen["frozen"] > 1_000
    assert seen["counts"][2] == 0


ARENAS = """
import ctypes, ctypes.util, json, os, sys, tempfile, threading
from canary.cli.collector import limit_malloc_arenas
limited = limit_malloc_arenas() if sys.argv[1] == "limit" else None
start = threading.Barrier(8)
def allocate():
    start.wait()  # all eight alive at once: each would get an arena of its own
    kept = [bytes(4096 + n) for n in range(200)]  # past Python's small-object allocator
    start.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
libc.fclose.argtypes = (ctypes.c_void_p,)
path = os.path.join(tempfile.mkdtemp(), "info.xml")
stream = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, stream)
libc.fclose(stream)
print(json.dumps({"limited": limited, "arenas": open(path).read().count("<heap nr=")}))
"""


def _arenas(mode: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run(
        [sys.executable, "-c", ARENAS, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=env,
    ).stdout
    seen: dict[str, object] = json.loads(out)
    return seen


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's arenas"
)
def test_the_controller_keeps_two_malloc_arenas_where_eight_threads_would_make_more() -> None:
    unlimited = _arenas("default")
    limited = _arenas("limit")
    assert limited["limited"] is True
    assert unlimited["arenas"] > 2, "eight threads at once get arenas of their own by default"
    assert limited["arenas"] <= 2


TRIM = """
import json
from canary.cli.collector import trim_malloc
def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
kept = [bytes(8192) for _ in range(6000)]  # ~48 MiB from malloc's heap (past Python's allocator)
pin = bytes(8192)  # above them: the heap's top stays in use, so free() alone returns nothing
del kept
before = rss_kib()
trimmed = trim_malloc()
print(json.dumps({"trimmed": trimmed, "before": before, "after": rss_kib()}))
"""


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc_trim"
)
def test_trim_malloc_gives_back_the_free_memory_malloc_holds() -> None:
    out = subprocess.run(
        [sys.executable, "-c", TRIM], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    seen = json.loads(out)
    assert seen["trimmed"] is True
    assert seen["before"] - seen["after"] > 30 * 1024, seen  # most of the ~48 MiB freed
