"""The controller's clients of the world outside the cluster: the gate webhooks' caller and the
notifier, each with its secrets from a folder (``--secrets-dir``) or from the cluster's
Secrets."""

from __future__ import annotations

from collections.abc import Callable

from canary.controller.refusals import Refusals
from canary.controller.secrets import ClusterSecrets
from canary.controller.settings import ControllerSettings
from canary.gates.destinations import DestinationPolicy
from canary.gates.secret_source import SecretsDir
from canary.gates.webhooks import WebhookCaller, new_client
from canary.notify import DirectorySecretSource, Notifier


def webhook_caller(settings: ControllerSettings, cluster_secrets: ClusterSecrets) -> WebhookCaller:
    """Calls the gate webhooks the destination policy allows (``webhook_allow`` widens it)."""
    secrets = SecretsDir(settings.secrets_dir) if settings.secrets_dir else cluster_secrets
    destinations = DestinationPolicy.of(allow=settings.webhook_allow)
    return WebhookCaller(client=new_client(destinations), secrets=secrets, owns_client=True)


def notifier(
    settings: ControllerSettings,
    cluster_secrets: ClusterSecrets,
    refusals: Callable[[], Refusals],
) -> Notifier | None:
    """The notifier, its channels looked up (and refused, and told unusable) by ``refusals``;
    None when notifications are off (Kubernetes Events are still recorded)."""
    if settings.notify is None:
        return None
    secrets = (
        DirectorySecretSource(settings.secrets_dir) if settings.secrets_dir else cluster_secrets
    )
    return Notifier(
        lambda namespace, name: refusals().channel(namespace, name),
        secrets,
        settings.notify,
        refusal=lambda namespace, name: refusals().channel_refusal(namespace, name),
        unusable=lambda rollout, name, why: refusals().channel_unusable(rollout, name, why),
    )
