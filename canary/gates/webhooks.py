"""The shells' entry point to outgoing webhooks.

A tick in any shell (the local runner, the controller) does::

    needs = plan(rollout, status, workload)
    answers = webhooks.ask(rollout, status, needs.webhooks, now)   # gating hooks
    result = step(rollout, status, Observations(..., gates=answers), now)
    for action in result.actions:
        if isinstance(action, CallWebhook):
            webhooks.fire(action, rollout, result.status, now)      # informative hooks

`ask` never raises and always returns one answer per webhook asked (closed, with the reason,
when anything went wrong); `fire` never raises and returns what happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType

import httpx

from canary.engine.actions import CallWebhook
from canary.engine.observations import GateAnswer
from canary.gates.caller import (
    DEFAULT_BACKOFF,
    DEFAULT_DEADLINE_SECONDS,
    USER_AGENT,
    Backoff,
    Delivery,
    Sleep,
    call_gates,
    deliver,
)
from canary.gates.destinations import DestinationPolicy, PolicyTransport
from canary.gates.payload import build_payload
from canary.gates.secret_source import NoSecrets, SecretsDir, SecretSource
from canary.model.gates import Webhook
from canary.model.rollout import Rollout
from canary.model.status import RolloutStatus

logger = logging.getLogger("canary.gates")


def new_client(destinations: DestinationPolicy | None = None) -> httpx.Client:
    """An HTTP client for webhooks: redirects are not followed (a 3xx is a no), TLS verified,
    and each destination checked by ``destinations`` (default: the strict policy of
    canary.gates.destinations)."""
    policy = destinations if destinations is not None else DestinationPolicy()
    return httpx.Client(
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
        transport=PolicyTransport(policy),
    )


def fire(
    action: CallWebhook,
    rollout: Rollout,
    status: RolloutStatus | None,
    secrets: SecretSource,
    client: httpx.Client,
    now: datetime,
    *,
    sleep: Sleep = time.sleep,
    backoff: Backoff = DEFAULT_BACKOFF,
    deadline_seconds: float | None = None,
) -> Delivery:
    """Call an informative webhook (post-rollout, event) for ``action``; never raises.

    ``status`` should be the status after the step that emitted the action, so the payload
    shows the outcome (phase Succeeded or Failed for post-rollout). Failures are logged and
    returned; they change nothing in the rollout.
    """
    try:
        hook = next((w for w in rollout.spec.gates.webhooks if w.name == action.name), None)
        if hook is None:
            delivery = Delivery(
                name=action.name,
                type=action.type,
                ok=False,
                message=f"not called: no webhook named '{action.name}' in spec.gates.webhooks",
            )
        else:
            payload = build_payload(rollout, status, hook, now=now, reason=action.reason)
            deadline = None if deadline_seconds is None else time.monotonic() + deadline_seconds
            delivery = deliver(
                hook, payload, secrets, client, now, sleep=sleep, backoff=backoff, deadline=deadline
            )
    except Exception as exc:  # never let an informative hook break a tick
        logger.exception("webhook %s: unexpected error", action.name)
        delivery = Delivery(
            name=action.name,
            type=action.type,
            ok=False,
            message=f"not called: unexpected error: {type(exc).__name__}: {exc}",
        )
    if delivery.ok:
        logger.info(
            "webhook %s (%s, %s) delivered: %s",
            action.name,
            action.type.value,
            action.reason,
            delivery.message,
        )
    else:
        logger.warning(
            "webhook %s (%s, %s) failed: %s",
            action.name,
            action.type.value,
            action.reason,
            delivery.message,
        )
    return delivery


def fire_all(
    actions: Sequence[CallWebhook],
    rollout: Rollout,
    status: RolloutStatus | None,
    secrets: SecretSource,
    client: httpx.Client,
    now: datetime,
    *,
    sleep: Sleep = time.sleep,
    backoff: Backoff = DEFAULT_BACKOFF,
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
    max_workers: int = 8,
) -> list[Delivery]:
    """`fire` each action concurrently, waiting for all; results in the actions' order."""
    if not actions:
        return []
    workers = max(1, min(max_workers, len(actions)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="canary-hook") as pool:
        futures = [
            pool.submit(
                fire,
                action,
                rollout,
                status,
                secrets,
                client,
                now,
                sleep=sleep,
                backoff=backoff,
                deadline_seconds=deadline_seconds,
            )
            for action in actions
        ]
        return [f.result() for f in futures]


@dataclass
class WebhookCaller:
    """Everything a shell needs to call webhooks: the HTTP client, the secrets, the policy.

    Use `WebhookCaller.create(secrets_dir)` for one that owns its client (close it, or use
    it as a context manager), or build one around a client of your own.
    """

    client: httpx.Client
    secrets: SecretSource = field(default_factory=NoSecrets)
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS
    backoff: Backoff = DEFAULT_BACKOFF
    sleep: Sleep = time.sleep
    owns_client: bool = False

    @classmethod
    def create(
        cls,
        secrets_dir: Path | str | None = None,
        *,
        deadline_seconds: float | None = None,
        destinations: DestinationPolicy | None = None,
    ) -> WebhookCaller:
        """A caller with its own client; secrets from ``secrets_dir`` (``<dir>/<name>/<key>``)
        or none (webhooks with a secretRef then stay closed, saying why); ``destinations``
        as for `new_client`."""
        secrets: SecretSource = SecretsDir(secrets_dir) if secrets_dir is not None else NoSecrets()
        return cls(
            client=new_client(destinations),
            secrets=secrets,
            deadline_seconds=deadline_seconds or DEFAULT_DEADLINE_SECONDS,
            owns_client=True,
        )

    def ask(
        self,
        rollout: Rollout,
        status: RolloutStatus | None,
        webhooks: Sequence[Webhook],
        now: datetime,
    ) -> list[GateAnswer]:
        """The answers of the gating ``webhooks`` (`plan(...).webhooks`), asked concurrently."""
        return call_gates(
            webhooks,
            rollout,
            status,
            self.secrets,
            self.client,
            now,
            deadline_seconds=self.deadline_seconds,
            sleep=self.sleep,
            backoff=self.backoff,
        )

    def fire(
        self, action: CallWebhook, rollout: Rollout, status: RolloutStatus | None, now: datetime
    ) -> Delivery:
        """Call the informative webhook of ``action``; never raises."""
        return fire(
            action,
            rollout,
            status,
            self.secrets,
            self.client,
            now,
            sleep=self.sleep,
            backoff=self.backoff,
            deadline_seconds=self.deadline_seconds,
        )

    def fire_all(
        self,
        actions: Sequence[CallWebhook],
        rollout: Rollout,
        status: RolloutStatus | None,
        now: datetime,
    ) -> list[Delivery]:
        return fire_all(
            actions,
            rollout,
            status,
            self.secrets,
            self.client,
            now,
            sleep=self.sleep,
            backoff=self.backoff,
            deadline_seconds=self.deadline_seconds,
        )

    def close(self) -> None:
        if self.owns_client:
            self.client.close()

    def __enter__(self) -> WebhookCaller:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
