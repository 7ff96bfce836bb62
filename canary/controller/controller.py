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

Its parts: the settings (`canary.controller.settings`), the caches and their watches
(`canary.controller.watch_set`), whether it acts and for which Rollouts
(`canary.controller.leadership`), the webhook caller and the notifier
(`canary.controller.outbound`), the ticks (`canary.controller.reconcile`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from kubernetes import client

from canary.analysis.provider import MetricsProvider
from canary.controller import outbound
from canary.controller.api import start_api
from canary.controller.cached import CachedKube
from canary.controller.commands import command_source
from canary.controller.event_sender import EventCounters, EventSender
from canary.controller.kinds import CONFIGMAP, DEPLOYMENT, ROLLOUT, ROLLOUT_COMMAND, SECRET, Kind
from canary.controller.kube import Kube, drop_static_token_refresh, widen_connection_pool
from canary.controller.leader import LeaderElector
from canary.controller.leadership import Leadership
from canary.controller.metrics import ControllerMetrics, HealthServer
from canary.controller.policy_users import PolicyUsers
from canary.controller.reconcile import Reconciler
from canary.controller.refusals import QUEUED_EVENTS, Refusals
from canary.controller.route_watch import RouteWatch
from canary.controller.scheduling import TickScheduler
from canary.controller.secrets import ClusterSecrets
from canary.controller.settings import DEFAULT_WORKERS, ControllerSettings, default_identity
from canary.controller.sharded_ticks import ShardedTicks
from canary.controller.shards import ShardSet, shard_of
from canary.controller.wakes import Wakes
from canary.controller.watch_set import WatchSet
from canary.controller.watches import Reflector
from canary.controller.workloads import ServiceSync
from canary.gates.api.serve import ApiServer
from canary.gates.webhooks import WebhookCaller
from canary.notify import Notifier

# (the settings were defined here before the split: their names are still found here)
__all__ = ["DEFAULT_WORKERS", "Controller", "ControllerSettings", "default_identity"]

log = logging.getLogger("canary.controller")


SPARE_CONNECTIONS = 4
"""Connections to the API server besides one a worker and one a watch."""


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
        self.leadership = Leadership(
            self.kube,
            settings,
            on_lead=self._lead,
            on_follow=self._follow,
            on_reshard=self._reshard,
        )
        self.elector: LeaderElector | None = self.leadership.elector
        self.shards: ShardSet | None = self.leadership.shards
        writer = self.kube.guarded(self.leadership.write_guard())
        cluster_secrets = ClusterSecrets(self.kube)
        if webhooks is None:
            webhooks = outbound.webhook_caller(settings, cluster_secrets)
        self.webhooks = webhooks
        self.watches = WatchSet(
            self.kube,
            settings.namespaces,
            timeout_seconds=settings.watch_timeout,
            on_relist=lambda kind: self.metrics.watch_relists.labels(kind.plural).inc,
        )
        self.caches = self.watches.caches
        self.notifier: Notifier | None = outbound.notifier(
            settings, cluster_secrets, lambda: self.refusals
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
            acting=self.leadership.acting,
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
            acting=self.leadership.acting,
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
            webhooks=self.webhooks,
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
        self.scheduler = self._scheduler()
        self.metrics.workers_busy.set_function(lambda: self.scheduler.busy)
        self.reflectors = self.watches.reflectors
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

    def _scheduler(self) -> TickScheduler:
        """A sharded replica's jobs are only those of the shards it last reported held."""
        settings = self.settings
        if self.shards is not None:
            return ShardedTicks(
                self.shards.reported_key,  # (not owns_key: a hold may lapse between rounds)
                self._tick,
                workers=settings.workers,
                on_lateness=self.metrics.late,
                on_wake=self.metrics.woken,
            )
        return TickScheduler(
            self._tick,
            workers=settings.workers,
            on_lateness=self.metrics.late,
            on_wake=self.metrics.woken,
        )

    # --- life cycle ----------------------------------------------------------------------------

    def start(self) -> Controller:
        for reflector in self._watching():
            reflector.start()
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
        self.leadership.start()
        self._started = True
        return self

    def stop(self, release_lease: bool = True) -> None:
        """Stop acting at once, then stop watching; ``release_lease`` gives the Lease up."""
        self.leadership.stop(release_lease)
        self._follow()
        for reflector in self._watching():
            reflector.signal_stop()
        self.scheduler.shutdown(wait=True)
        self.events.stop()  # (what it still holds is in the statuses' outboxes)
        self.refusal_events.stop()
        for reflector in self._watching():
            reflector.stop()
        if self.health is not None:
            self.health.stop()
        if self.api is not None:
            self.api.stop()
        if self.notifier is not None:
            self.notifier.close()
        self.webhooks.close()

    def wait_synced(self, timeout: float = 30.0) -> bool:
        return self.watches.wait_synced(timeout)

    def is_leader(self) -> bool:
        """This replica acts: it leads, or (sharded) holds at least one shard."""
        return self.leadership.is_leader()

    def healthy(self) -> tuple[bool, str]:
        dead = [r.kind.plural for r in self._watching() if not r.alive]
        if dead:
            return False, f"watches stopped: {', '.join(dead)}"
        if not self.scheduler.running:
            return False, "the scheduler is not running"
        stopped = self.leadership.stopped()
        if stopped and self._started:
            return False, stopped
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        waiting = self.watches.not_synced()
        if waiting:
            return False, f"caches not synced yet: {', '.join(waiting)}"
        return True, "leader" if self.is_leader() else "standby"

    def _watching(self) -> list[Reflector]:
        """Every watch of this replica: the caches' and the route objects'."""
        return [*self.reflectors, *self.route_watch.reflectors]

    def _synced(self, kind: Kind, namespace: str) -> bool:
        """The cache of ``kind`` holds a full list of ``namespace``."""
        return self.watches.synced(kind, namespace)

    # --- leadership ----------------------------------------------------------------------------

    def _lead(self) -> None:
        self.reconciler.reset()
        self.leadership.mark(leading=True)
        self.metrics.leader.set(1)
        self.wakes.enqueue_all()
        self.refusals.tell_everything()

    def _follow(self) -> None:
        self.leadership.mark(leading=False)
        self.metrics.leader.set(0)
        self.scheduler.remove_all()

    def _acts_for(self, key: str) -> bool:
        """This replica acts for Rollout ``key`` (it leads, or holds its shard), which exists."""
        if not self.is_leader() or not self.leadership.reported(key):
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
        with self.leadership.acting(key):
            return self.reconciler.tick(key, early)

    # --- sharding (canary.controller.shards) ---------------------------------------------------

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

    def _acts_for_object(self, key: str) -> bool:
        """This replica tells of the refused object ``key`` (`canary.controller.refusals.
        object_key`): it leads, or holds the key's shard."""
        return self.is_leader() and self.leadership.reported(key)
