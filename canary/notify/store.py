"""Which Slack message is the parent of a rollout revision's thread (memory, and a file)."""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from pathlib import Path

from pydantic import BaseModel, ValidationError

from canary.notify.queue import write_json_atomically

log = logging.getLogger(__name__)


class SlackThread(BaseModel):
    """The parent message of one rollout revision in one Slack channel."""

    channel_id: str
    ts: str
    final: bool = False


class MessageStore:
    """Parent message ids by key, the most recent ``limit`` kept; written through to ``path``."""

    def __init__(self, path: Path | None = None, limit: int = 2000) -> None:
        self._path = path
        self._limit = limit
        self._lock = threading.Lock()
        self._threads: OrderedDict[str, SlackThread] = OrderedDict()
        self._load()

    def get(self, key: str) -> SlackThread | None:
        with self._lock:
            return self._threads.get(key)

    def put(self, key: str, thread: SlackThread) -> None:
        with self._lock:
            self._threads[key] = thread
            self._threads.move_to_end(key)
            while len(self._threads) > self._limit:
                self._threads.popitem(last=False)
            snapshot = {k: v.model_dump() for k, v in self._threads.items()}
        if self._path is not None:
            try:
                write_json_atomically(self._path, snapshot)
            except OSError as exc:
                log.error("cannot keep Slack message ids in %s: %s", self._path, exc)

    def _load(self) -> None:
        if self._path is None or not self._path.exists():
            return
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
            for key, value in raw.items():
                self._threads[key] = SlackThread.model_validate(value)
        except (OSError, ValueError, AttributeError, ValidationError) as exc:
            log.error("ignoring unreadable Slack message ids in %s: %s", self._path, exc)
