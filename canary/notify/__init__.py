"""Notifications: Slack (slack-sdk), generic webhooks and Kubernetes Events.

The shells call `Notifier.notify(rollout, status, events, now)` after each engine step; the
messages are sent from a worker thread, so a chat outage delays messages, never a rollout.
"""

from canary.notify.config import NotifyConfig
from canary.notify.kube_events import kube_event
from canary.notify.notice import Notice, build_notice, check_summary
from canary.notify.notifier import ChannelLookup, Notifier, static_channels
from canary.notify.queue import Delivery, DeliveryStats, Dispatcher, RetryLaterError
from canary.notify.secrets import (
    DirectorySecretSource,
    MappingSecretSource,
    SecretMissingError,
    SecretSource,
)
from canary.notify.webhook import sign, verify

__all__ = [
    "ChannelLookup",
    "Delivery",
    "DeliveryStats",
    "DirectorySecretSource",
    "Dispatcher",
    "MappingSecretSource",
    "Notice",
    "Notifier",
    "NotifyConfig",
    "RetryLaterError",
    "SecretMissingError",
    "SecretSource",
    "build_notice",
    "check_summary",
    "kube_event",
    "sign",
    "static_channels",
    "verify",
]
