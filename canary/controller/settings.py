"""How a controller runs (`ControllerSettings`): what `canary controller`'s flags set."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from canary.controller.leader import LeaseSettings
from canary.controller.route_watch import ROUTE_APIS, UNSERVED_RETRY
from canary.controller.routing import ROUTE_RESYNC_SECONDS
from canary.notify import NotifyConfig

DEFAULT_WORKERS = 64
"""Ticks run at once. A tick spends most of its wall time waiting on the API server and
Prometheus (docs/benchmarks.md, "Controller scale"), and a thread that waits costs little, so
there are more workers than cores: a thousand Rollouts at a 10 s interval ask ~150 ticks a
second, which 8 workers at ~150 ms a tick could not run; 32 ran them on average but queued
them for seconds whenever the Rollouts' early ticks came together (p99 lateness 2.6 s against
1.8 s with 64, side by side on a busy machine; 0.4-0.8 s with 64 on a quiet one)."""


def default_identity() -> str:
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class ControllerSettings:
    namespaces: tuple[str, ...] = ()
    """Namespaces whose Rollouts are run; empty: all."""
    identity: str = field(default_factory=default_identity)
    lease: LeaseSettings | None = field(default_factory=LeaseSettings)
    """None: no leader election (this replica always acts; run one replica only)."""
    shards: int = 1
    """With a lease, above 1: the Rollouts are split into this many shards, each held by a
    Lease of its own, and the replicas share them (canary.controller.shards)."""
    metrics_address: tuple[str, int] | None = ("0.0.0.0", 8080)
    workers: int = DEFAULT_WORKERS
    watch_timeout: int = 300
    request_timeout: float = 15.0
    secrets_dir: Path | None = None
    """Read webhook and notification secrets from this folder (SECRET/KEY files) instead of
    the cluster's Secrets."""
    notify: NotifyConfig | None = field(default_factory=NotifyConfig)
    """None: no notifications (Kubernetes Events are still recorded)."""
    api_address: tuple[str, int] | None = None
    """Serve the incoming API (canary.gates.api) here, with ``api_tokens``."""
    api_tokens: Path | None = None
    forbid_inline_queries: bool = False
    """Rollouts may only use their policies' queries (docs/security.md)."""
    webhook_allow: tuple[str, ...] = ()
    """CIDRs gate webhooks may reach although the destination policy refuses them (loopback,
    link-local, ...: canary.gates.destinations)."""
    restore_on_delete: bool = False
    """A finalizer on each Rollout: deleting one gives the target back (canary.controller.
    deletion); without it the garbage collector removes what the Rollout owns."""
    route_resync: float = ROUTE_RESYNC_SECONDS
    """Seconds between applies of a Rollout's every route object (between, only those whose
    content changed are sent): the backstop for a hand edit of one, which the route watch
    otherwise puts back within a tick (`canary.controller.route_watch`)."""
    route_watch: tuple[str, ...] = ROUTE_APIS
    """The APIs whose route objects are watched for hand edits (`canary.controller.
    route_watch.KINDS_BY_API`; empty: none, the resync alone puts an edit back)."""
    route_unserved_retry: float = UNSERVED_RETRY
    """Seconds between looks for a route kind whose CRD is not installed (or not allowed)."""
