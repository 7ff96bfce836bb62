"""Ctrl-C for the commands that only read over HTTP (`canary get --watch`, `canary wait`).

They have nothing to undo, so Ctrl-C ends the process at once with exit 130 instead of
raising KeyboardInterrupt wherever the main thread happens to be: raised inside httpx's
connection pool, that exception can leave the process hung for good (the pool's cleanup takes
the pool's own, non-reentrant lock again: encode/httpcore discussion #990).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import FrameType

from rich.console import Console

INTERRUPTED = 130
"""The shell's exit status for a process ended by SIGINT (128 + 2)."""


@contextmanager
def exit_at_once_on_ctrl_c(out: Console | None = None) -> Iterator[None]:
    """Within the block, SIGINT flushes what was printed (and shows the cursor a live view
    hid) and exits with 130. Outside the main thread (no signals there) it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave(signum: int, frame: FrameType | None) -> None:
        if out is not None and out.is_terminal:
            out.show_cursor(True)
        for stream in (sys.stdout, sys.stderr):
            with suppress(OSError, ValueError):  # a closed pipe: nothing more to show
                stream.flush()
        os._exit(INTERRUPTED)

    previous = signal.signal(signal.SIGINT, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
