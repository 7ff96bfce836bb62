"""The operator commands without the API: straight to the cluster with a kubeconfig.

Reads are the Rollout resources (and the target Deployment, for the revision it runs); a write
is a RolloutCommand object created through `KubeRolloutStore` (the controller applies it at the
Rollout's next tick), checked first by the same rules (`canary.gates.api.service`), so a
command that cannot apply is refused with the API's 409 message. Who asks is the user the
cluster authenticates (a SelfSubjectReview; the kubeconfig context's user name only when the
cluster cannot say, and then the admission policy refuses a wrong one); each write asked for
(accepted or refused) is recorded as a Kubernetes Event on the Rollout. The controller's own
Event (Approved, Aborted, ...) names the same authenticated user. `wait` reads the Rollout
every ``poll`` seconds.

RBAC: get/list rollouts.canary.dev (and get deployments, for the target's revision); the writes
need create on rolloutcommands.canary.dev (no right on the Rollout) and create on events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError as Urllib3Error

from canary.cli.client import ApiClientError
from canary.controller.api import AuditEvents
from canary.controller.commands import KubeRolloutStore, whoami
from canary.controller.kube import Kube, KubeError
from canary.engine.observations import CommandKind
from canary.gates.api.audit import Audit
from canary.gates.api.models import (
    CommandAccepted,
    RolloutList,
    RolloutSummary,
    RolloutView,
    WaitResult,
)
from canary.gates.api.service import CommandRefusedError, queue_command, wait_answer
from canary.gates.api.store import RolloutNotFoundError, StoreError
from canary.model.gates import ApprovalPoint

log = logging.getLogger("canary.cli.kube")

IDENTITY = "canary-cli"
"""The reporting instance of the Events the CLI records."""
DEFAULT_POLL = 2.0


def _now() -> datetime:
    return datetime.now(UTC)


class KubeBackend:
    """A `Backend` (canary.cli.client) over the cluster's Rollouts."""

    def __init__(
        self,
        kube: Kube,
        *,
        user: str,
        default_namespace: str = "default",
        where: str = "the Kubernetes API",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = _now,
    ) -> None:
        self.kube = kube
        self.user = user
        self.default_namespace = default_namespace
        self.where = where
        self.clock = clock
        self.sleep = sleep
        self.now = now
        self.audit = Audit(
            [AuditEvents(kube, IDENTITY, now, via="with the canary CLI (kubeconfig)")]
        )

    @classmethod
    def from_kubeconfig(cls, path: Path, context: str | None = None) -> KubeBackend:
        """Connect with the kubeconfig at ``path`` (its current context, or ``context``);
        raises ValueError saying what is wrong with it."""
        try:
            contexts, current = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
                config_file=str(path)
            )
            chosen = current
            if context is not None:
                chosen = next((c for c in contexts if c.get("name") == context), None)
                if chosen is None:
                    names = ", ".join(str(c.get("name")) for c in contexts) or "none"
                    raise ValueError(f"kubeconfig {path}: no context {context!r} (has: {names})")
            api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(path), context=context
            )
        except (ConfigException, OSError) as exc:
            raise ValueError(f"kubeconfig {path}: {exc}") from None
        settings = (chosen or {}).get("context") or {}
        host = str(api_client.configuration.host)
        kube = Kube(api_client, timeout=15.0)
        return cls(
            kube,
            user=whoami(kube) or str(settings.get("user") or "unknown"),
            default_namespace=str(settings.get("namespace") or "default"),
            where=f"the Kubernetes API at {host}",
        )

    # --- errors -------------------------------------------------------------------------------

    def _kube_error(self, exc: KubeError) -> ApiClientError:
        return ApiClientError(f"{self.where}: {exc}", exc.status or None)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Every failure as an `ApiClientError` carrying an HTTP-like status: 404 no such
        rollout, 409 a command that does not apply, the API server's own status when it
        refused, None when it could not be reached (worth asking again)."""
        try:
            yield
        except RolloutNotFoundError as exc:
            raise ApiClientError(f"404 Not Found: {exc}", 404) from None
        except CommandRefusedError as exc:
            raise ApiClientError(f"409 Conflict: {exc.message}", 409) from None
        except KubeError as exc:
            raise self._kube_error(exc) from None
        except StoreError as exc:
            cause = exc.__context__
            if isinstance(cause, KubeError):
                raise self._kube_error(cause) from None
            raise ApiClientError(f"{self.where}: {exc}") from None
        except (Urllib3Error, OSError) as exc:
            raise ApiClientError(f"cannot reach {self.where}: {exc}") from None

    # --- the Backend protocol -----------------------------------------------------------------

    def _read(self, namespace: str, name: str) -> RolloutView:
        try:
            return KubeRolloutStore(self.kube).get(namespace, name)
        except RolloutNotFoundError:
            raise
        except StoreError:
            # Not found here, and listing every namespace (to say where it is) was refused:
            # answer for this namespace alone.
            return KubeRolloutStore(self.kube, (namespace,)).get(namespace, name)

    def list(self, namespace: str | None = None) -> RolloutList:
        with self._errors():
            store = KubeRolloutStore(self.kube, (namespace,) if namespace else ())
            return RolloutList(items=[RolloutSummary.of(v) for v in store.list()])

    def get(self, namespace: str, name: str) -> RolloutView:
        with self._errors():
            return self._read(namespace, name)

    def command(
        self, namespace: str, name: str, action: str, body: dict[str, Any] | None = None
    ) -> CommandAccepted:
        point = (body or {}).get("point")
        with self._errors():
            return queue_command(
                KubeRolloutStore(self.kube, user=self.user),
                self.audit,
                CommandKind(action),
                namespace,
                name,
                by=self.user,
                point=ApprovalPoint(point) if point else None,
                now=self.now(),
            )

    def wait(
        self,
        namespace: str,
        name: str,
        timeout: float,
        revision: str | None = None,
        poll: float | None = None,
    ) -> WaitResult:
        interval = poll if poll and poll > 0 else DEFAULT_POLL
        started = self.clock()
        while True:
            view = self.get(namespace, name)
            waited = max(0.0, self.clock() - started)
            remaining = timeout - waited
            answer = wait_answer(view, revision, waited, timed_out=remaining <= 0.001)
            if answer is not None:
                return answer
            self.sleep(min(interval, remaining))

    def close(self) -> None:
        api_client: client.ApiClient = self.kube.api_client
        api_client.close()  # type: ignore[no-untyped-call]
