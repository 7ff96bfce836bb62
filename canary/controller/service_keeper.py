"""A Rollout's Services kept in line with the spec (``spec.service``'s ports, Linkerd's circuit
breaker on ``<target>``) and its policy objects; not at every tick, but when the spec or the
primary changed, after this replica (again) leads, and every resync besides (`ServiceSync`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from canary.controller.kube import Kube
from canary.controller.policies import sync_policies
from canary.controller.workloads import Observed, ServiceSync, WorkloadActions, services_signature
from canary.model.rollout import Rollout

log = logging.getLogger("canary.controller.reconcile")  # (the tick's log, as failures.py)

SERVICE_RESYNC_SECONDS = 300.0
"""The Services are put in line with the spec when it or the primary changed, and at least
this often besides (`ServiceSync`)."""


@dataclass(frozen=True)
class ServiceKeeper:
    kube: Kube
    services: ServiceSync

    def sync(self, rollout: Rollout, observed: Observed) -> bool:
        """The Services in line with the spec, when it or the primary changed; whether
        anything was written."""
        signature = services_signature(rollout, observed)
        if signature is None or not self.services.due(rollout.key, signature):
            return False
        written = WorkloadActions(self.kube, rollout, observed).sync_services()
        if observed.target is not None:
            written += sync_policies(self.kube, rollout, observed.target)
        for line in written:
            log.info("%s: %s", rollout.key, line)
        self.services.done(rollout.key, signature)
        return bool(written)
