"""Secrets read from the cluster: webhook signing keys and notification tokens and URLs.

A ``secretRef`` names a Secret in the Rollout's (or NotificationChannel's) namespace and a key
in it. `ClusterSecrets` serves both secret sources the shells take: `canary.gates`' (``secret``,
bytes, raising SecretError: the gate stays closed, saying why) and `canary.notify`'s (``read``,
text, raising SecretMissingError: the message waits and is retried).
"""

from __future__ import annotations

import base64
import binascii

from canary.controller.kinds import SECRET
from canary.controller.kube import Kube, KubeError
from canary.gates.secret_source import SecretError, describe
from canary.model.gates import SecretKeyRef
from canary.notify.secrets import SecretMissingError


class ClusterSecrets:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def _value(self, ref: SecretKeyRef, namespace: str) -> tuple[bytes | None, str]:
        try:
            secret = self.kube.get(SECRET, namespace, ref.name)
        except KubeError as exc:
            return None, f"cannot be read ({exc})"
        if secret is None:
            return None, f"not found in namespace {namespace}"
        encoded = (secret.get("data") or {}).get(ref.key)
        if encoded is None:
            return None, f"has no key '{ref.key}' in namespace {namespace}"
        try:
            return base64.b64decode(encoded, validate=True), ""
        except (binascii.Error, ValueError):
            return None, "is not base64"

    def secret(self, ref: SecretKeyRef, namespace: str) -> bytes:
        """For webhooks: the key's bytes; SecretError when missing or empty."""
        value, why = self._value(ref, namespace or "default")
        if value is None:
            raise SecretError(f"{describe(ref)} {why}")
        if not value:
            raise SecretError(f"{describe(ref)} is empty")
        return value

    def read(self, ref: SecretKeyRef, namespace: str | None = None) -> str:
        """For notifications: the key as text, surrounding whitespace stripped."""
        value, why = self._value(ref, namespace or "default")
        if value is None or not value.strip():
            raise SecretMissingError(ref, why or "empty")
        return value.decode("utf-8", errors="replace").strip()
