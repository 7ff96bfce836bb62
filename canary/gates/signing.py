"""Signed webhook requests, so a receiver can trust that canary sent them, unchanged and lately.

The scheme (docs/gates.md):

- ``X-Canary-Timestamp: <t>``: the delivery time in whole Unix seconds.
- ``X-Canary-Signature: sha256=<hex>``: HMAC-SHA256, keyed with the secret's bytes, of the
  ASCII bytes of ``<t>``, one ``.``, then the exact body bytes.

A receiver recomputes the HMAC over the body it read and the timestamp header, compares in
constant time, and refuses timestamps too far from its own clock (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Canary-Signature"
TIMESTAMP_HEADER = "X-Canary-Timestamp"
DELIVERY_HEADER = "X-Canary-Delivery"
GATE_HEADER = "X-Canary-Gate"
SIGNATURE_PREFIX = "sha256="
DEFAULT_TOLERANCE_SECONDS = 300.0


def _key(secret: bytes | str) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def signed_material(timestamp: int, body: bytes) -> bytes:
    """What is signed: ``<timestamp>.`` followed by the body bytes."""
    return str(timestamp).encode("ascii") + b"." + body


def sign(body: bytes, secret: bytes | str, timestamp: int) -> str:
    """The ``X-Canary-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(_key(secret), signed_material(timestamp, body), hashlib.sha256)
    return SIGNATURE_PREFIX + digest.hexdigest()


def signature_headers(body: bytes, secret: bytes | str, timestamp: int) -> dict[str, str]:
    """The two headers of a signed request."""
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(body, secret, timestamp),
    }


def why_invalid(
    body: bytes,
    secret: bytes | str,
    signature: str | None,
    timestamp: str | None,
    *,
    now: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> str | None:
    """None when the request is authentic and fresh, else why it is not (for the logs).

    ``signature`` and ``timestamp`` are the raw header values (None when absent); ``now`` is
    the receiver's Unix time (default: its clock); ``tolerance`` the accepted clock distance.
    """
    if not signature:
        return f"no {SIGNATURE_HEADER} header"
    if not timestamp:
        return f"no {TIMESTAMP_HEADER} header"
    stripped = timestamp.strip()
    if len(stripped) > 12 or not stripped.isascii() or not stripped.isdigit():
        return f"{TIMESTAMP_HEADER} is not whole Unix seconds: {timestamp[:40]!r}"
    sent_at = int(stripped)
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance:
        return (
            f"{TIMESTAMP_HEADER} {sent_at} is {abs(current - sent_at):.0f}s away from now "
            f"(more than {tolerance:.0f}s): a replay or a wrong clock"
        )
    expected = sign(body, secret, sent_at)
    if not hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("utf-8")):
        return "signature does not match the body (wrong secret, or the body was changed)"
    return None


def verify_signature(
    body: bytes,
    secret: bytes | str,
    signature: str | None,
    timestamp: str | None,
    *,
    now: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """True when ``signature`` is canary's HMAC of ``body`` at ``timestamp`` with ``secret``
    and the timestamp is within ``tolerance`` seconds of ``now``.

    For receivers: pass the raw body bytes as read from the request (before any JSON
    parsing) and the two header values. The comparison is constant-time.
    """
    return why_invalid(body, secret, signature, timestamp, now=now, tolerance=tolerance) is None
