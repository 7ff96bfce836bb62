"""Child processes that are started, waited for and always stopped, with their logs kept."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType


class ProcessError(Exception):
    """A child process could not be found, started or made ready; the message says why."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_binary(name: str, package: str | None = None) -> str:
    """The path of ``name`` on PATH (or /usr/sbin), or a ProcessError saying how to install it."""
    for candidate in (shutil.which(name), shutil.which(name, path="/usr/sbin:/sbin")):
        if candidate:
            return candidate
    raise ProcessError(
        f"{name} not found: install it with `sudo apt-get install {package or name}` "
        "(or `make demo`, which installs what it needs)"
    )


@dataclass
class ManagedProcess:
    """One child: started with its output in a log file, stopped with SIGTERM then SIGKILL."""

    name: str
    argv: Sequence[str]
    log_path: Path
    cwd: Path | None = None
    env: dict[str, str] | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.cwd,
                env={**os.environ, **(self.env or {})},
                start_new_session=True,  # a Ctrl-C on the terminal reaches us, not the child
            )
        except OSError as exc:
            raise ProcessError(f"could not start {self.name} ({self.argv[0]}): {exc}") from None
        finally:
            log.close()
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(
        self,
        ready: Callable[[], bool],
        timeout: float,
        what: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Poll ``ready`` until it is true; a dead child or the timeout is a ProcessError."""
        deadline = clock() + timeout
        while True:
            if not self.running:
                code = self._proc.returncode if self._proc is not None else None
                raise ProcessError(
                    f"{self.name} exited (code {code}) before {what}; its log "
                    f"({self.log_path}) ends with:\n{self.log_tail()}"
                )
            if ready():
                return
            if clock() >= deadline:
                raise ProcessError(
                    f"{self.name} did not get {what} within {timeout:g}s; its log "
                    f"({self.log_path}) ends with:\n{self.log_tail()}"
                )
            sleep(0.05)

    def stop(self, timeout: float = 5.0) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False
