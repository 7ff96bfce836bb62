"""Every write the API is asked for, with who asked: a log line, and an `AuditEvent` handed to
the sinks the shell gives (the controller turns them into Kubernetes Events; local mode appends
them to a JSON-lines file)."""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from canary.gates.api.models import AuditEvent, AuditOutcome

log = logging.getLogger("canary.api.audit")

AuditSink = Callable[[AuditEvent], None]


class Audit:
    """Logs each event and hands it to every sink; a failing sink never fails the request."""

    def __init__(self, sinks: Sequence[AuditSink] = ()) -> None:
        self.sinks = list(sinks)

    def record(self, event: AuditEvent) -> None:
        level = logging.INFO if event.outcome is AuditOutcome.ACCEPTED else logging.WARNING
        point = f" {event.point.value}" if event.point else ""
        log.log(
            level,
            "audit: %s asked to %s%s %s/%s: %s (%s)",
            event.by,
            event.action.value,
            point,
            event.namespace,
            event.name,
            event.outcome.value,
            event.message,
        )
        for sink in self.sinks:
            try:
                sink(event)
            except Exception:
                log.exception("audit sink %r failed; the request goes on", sink)


class JsonlAuditLog:
    """Appends each event as one JSON line (local mode: ``STATE_DIR/audit.jsonl``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, event: AuditEvent) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = event.model_dump_json(by_alias=True, exclude_none=True) + "\n"
        with self.path.open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            handle.write(line)

    def read(self) -> list[AuditEvent]:
        if not self.path.exists():
            return []
        return [
            AuditEvent.model_validate_json(line)
            for line in self.path.read_text().splitlines()
            if line.strip()
        ]
