"""Where tokens, webhook URLs and signing keys come from: Secrets, seen as `<secret>/<key>`."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Protocol

from canary.model.gates import SecretKeyRef

log = logging.getLogger(__name__)


class SecretMissingError(LookupError):
    """A Secret key a channel needs is not there (yet): the channel cannot send."""

    def __init__(self, ref: SecretKeyRef, where: str) -> None:
        self.ref = ref
        super().__init__(f"secret '{ref.name}' has no key '{ref.key}' ({where})")


class SecretSource(Protocol):
    """Reads one key of one Secret. Raises `SecretMissingError` when it is not there."""

    def read(self, ref: SecretKeyRef, namespace: str | None = None) -> str: ...


class DirectorySecretSource:
    """Secrets as files: ``<root>/<secret>/<key>`` holds the value (as a mounted Secret does).

    When ``namespace`` is given, ``<root>/<namespace>/<secret>/<key>`` is tried first, so one
    directory can serve rollouts of several namespaces. Surrounding whitespace is stripped.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, ref: SecretKeyRef, namespace: str | None = None) -> str:
        candidates = [self.root / ref.name / ref.key]
        if namespace:
            candidates.insert(0, self.root / namespace / ref.name / ref.key)
        for path in candidates:
            try:
                return path.read_text(encoding="utf-8").strip()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                continue
        raise SecretMissingError(ref, f"no file {candidates[-1]}")


class MappingSecretSource:
    """Secrets held in memory, keyed by (secret name, key): for tests and embedding."""

    def __init__(self, values: dict[tuple[str, str], str]) -> None:
        self.values = dict(values)

    def read(self, ref: SecretKeyRef, namespace: str | None = None) -> str:
        try:
            return self.values[(ref.name, ref.key)]
        except KeyError:
            raise SecretMissingError(ref, "not provided") from None


class OnceLogger:
    """Logs a given problem once (until it is cleared), so a missing Secret is not a log flood."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def error(self, key: str, message: str) -> None:
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
        log.error("%s", message)

    def clear(self, key: str) -> None:
        with self._lock:
            self._seen.discard(key)
