"""The entry point: `Notifier.notify(rollout, status, events, now)` after each engine step.

It turns the step's events into notices for the Rollout's channels and queues them; a worker
thread sends them (see `canary.notify.queue`). ``notify`` does no I/O and never raises, so
chat never slows or breaks a rollout.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Protocol

from canary.engine.actions import Event
from canary.gates.destinations import DestinationPolicy
from canary.model.notification import NotificationChannel, NotificationEvent
from canary.model.rollout import Rollout
from canary.model.status import RolloutStatus
from canary.notify.config import NotifyConfig
from canary.notify.notice import TimelinePoint, build_notice
from canary.notify.queue import Delivery, DeliveryStats, Dispatcher, RetryLaterError
from canary.notify.secrets import OnceLogger, SecretMissingError, SecretSource
from canary.notify.slack import SlackBotSender, SlackWebhookSender
from canary.notify.store import MessageStore
from canary.notify.webhook import WebhookSender

log = logging.getLogger(__name__)

ChannelLookup = Callable[[str, str], NotificationChannel | None]
"""(namespace, name) -> the NotificationChannel, or None. Must answer from memory (a cache)."""
ChannelRefusal = Callable[[str, str], str | None]
"""(namespace, name) -> why the channel of that name was refused (the model's problems), None
when there is no such channel at all. From memory too."""
Unusable = Callable[[Rollout, str, str], None]
"""(rollout, name of a channel it names, ``path: message``): that channel cannot be used."""

_MAX_TIMELINE = 400
_MAX_TIMELINES = 500
_MAX_SEEN = 5000


class _Sender(Protocol):
    def send(self, delivery: Delivery) -> None: ...


def static_channels(channels: Iterable[NotificationChannel]) -> ChannelLookup:
    """A lookup over a fixed list; a channel without a namespace serves every namespace."""
    by_key = {(c.metadata.namespace, c.metadata.name): c for c in channels}

    def lookup(namespace: str, name: str) -> NotificationChannel | None:
        return by_key.get((namespace, name)) or by_key.get((None, name))

    return lookup


class Notifier:
    """Queues the notifications of engine steps and sends them from a worker thread."""

    def __init__(
        self,
        channels: ChannelLookup | Iterable[NotificationChannel],
        secrets: SecretSource,
        config: NotifyConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        start: bool = True,
        refusal: ChannelRefusal = lambda namespace, name: None,
        unusable: Unusable = lambda rollout, name, message: None,
    ) -> None:
        """``refusal`` says why a channel that is not found was refused; ``unusable`` is told
        of each channel a rollout names that cannot be used (the controller records a Warning
        Event on the Rollout)."""
        self.config = config or NotifyConfig()
        self._refusal = refusal
        self._unusable = unusable
        self._lookup = channels if callable(channels) else static_channels(channels)
        self._secrets = secrets
        self._clock = clock
        state = self.config.state_dir
        self.store = MessageStore(state / "slack-messages.json" if state else None)
        self.dispatcher = Dispatcher(
            self._send, self.config, clock=clock, path=state / "queue.json" if state else None
        )
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._timelines: OrderedDict[str, list[TimelinePoint]] = OrderedDict()
        self._senders: dict[str, _Sender] = {}
        self._once = OnceLogger()
        if start:
            self.dispatcher.start()

    # --- the rollout's side -----------------------------------------------------------------

    def notify(
        self, rollout: Rollout, status: RolloutStatus, events: Sequence[Event], now: datetime
    ) -> int:
        """Queue the notifications of one step's ``events``; returns how many were queued.

        Returns at once: nothing here touches the network or the disk, and nothing raises.
        """
        try:
            with self._lock:
                return self._notify(rollout, status, events, now)
        except Exception:
            log.exception("notifications of %s could not be queued", rollout.key)
            return 0

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued was sent or dropped (tests, shutdown)."""
        return self.dispatcher.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        self.dispatcher.close(timeout)

    @property
    def stats(self) -> DeliveryStats:
        return self.dispatcher.stats

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _notify(
        self, rollout: Rollout, status: RolloutStatus, events: Sequence[Event], now: datetime
    ) -> int:
        timeline = self._record(rollout, status, events, now)
        spec = rollout.spec.notifications
        wanted = set(spec.events)
        namespace = rollout.metadata.namespace or "default"
        queued = 0
        for event in events:
            if event.notification is None or event.notification not in wanted:
                continue
            notice = build_notice(
                rollout, status, event, now, timeline=timeline, link=self._link(rollout)
            )
            for index, ref in enumerate(spec.channels):
                channel = self._lookup(namespace, ref.name)
                if channel is None:
                    self._missing(rollout, namespace, index, ref.name)
                    continue
                self._once.clear(f"channel:{namespace}/{ref.name}")
                delivery = Delivery(
                    id=uuid.uuid4().hex, channel=channel, notice=notice, queued_at=self._clock()
                )
                if self._repeat(f"{delivery.destination}|{notice.dedupe_key()}"):
                    continue
                self.dispatcher.submit(delivery)
                queued += 1
        return queued

    def _missing(self, rollout: Rollout, namespace: str, index: int, name: str) -> None:
        refusal = self._refusal(namespace, name)
        which = f"is invalid ({refusal})" if refusal is not None else "does not exist"
        message = (
            f"NotificationChannel '{name}' {which}: the notifications of this Rollout to it are "
            "not sent"
        )
        path = f"spec.notifications.channels[{index}].name"
        message = f"{path}: {message}"
        self._once.error(f"channel:{namespace}/{name}", f"rollout {rollout.key}: {message}")
        self._unusable(rollout, name, message)

    def _record(
        self, rollout: Rollout, status: RolloutStatus, events: Sequence[Event], now: datetime
    ) -> list[TimelinePoint]:
        """Keep the weight over time of the revision's run, for the picture at the end."""
        if status.canary_revision is None:
            return []
        started = status.started_at.isoformat() if status.started_at else "-"
        key = f"{rollout.key}|{status.canary_revision}|{started}"
        points = self._timelines.setdefault(key, [])
        self._timelines.move_to_end(key)
        while len(self._timelines) > _MAX_TIMELINES:
            self._timelines.popitem(last=False)
        kinds = {e.notification for e in events}
        failed = bool(kinds & {NotificationEvent.VERDICT, NotificationEvent.ROLLED_BACK})
        last = points[-1] if points else None
        if (
            last is None
            or failed
            or last.weight != status.canary_weight
            or last.phase is not status.phase
        ):
            points.append(
                TimelinePoint(
                    time=now, weight=status.canary_weight, phase=status.phase, failed=failed
                )
            )
            del points[:-_MAX_TIMELINE]
        final = kinds & {NotificationEvent.PROMOTED, NotificationEvent.FAILED}
        return list(points) if final else []

    def _repeat(self, key: str) -> bool:
        if key in self._seen:
            self._seen.move_to_end(key)
            return True
        self._seen[key] = None
        while len(self._seen) > _MAX_SEEN:
            self._seen.popitem(last=False)
        return False

    def _link(self, rollout: Rollout) -> str | None:
        return self.config.rollout_url(
            rollout.metadata.namespace or "default", rollout.metadata.name
        )

    # --- the worker's side --------------------------------------------------------------------

    def _send(self, delivery: Delivery) -> None:
        self._sender(delivery).send(delivery)

    def _sender(self, delivery: Delivery) -> _Sender:
        spec = delivery.channel.spec
        namespace = delivery.channel.metadata.namespace or delivery.notice.namespace
        try:
            if spec.slack is not None and spec.slack.token_secret_ref is not None:
                token = self._secrets.read(spec.slack.token_secret_ref, namespace)
                cache_key = f"{delivery.destination}|bot|{spec.slack.channel}|{token}"
                if cache_key not in self._senders:
                    self._senders[cache_key] = SlackBotSender(
                        token, spec.slack.channel or "", self.config, self.store
                    )
            elif spec.slack is not None and spec.slack.webhook_url_secret_ref is not None:
                url = self._secrets.read(spec.slack.webhook_url_secret_ref, namespace)
                cache_key = f"{delivery.destination}|slack-webhook|{url}"
                if cache_key not in self._senders:
                    self._senders[cache_key] = SlackWebhookSender(url, self.config)
            elif spec.webhook is not None:
                ref = spec.webhook.secret_ref
                secret = self._secrets.read(ref, namespace) if ref is not None else None
                cache_key = f"{delivery.destination}|webhook|{spec.webhook.url}|{secret}"
                if cache_key not in self._senders:
                    self._senders[cache_key] = WebhookSender(
                        spec.webhook.url,
                        secret,
                        timeout=self.config.http_timeout,
                        destinations=DestinationPolicy.of(allow=self.config.webhook_allow),
                    )
            else:  # the model refuses such a channel; kept for type narrowing
                raise RetryLaterError(f"channel {delivery.destination} has no kind")
        except SecretMissingError as exc:
            self._once.error(
                f"secret:{delivery.destination}",
                f"NotificationChannel {delivery.destination}: {exc}; its messages wait "
                f"(retried for up to {self.config.retry_window:.0f}s)",
            )
            raise RetryLaterError(str(exc)) from exc
        self._once.clear(f"secret:{delivery.destination}")
        return self._senders[cache_key]
