"""A steady load through HAProxy: a fixed request rate, a share of it tagged for an A/B test."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field


class LoadSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    target: str = Field(description="host:port to send to (HAProxy's frontend).")
    rate: float = Field(default=20.0, gt=0, le=2000, description="Requests per second.")
    tagged_share: float = Field(default=0.0, ge=0, le=1, description="Share with the A/B header.")
    tag_header: str = "x-canary"
    tag_value: str = "insider"
    workers: int = Field(default=16, ge=1, le=256)
    timeout: float = Field(default=5.0, gt=0)
    keep_answers: int = Field(default=100_000, ge=0, description="Recent answers kept.")


class Answer(NamedTuple):
    """One answered request: when (monotonic seconds), whether tagged, which version."""

    at: float
    tagged: bool
    version: str
    code: str


class LoadGenerator:
    """Sends requests at ``spec.rate`` until stopped; counts answers by status code."""

    def __init__(
        self,
        spec: LoadSpec,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.spec = spec
        self.codes: Counter[str] = Counter()
        self.tagged: Counter[str] = Counter()
        self.answers: deque[Answer] = deque(maxlen=spec.keep_answers)
        self._clock = clock
        self._sleep = sleep
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.sent = 0

    def start(self) -> LoadGenerator:
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.spec.timeout + 2)

    def _run(self) -> None:
        host, _, port = self.spec.target.rpartition(":")
        period = 1.0 / self.spec.rate
        next_at = self._clock()
        with ThreadPoolExecutor(self.spec.workers, thread_name_prefix="load") as pool:
            while not self._stop.is_set():
                tagged = self._is_tagged(self.sent)
                pool.submit(self._one, host, int(port), tagged)
                self.sent += 1
                next_at += period
                delay = next_at - self._clock()
                if delay > 0:
                    self._stop.wait(delay)

    def _is_tagged(self, n: int) -> bool:
        """Every k-th request is tagged, so the share is exact rather than random."""
        share = self.spec.tagged_share
        return share > 0 and int((n + 1) * share) > int(n * share)

    def _one(self, host: str, port: int, tagged: bool) -> None:
        headers = {self.spec.tag_header: self.spec.tag_value} if tagged else {}
        try:
            conn = http.client.HTTPConnection(host, port, timeout=self.spec.timeout)
            conn.request("GET", "/", headers=headers)
            response = conn.getresponse()
            response.read()
            code = str(response.status)
            version = response.getheader("X-Version", "?")
            conn.close()
        except OSError as exc:
            code, version = f"error:{type(exc).__name__}", "?"
        with self._lock:
            self.answers.append(Answer(self._clock(), tagged, version, code))
            self.codes[code] += 1
            if tagged:
                self.tagged[version] += 1
