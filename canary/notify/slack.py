"""Slack, through slack-sdk: a bot token (one message per revision, updated, with a thread) or
an incoming webhook (one message per event: webhooks can neither update nor thread).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk import WebClient, WebhookClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import (
    ConnectionErrorRetryHandler,
    FixedValueRetryIntervalCalculator,
    RateLimitErrorRetryHandler,
    RetryHandler,
)

from canary.model.notification import NotificationEvent
from canary.notify.config import NotifyConfig
from canary.notify.plot import timeline_png
from canary.notify.queue import Delivery, RetryLaterError
from canary.notify.slack_blocks import (
    SlackMessage,
    event_message,
    parent_message,
    reply_message,
)
from canary.notify.store import MessageStore, SlackThread

log = logging.getLogger(__name__)

# Parts of one delivery, recorded as they succeed so a retry never posts anything twice.
_PARENT = "parent"
_NEW_PARENT = "new-parent"
_REPLY = "reply"
_FILE = "file"
_GONE = frozenset({"message_not_found", "cant_update_message", "thread_not_found"})


def retry_handlers(config: NotifyConfig) -> list[RetryHandler]:
    """slack-sdk's own in-call retries: 429 after Retry-After, and connection errors."""
    return [
        RateLimitErrorRetryHandler(max_retry_count=config.rate_limit_retries),
        ConnectionErrorRetryHandler(
            max_retry_count=config.connection_retries,
            interval_calculator=FixedValueRetryIntervalCalculator(config.connection_retry_interval),
        ),
    ]


class SlackBotSender:
    """Bot-token mode: chat.postMessage, chat.update, thread replies, files_upload_v2."""

    def __init__(self, token: str, channel: str, config: NotifyConfig, store: MessageStore) -> None:
        self.channel = channel
        self.config = config
        self.store = store
        self.client = WebClient(
            token=token,
            base_url=config.slack_base_url,
            timeout=int(max(1, config.http_timeout)),
            retry_handlers=retry_handlers(config),
        )

    def send(self, delivery: Delivery) -> None:
        try:
            self._send(delivery)
        except SlackApiError as exc:
            raise _retry_error(exc) from exc

    def _send(self, delivery: Delivery) -> None:
        notice = delivery.notice
        key = f"{delivery.destination}|{notice.key}|{notice.revision or '-'}"
        done = delivery.done
        if _PARENT not in done:
            self._post_or_update_parent(key, delivery)
        thread = self.store.get(key)
        if thread is None:  # the store lost it (a file removed): the next try posts anew
            done.remove(_PARENT)
            raise RetryLaterError(f"no parent message recorded for {key}")
        new_parent = _NEW_PARENT in done
        if _REPLY not in done and not (new_parent and notice.event is NotificationEvent.STARTED):
            self._post(reply_message(notice), channel=thread.channel_id, thread_ts=thread.ts)
        _mark(done, _REPLY)
        if notice.final:
            if _FILE not in done and self.config.plot:
                self._upload_timeline(delivery, thread)
            _mark(done, _FILE)
            self.store.put(key, thread.model_copy(update={"final": True}))

    def _post_or_update_parent(self, key: str, delivery: Delivery) -> None:
        message = parent_message(delivery.notice)
        thread = self.store.get(key)
        if thread is not None and not thread.final:
            try:
                self.client.chat_update(
                    channel=thread.channel_id,
                    ts=thread.ts,
                    text=message.text,
                    blocks=message.blocks,
                    attachments=message.attachments,
                )
                _mark(delivery.done, _PARENT)
                return
            except SlackApiError as exc:
                if exc.response.get("error") not in _GONE:
                    raise
                log.warning("Slack parent message of %s is gone: posting a new one", key)
        response = self._post(message, channel=self.channel)
        self.store.put(
            key, SlackThread(channel_id=str(response["channel"]), ts=str(response["ts"]))
        )
        _mark(delivery.done, _PARENT, _NEW_PARENT)

    def _post(self, message: SlackMessage, **where: Any) -> dict[str, Any]:
        response = self.client.chat_postMessage(
            text=message.text, blocks=message.blocks, attachments=message.attachments, **where
        )
        return dict(response.data) if isinstance(response.data, dict) else {}

    def _upload_timeline(self, delivery: Delivery, thread: SlackThread) -> None:
        notice = delivery.notice
        try:
            png = timeline_png(notice)
        except Exception:  # a picture is a nicety: never hold the outcome for it
            log.exception("cannot draw the timeline of %s", notice.key)
            return
        if not png:
            return
        self.client.files_upload_v2(
            channel=thread.channel_id,
            thread_ts=thread.ts,
            file=png,
            filename=f"{notice.name}-{notice.revision or 'revision'}-timeline.png",
            title=f"{notice.name} {notice.revision or ''}: canary weight over time",
        )


class SlackWebhookSender:
    """Incoming-webhook mode: one message (the same blocks) per event."""

    def __init__(self, url: str, config: NotifyConfig) -> None:
        self.client = WebhookClient(
            url=url, timeout=int(max(1, config.http_timeout)), retry_handlers=retry_handlers(config)
        )

    def send(self, delivery: Delivery) -> None:
        message = event_message(delivery.notice)
        response = self.client.send(
            text=message.text, blocks=message.blocks, attachments=message.attachments
        )
        if response.status_code != 200:
            raise RetryLaterError(
                f"Slack webhook answered {response.status_code}: {response.body[:200]}",
                after=_retry_after(response.headers),
            )


def _mark(done: list[str], *parts: str) -> None:
    done.extend(p for p in parts if p not in done)


def _retry_error(exc: SlackApiError) -> Exception:
    status = getattr(exc.response, "status_code", None)
    error = exc.response.get("error") if exc.response is not None else None
    message = f"Slack answered {status}: {error or exc}"
    if status == 429:
        return RetryLaterError(message, after=_retry_after(exc.response.headers))
    return RetryLaterError(message)


def _retry_after(headers: Any) -> float | None:
    for name, value in dict(headers or {}).items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) and value else value
            try:
                return float(raw)
            except (TypeError, ValueError):
                return None
    return None
