"""The shards' arithmetic and names, the same on every replica and in every run: which shard a
Rollout belongs to, a replica's fair share and its preference among free shards, and the names
and labels of the shards' Leases (`canary.controller.shards`)."""

from __future__ import annotations

import hashlib
import math

from canary.controller.kube import Json

GROUP_LABEL = "canary.dev/lease-group"
ROLE_LABEL = "canary.dev/lease-role"
MAX_SHARDS = 256


def shard_of(namespace: str, name: str, shards: int) -> int:
    """The shard of Rollout ``namespace/name``: stable across processes and releases."""
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def shard_of_key(key: str, shards: int) -> int:
    namespace, _, name = key.partition("/")
    return shard_of(namespace, name, shards)


def fair_share(shards: int, members: int) -> int:
    return math.ceil(shards / max(1, members))


def preference(identity: str, shard: int) -> int:
    """How much ``identity`` prefers ``shard`` (lower first: rendezvous hashing), so that
    replicas reach for different free shards and each keeps the same ones across restarts."""
    digest = hashlib.sha256(f"{identity}\0{shard}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def member_lease_name(lease_name: str, identity: str) -> str:
    """A valid object name whatever the identity (a host name with ``_`` is not one)."""
    return f"{lease_name}-member-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def group_identity(shards: int) -> str:
    """The identity the replicas of ``shards`` shards hold the plain Lease under together."""
    return f"shards:{shards}"


def validate_shards(shards: int) -> int:
    if not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"--shards must be between 1 and {MAX_SHARDS} (got {shards})")
    return shards


def holder_of(lease: Json) -> str:
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def role_of(lease: Json) -> str:
    return str(((lease.get("metadata") or {}).get("labels") or {}).get(ROLE_LABEL) or "")
