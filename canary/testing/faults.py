"""Fault injection: make the next N matching requests fail with a code, or answer late."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from canary.testing.errors import ApiError

Json = dict[str, Any]


@dataclass
class Fault:
    """A rule on requests whose path matches `path` (a regex, searched) and whose method is
    `method` (any when None): fail `times` of them with `code`, or delay them by `delay` s."""

    path: str
    code: int | None = None
    times: int | None = 1  # None: every matching request, until cleared
    delay: float = 0.0
    method: str | None = None
    message: str = "injected fault"
    action: Callable[[], None] | None = None
    """Called when a request matches (before it is served): e.g. kill the client."""
    hits: int = field(default=0, init=False)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return re.search(self.path, path) is not None

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times


class Faults:
    """The rules in force, first added first applied; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []

    def fail(
        self,
        path: str,
        code: int = 500,
        times: int | None = 1,
        method: str | None = None,
        message: str = "injected fault",
    ) -> Fault:
        """The next `times` requests to a path matching `path` get `code` (a Status body)."""
        return self.add(Fault(path=path, code=code, times=times, method=method, message=message))

    def delay(
        self, seconds: float, path: str = "", times: int | None = None, method: str | None = None
    ) -> Fault:
        """Requests to a path matching `path` are answered `seconds` late."""
        return self.add(Fault(path=path, delay=seconds, times=times, method=method))

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._rules.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, method: str, path: str) -> tuple[float, ApiError | None]:
        """The delay and the error (if any) for this request, counting it against the rules."""
        delay, error = 0.0, None
        actions: list[Callable[[], None]] = []
        with self._lock:
            for rule in self._rules:
                if rule.exhausted or not rule.matches(method, path):
                    continue
                if rule.code is not None and error is not None:
                    continue
                rule.hits += 1
                delay += rule.delay
                if rule.action is not None:
                    actions.append(rule.action)
                if rule.code is not None:
                    error = ApiError(rule.code, rule.message)
            self._rules = [r for r in self._rules if not r.exhausted]
        for action in actions:
            action()
        return delay, error
