"""The Kubernetes controller: watches, a job per Rollout, leader election, /metrics.

    controller = Controller(api_client, ControllerSettings(...), provider=PrometheusProvider(...))
    controller.start()      # returns at once; everything runs on threads
    ...
    controller.stop()

Every replica watches Rollouts, Deployments, AnalysisPolicies, ClusterAnalysisPolicies and
NotificationChannels into caches (so a new leader starts warm). Only the leader has jobs: when
it gains the Lease a job is added for every Rollout; when it loses it, all jobs are removed and
its writes are refused at once. Which Rollouts tick, and which tick early (a change of a
Rollout's spec or commands, or of what a tick reads of its Deployments), is
`canary.controller.wakes`: `Wakes.enqueue` is the one place a Rollout is enqueued.

Ticks read the Rollout and both Deployments from the caches (`canary.controller.cached`), never
older than the controller's own writes. The route objects are watched too
(`canary.controller.route_watch`): a hand edit of one is put back by the tick it wakes.
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from kubernetes import client

from canary.analysis.provider import MetricsProvider
from canary.controller.api import start_api
from canary.controller.cached import CachedKube
from canary.controller.commands import command_source
from canary.controller.event_sender import EventCounters, EventSender
from canary.controller.kinds import (
    ANALYSIS_POLICY,
    CLUSTER_ANALYSIS_POLICY,
    CONFIGMAP,
    DEPLOYMENT,
    NOTIFICATION_CHANNEL,
    ROLLOUT,
    ROLLOUT_COMMAND,
    SECRET,
    Kind,
)
from canary.controller.kube import Kube, drop_static_token_refresh, widen_connection_pool
from canary.controller.leader import LeaderElector, LeaseSettings
from canary.controller.metrics import ControllerMetrics, HealthServer
from canary.controller.policy_users import PolicyUsers
from canary.controller.reconcile import Reconciler
from canary.controller.refusals import QUEUED_EVENTS, Refusals
from canary.controller.route_watch import ROUTE_APIS, UNSERVED_RETRY, RouteWatch
from canary.controller.routing import ROUTE_RESYNC_SECONDS
from canary.controller.scheduling import TickScheduler
from canary.controller.secrets import ClusterSecrets
from canary.controller.shards import ShardedTicks, ShardSet, shard_of
from canary.controller.wakes import Wakes
from canary.controller.watches import Cache, Reflector, metadata_only
from canary.controller.workloads import ServiceSync
from canary.gates.api.serve import ApiServer
from canary.gates.destinations import DestinationPolicy
from canary.gates.secret_source import SecretsDir
from canary.gates.webhooks import WebhookCaller, new_client
from canary.notify import DirectorySecretSource, Notifier, NotifyConfig

log = logging.getLogger("canary.controller")


SPARE_CONNECTIONS = 4
"""Connections to the API server besides one a worker and one a watch."""
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


class Controller:
    def __init__(
        self,
        api_client: client.ApiClient,
        settings: ControllerSettings,
        *,
        provider: MetricsProvider,
        webhooks: WebhookCaller | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        if drop_static_token_refresh(api_client):
            log.debug("a static token: the client's per-request credential refresh is off")
        self.kube = Kube(api_client, timeout=settings.request_timeout)
        self.metrics = ControllerMetrics()
        self._leading = threading.Event()
        self.elector: LeaderElector | None = None
        self.shards: ShardSet | None = None  # --- sharding (canary.controller.shards) ---
        if settings.lease is not None and settings.shards > 1:
            lease = replace(settings.lease, identity=settings.identity)
            self.shards = ShardSet(self.kube, lease, settings.shards, on_change=self._reshard)
        elif settings.lease is not None:
            lease = replace(settings.lease, identity=settings.identity)
            self.elector = LeaderElector(
                self.kube, lease, on_started=self._lead, on_stopped=self._follow
            )
        writer = self.kube.guarded(self.shards.may_write if self.shards else self.is_leader)
        cluster_secrets = ClusterSecrets(self.kube)
        if webhooks is None:
            gate_secrets = (
                SecretsDir(settings.secrets_dir) if settings.secrets_dir else cluster_secrets
            )
            destinations = DestinationPolicy.of(allow=settings.webhook_allow)
            webhooks = WebhookCaller(
                client=new_client(destinations), secrets=gate_secrets, owns_client=True
            )
        self.webhooks = webhooks
        self.caches = {
            kind.kind: Cache(kind, metadata_only if kind in (CONFIGMAP, SECRET) else None)
            for kind in self._watched()
        }
        self.notifier: Notifier | None = None
        if settings.notify is not None:
            notify_secrets = (
                DirectorySecretSource(settings.secrets_dir)
                if settings.secrets_dir
                else cluster_secrets
            )
            self.notifier = Notifier(
                lambda namespace, name: self.refusals.channel(namespace, name),
                notify_secrets,
                settings.notify,
                refusal=lambda namespace, name: self.refusals.channel_refusal(namespace, name),
                unusable=lambda rollout, name, why: self.refusals.channel_unusable(
                    rollout, name, why
                ),
            )
        self.route_watch = RouteWatch(
            self.kube,
            list(settings.namespaces) or [None],
            settings.route_watch,
            acts_for=self._acts_for,
            wake=lambda key: self.wakes.enqueue(key, early=True, reason="route"),
            timeout_seconds=settings.watch_timeout,
            unserved_retry=settings.route_unserved_retry,
            counted=lambda kind, by: self.metrics.route_changes.labels(kind, by).inc(),
        )
        self.reads = CachedKube(
            writer,
            {kind.kind: self.caches[kind.kind] for kind in (ROLLOUT, DEPLOYMENT)},
            self._synced,
            echoes=self.route_watch.echoes,
            labelled={
                k.kind: self.caches[k.kind] for k in (CONFIGMAP, SECRET) if k.kind in self.caches
            },
        )
        self.events = EventSender(
            writer,
            acting=self._acting,
            counters=EventCounters(
                queue_full=self.metrics.event_queue_full.inc,
                failures=self.metrics.event_post_failures.inc,
            ),
        )
        self.metrics.event_queue.set_function(lambda: self.events.queued)
        # the Warning Events of refused policies and channels: a sender of their own, so that
        # a tenant's thousands of invalid objects never hold up the Rollouts' Events
        self.refusal_events = EventSender(
            writer,
            acting=self._acting,
            capacity=QUEUED_EVENTS,
            counters=EventCounters(failures=self.metrics.event_post_failures.inc),
        )
        self.refusals = Refusals(
            self.caches,
            self.refusal_events.send,
            self._acts_for_object,
            identity=settings.identity,
            clock=clock,
            dropped=self.metrics.event_queue_full.inc,
        ).listen()
        self.reconciler = Reconciler(
            kube=self.reads,
            provider=provider,
            webhooks=webhooks,
            metrics=self.metrics,
            identity=settings.identity,
            notifier=self.notifier,
            policies=lambda: self.refusals.policies(),
            restore_on_delete=settings.restore_on_delete,
            clock=clock,
            commands=command_source(self.caches[ROLLOUT_COMMAND.kind]),
            events=self.events,
            routes=ServiceSync(settings.route_resync, clock=lambda: clock().timestamp()),
            inline_queries=not settings.forbid_inline_queries,
            drift=self.route_watch.drift,
        )
        if self.shards is not None:
            self.scheduler: TickScheduler = ShardedTicks(
                self.shards.reported_key,  # (not owns_key: a hold may lapse between rounds)
                self._tick,
                workers=settings.workers,
                on_lateness=self.metrics.late,
                on_wake=self.metrics.woken,
            )
        else:
            self.scheduler = TickScheduler(
                self._tick,
                workers=settings.workers,
                on_lateness=self.metrics.late,
                on_wake=self.metrics.woken,
            )
        self.metrics.workers_busy.set_function(lambda: self.scheduler.busy)
        self.reflectors = [
            Reflector(
                self.kube,
                self.caches[kind.kind],
                namespace,
                timeout_seconds=settings.watch_timeout,
                on_relist=self.metrics.watch_relists.labels(kind.plural).inc,
            )
            for kind in self._watched()
            for namespace in self._namespaces(kind)
        ]
        # a connection for each worker, each watch, and a few for the Leases, the event
        # sender and the API (canary.controller.kube.widen_connection_pool)
        watches = len(self.reflectors) + len(self.route_watch.reflectors)
        widen_connection_pool(api_client, settings.workers + watches + SPARE_CONNECTIONS)
        self.wakes = Wakes(
            lambda: self.scheduler,
            self.caches,
            leading=self.is_leader,
            forget=self._forget,
            own_write=self.reads.wrote,
        )
        self.wakes.listen()
        PolicyUsers(self.caches, self.wakes, leading=self.is_leader).listen()
        self.health: HealthServer | None = None
        self.api: ApiServer | None = None
        self._clock = clock
        self._started = False

    # --- life cycle ----------------------------------------------------------------------------

    def start(self) -> Controller:
        for reflector in self.reflectors:
            reflector.start()
        self.route_watch.start()
        self.scheduler.start()
        self.events.start()
        self.refusal_events.start()
        address = self.settings.metrics_address
        if address is not None:
            self.health = HealthServer(self.metrics, self.healthy, self.ready, *address).start()
            log.info("metrics, healthz and readyz on http://%s", self.health.address)
        settings = self.settings
        if settings.api_address is not None and settings.api_tokens is not None:
            self.api = start_api(
                self.kube,
                settings.namespaces,
                settings.api_tokens,
                settings.api_address,
                identity=settings.identity,
                clock=self._clock,
            )
            log.info("the API on %s", self.api.url)
        if self.elector is not None:
            self.elector.start()
        elif self.shards is not None:
            self.shards.start()
        else:
            self._lead()
        self._started = True
        return self

    def stop(self, release_lease: bool = True) -> None:
        """Stop acting at once, then stop watching; ``release_lease`` gives the Lease up."""
        if self.elector is not None:
            self.elector.stop(release=release_lease)
        if self.shards is not None:
            self.shards.stop(release=release_lease)
        self._follow()
        for reflector in self.reflectors:
            reflector.signal_stop()
        self.route_watch.signal_stop()
        self.scheduler.shutdown(wait=True)
        self.events.stop()  # (what it still holds is in the statuses' outboxes)
        self.refusal_events.stop()
        for reflector in self.reflectors:
            reflector.stop()
        self.route_watch.stop()
        if self.health is not None:
            self.health.stop()
        if self.api is not None:
            self.api.stop()
        if self.notifier is not None:
            self.notifier.close()
        self.webhooks.close()

    def wait_synced(self, timeout: float = 30.0) -> bool:
        return all(r.synced.wait(timeout) for r in self.reflectors)

    def is_leader(self) -> bool:
        """This replica acts: it leads, or (sharded) holds at least one shard."""
        if self.shards is not None:
            return self.shards.active()
        if self.elector is None:
            return self._leading.is_set()
        return self.elector.is_leader()

    def healthy(self) -> tuple[bool, str]:
        watching = [*self.reflectors, *self.route_watch.reflectors]
        dead = [r.kind.plural for r in watching if not r.alive]
        if dead:
            return False, f"watches stopped: {', '.join(dead)}"
        if not self.scheduler.running:
            return False, "the scheduler is not running"
        if self.elector is not None and not self.elector.alive and self._started:
            return False, "leader election stopped"
        if self.shards is not None and not self.shards.alive and self._started:
            return False, "the shards' leases stopped"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        waiting = [r.kind.plural for r in self.reflectors if not r.synced.is_set()]
        if waiting:
            return False, f"caches not synced yet: {', '.join(sorted(set(waiting)))}"
        return True, "leader" if self.is_leader() else "standby"

    # --- what is watched -----------------------------------------------------------------------

    @staticmethod
    def _watched() -> tuple[Kind, ...]:
        return (
            ROLLOUT,
            DEPLOYMENT,
            CONFIGMAP,
            SECRET,
            ANALYSIS_POLICY,
            CLUSTER_ANALYSIS_POLICY,
            NOTIFICATION_CHANNEL,
            ROLLOUT_COMMAND,
        )

    def _namespaces(self, kind: Kind) -> list[str | None]:
        if not kind.namespaced or not self.settings.namespaces:
            return [None]
        return list(self.settings.namespaces)

    def _synced(self, kind: Kind, namespace: str) -> bool:
        """The cache of ``kind`` holds a full list of ``namespace``."""
        covering = [
            r for r in self.reflectors if r.kind == kind and r.namespace in (None, namespace)
        ]
        return bool(covering) and all(r.synced.is_set() for r in covering)

    # --- leadership ----------------------------------------------------------------------------

    def _lead(self) -> None:
        self.reconciler.reset()
        self._leading.set()
        self.metrics.leader.set(1)
        self.wakes.enqueue_all()
        self.refusals.tell_everything()

    def _follow(self) -> None:
        self._leading.clear()
        self.metrics.leader.set(0)
        self.scheduler.remove_all()

    def _acts_for(self, key: str) -> bool:
        """This replica acts for Rollout ``key`` (it leads, or holds its shard), which exists."""
        if not self.is_leader():
            return False
        if self.shards is not None and not self.shards.reported_key(key):
            return False
        namespace, _, name = key.partition("/")
        return self.caches[ROLLOUT.kind].get(namespace, name) is not None

    def _tick(self, key: str, early: bool) -> float:
        if self.shards is not None and not self.shards.owns_key(key):
            if not self.shards.reported_key(key):
                self.scheduler.remove(key)  # a job added as its shard was being lost
            return 1.0  # (a hold that lapsed between two rounds: the next one may renew it)
        if not self.is_leader():
            return 1.0
        with self._acting(key):
            return self.reconciler.tick(key, early)

    # --- sharding (canary.controller.shards) ---------------------------------------------------

    def _acting(self, key: str) -> AbstractContextManager[None]:
        return self.shards.acting(key) if self.shards is not None else nullcontext()

    def _reshard(self, gained: set[int], lost: set[int]) -> None:
        """Jobs for the Rollouts of the shards gained (their first tick reads the API server),
        none for those of the shards lost."""
        assert self.shards is not None
        count = self.shards.shards
        for namespace, name in self.caches[ROLLOUT.kind].keys():  # noqa: SIM118 (a Cache)
            shard, key = shard_of(namespace, name, count), f"{namespace}/{name}"
            if shard in lost:
                self.scheduler.remove(key)
            elif shard in gained:
                self.reconciler.forget(key)
                self.scheduler.ensure(key)
        if gained:
            self.refusals.tell_everything()
        held = len(self.shards.owned())
        self.metrics.leader.set(1 if held else 0)
        self.metrics.shards_held.set(held)

    def _forget(self, namespace: str, name: str) -> None:
        """The Rollout was deleted."""
        self.metrics.forget(namespace, name)
        self.reconciler.forget(f"{namespace}/{name}")

    # --- lookups from the caches ---------------------------------------------------------------

    def _acts_for_object(self, key: str) -> bool:
        """This replica tells of the refused object ``key`` (`canary.controller.refusals.
        object_key`): it leads, or holds the key's shard."""
        if not self.is_leader():
            return False
        return self.shards is None or self.shards.reported_key(key)
