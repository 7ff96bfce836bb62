"""Watch streams: JSON lines of `{"type", "object"}`, fed by the store from any thread.

A watcher registers with the store under the store's lock and gets, in the same step, what it
must send first (the current objects, or the history after its resourceVersion), so nothing
is missed or sent twice. Later events reach it through `loop.call_soon_threadsafe`. An object
that starts or stops matching the watcher's selectors arrives as ADDED or DELETED, as from the
real server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from canary.testing.errors import ApiError
from canary.testing.resources import ResourceType
from canary.testing.storage import Event, Matcher, Store, as_version

Json = dict[str, Any]

_STOP = object()


@dataclass(frozen=True)
class _Progress:
    rv: int


class Watcher:
    """One watch request's subscription: a queue on the server's event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        rt: ResourceType,
        namespace: str | None,
        match: Matcher,
    ) -> None:
        self.key = rt.key
        self.rt = rt
        self.namespace = namespace
        self.match = match
        self._loop = loop
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

    def push(self, event: Event) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, _STOP)

    def _in_scope(self, obj: Json | None) -> bool:
        if obj is None:
            return False
        ns = obj["metadata"].get("namespace", "")
        return (self.namespace is None or ns == self.namespace) and self.match(obj)

    def view(self, event: Event) -> Json | None:
        """The event as this watcher sees it, or None when it concerns no object it watches."""
        now_in, was_in = self._in_scope(event.obj), self._in_scope(event.old)
        if event.type == "DELETED":
            kind = "DELETED" if was_in or now_in else None
        elif event.type == "ADDED":
            kind = "ADDED" if now_in else None
        elif now_in:
            kind = "MODIFIED" if was_in else "ADDED"
        else:
            kind = "DELETED" if was_in else None
        if kind is None:
            return None
        return {"type": kind, "object": as_version(event.obj, self.rt)}

    def progress(self, rv: int) -> None:
        """Every event up to `rv` is queued ahead of this mark (the store calls it, locked)."""
        self._loop.call_soon_threadsafe(self._queue.put_nowait, _Progress(rv))

    async def next(self, timeout: float) -> Event | _Progress | None:
        """The next event or mark, None after `timeout` s; StopAsyncIteration on the stop."""
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        if item is _STOP:
            raise StopAsyncIteration
        assert isinstance(item, Event | _Progress)
        return item


def line(event: Json) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)


def bookmark(rt: ResourceType, rv: int) -> Json:
    return {
        "type": "BOOKMARK",
        "object": {
            "kind": rt.kind,
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(rv)},
        },
    }


def error_event(err: ApiError) -> Json:
    return {"type": "ERROR", "object": err.status()}


async def stream(
    store: Store,
    watcher: Watcher,
    since: int | None,
    timeout: float | None,
    bookmarks: float | None,
    initial_end: bool = False,
) -> AsyncIterator[Json]:
    """The events of one watch until its timeout, the server's stop or the client's leaving.

    `initial_end`: `sendInitialEvents=true` (a watch-list), whose synthetic ADDED events are
    followed by a BOOKMARK annotated `k8s.io/initial-events-end`.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        first, at = store.subscribe(watcher, since, watcher.match)
    except ApiError as err:
        yield error_event(err)
        return
    try:
        for event in first:
            if (seen := watcher.view(event)) is not None:
                yield seen
        last_rv = max([since or 0, *(e.rv for e in first)])
        if initial_end and since is None:  # watch-list: the initial state ends with a bookmark
            end = bookmark(watcher.rt, at)
            end["object"]["metadata"]["annotations"] = {"k8s.io/initial-events-end": "true"}
            yield end
        next_bookmark = None if bookmarks is None else time.monotonic() + bookmarks
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            if next_bookmark is not None and bookmarks is not None and now >= next_bookmark:
                store.progress(watcher)
                next_bookmark = now + bookmarks
            waits = [t - now for t in (deadline, next_bookmark) if t is not None]
            try:
                item = await watcher.next(max(0.0, min(waits)) if waits else 3600.0)
            except StopAsyncIteration:
                return
            if isinstance(item, _Progress):
                yield bookmark(watcher.rt, max(last_rv, item.rv))
            elif item is not None and item.rv > last_rv:
                last_rv = item.rv
                if (seen := watcher.view(item)) is not None:
                    yield seen
    finally:
        store.unsubscribe(watcher)
