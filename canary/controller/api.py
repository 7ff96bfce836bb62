"""The incoming API (`canary.gates.api`), served by the controller over the cluster's Rollouts.

`canary get/list/approve/promote/abort/retry/wait` and CI pipelines talk to it with bearer
tokens. Reads come from the Rollout resources; writes are RolloutCommand objects created by
the controller's ServiceAccount with the token's name in ``spec.onBehalfOf``
(`KubeRolloutStore`), applied by the leader's next tick, so every replica may serve the API.
Each write asked for is recorded as an Event on the Rollout (reason ``Command<Action>``,
Warning when refused), beside the API's audit log line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from urllib3.exceptions import HTTPError as Urllib3Error

from canary.controller.commands import KubeRolloutStore, whoami
from canary.controller.events import addressee, post_events
from canary.controller.kinds import ROLLOUT
from canary.controller.kube import Kube, KubeError
from canary.engine.actions import Event
from canary.gates.api.app import ApiSettings, create_app
from canary.gates.api.auth import TokenSet
from canary.gates.api.models import AuditEvent, AuditOutcome
from canary.gates.api.serve import ApiServer

log = logging.getLogger(__name__)


class AuditEvents:
    """An audit sink: each write asked for, as an Event on its Rollout. ``via`` says how it was
    asked ("through the API", "with the canary CLI (kubeconfig)"). A Rollout that cannot be
    read gets no Event; the write's log line stands."""

    def __init__(
        self,
        kube: Kube,
        identity: str,
        clock: Callable[[], datetime],
        via: str = "through the API",
    ) -> None:
        self.kube = kube
        self.identity = identity
        self.clock = clock
        self.via = via

    def __call__(self, audit: AuditEvent) -> None:
        try:
            obj = self.kube.get(ROLLOUT, audit.namespace, audit.name)
        except (KubeError, Urllib3Error, OSError) as exc:
            log.warning("%s/%s: the Event of this write was not recorded: %s",
                        audit.namespace, audit.name, exc)  # fmt: skip
            return
        if obj is None:
            return
        point = f" {audit.point.value}" if audit.point else ""
        event = Event(
            reason=f"Command{audit.action.value.capitalize()}",
            message=f"{audit.by} asked to {audit.action.value}{point} {self.via}: "
            f"{audit.outcome.value} ({audit.message})",
            warning=audit.outcome is AuditOutcome.REJECTED,
        )
        post_events(self.kube, addressee(obj), [event], self.clock(), self.identity)


def start_api(
    kube: Kube,
    namespaces: tuple[str, ...],
    tokens: Path,
    address: tuple[str, int],
    *,
    identity: str,
    clock: Callable[[], datetime],
) -> ApiServer:
    """Serve the API on ``address`` (a thread); raises TokenError for a bad tokens file."""
    settings = ApiSettings(audit_sinks=[AuditEvents(kube, identity, clock)])
    user = whoami(kube) or "unknown"
    store = KubeRolloutStore(kube, namespaces, user=user, on_behalf=True)
    app = create_app(store, TokenSet.from_path(tokens), settings)
    return ApiServer(app, *address).start()
