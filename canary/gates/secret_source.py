"""Where the keys that sign webhook bodies come from.

A webhook's ``secretRef`` names a Kubernetes Secret and a key in it. The controller reads
Secrets through the API (its own SecretSource); the local runner reads a directory laid out
like a mounted Secret volume: ``<dir>/<secret name>/<key>``, one file per key.

A secret that cannot be had is a `SecretError`: the caller keeps the gate closed and says
why. A webhook with a ``secretRef`` is never called unsigned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from canary.model.gates import SecretKeyRef

# Kubernetes Secret keys: alphanumerics, '-', '_' and '.'; '.' and '..' are refused below.
_KEY_PATTERN = re.compile(r"^[-._a-zA-Z0-9]+$")


class SecretError(Exception):
    """A signing secret could not be had; the message says which and why."""


class SecretSource(Protocol):
    """Gives the bytes of a Secret's key; raises SecretError when it cannot."""

    def secret(self, ref: SecretKeyRef, namespace: str) -> bytes: ...


def describe(ref: SecretKeyRef) -> str:
    return f"secret '{ref.name}' key '{ref.key}'"


class SecretsDir:
    """Secrets as files: ``<root>/<name>/<key>`` (the ``--secrets-dir`` layout).

    The namespace is ignored: a local run has one. One trailing newline is dropped from the
    file (as ``echo secret > file`` writes one); everything else is the key.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path_of(self, ref: SecretKeyRef) -> Path:
        if not _KEY_PATTERN.match(ref.key) or ref.key in (".", ".."):
            raise SecretError(f"{describe(ref)}: a key has only letters, digits, '-', '_' and '.'")
        return self.root / ref.name / ref.key

    def secret(self, ref: SecretKeyRef, namespace: str) -> bytes:
        path = self.path_of(ref)
        try:
            value = path.read_bytes()
        except FileNotFoundError:
            raise SecretError(f"{describe(ref)} not found: no file {path}") from None
        except OSError as exc:
            raise SecretError(f"{describe(ref)} unreadable at {path}: {exc}") from None
        if value.endswith(b"\r\n"):
            value = value[:-2]
        elif value.endswith(b"\n"):
            value = value[:-1]
        if not value:
            raise SecretError(f"{describe(ref)} is empty ({path})")
        return value


class StaticSecrets:
    """Secrets held in memory, keyed ``"<name>/<key>"`` (tests, embedding)."""

    def __init__(self, values: Mapping[str, bytes | str]) -> None:
        self.values = {k: v.encode("utf-8") if isinstance(v, str) else v for k, v in values.items()}

    def secret(self, ref: SecretKeyRef, namespace: str) -> bytes:
        value = self.values.get(f"{ref.name}/{ref.key}")
        if not value:
            raise SecretError(f"{describe(ref)} not found")
        return value


class NoSecrets:
    """No source configured: every webhook with a secretRef stays closed, saying so."""

    def secret(self, ref: SecretKeyRef, namespace: str) -> bytes:
        raise SecretError(
            f"{describe(ref)} is needed to sign the request but no secret source is configured "
            "(local mode: --secrets-dir DIR with the key in DIR/<name>/<key>)"
        )
