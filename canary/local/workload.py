"""Fixed backends: the two versions run at addresses of their own, outside canary's control.

Promotion cannot copy a pod spec here, so it does the local equivalent: HAProxy's primary
server is pointed at the canary's address (`set server ... addr`), and a failed promotion
points it back. Readiness is a TCP connect to the address.
"""

from __future__ import annotations

import ipaddress

from pydantic import Field

from canary.engine import (
    Action,
    InitializePrimary,
    PromoteCanary,
    RestorePrimary,
    WorkloadState,
)
from canary.local.processes import port_open
from canary.model.base import CamelModel
from canary.model.provider import HaproxySettings
from canary.traffic.haproxy.runtime import RuntimeApi


class WorkloadRecord(CamelModel):
    """What local mode remembers of its backends (kept in the state file)."""

    primary_revision: str | None = None
    primary_address: str | None = Field(default=None, description="Where the primary points.")


class FixedBackends:
    def __init__(
        self,
        settings: HaproxySettings,
        runtime: RuntimeApi,
        revision: str,
        record: WorkloadRecord,
    ) -> None:
        if settings.primary_address is None or settings.canary_address is None:
            raise ValueError(
                "local mode needs spec.provider.haproxy primaryAddress and canaryAddress"
            )
        self.settings = settings
        self.runtime = runtime
        self.revision = revision
        self.record = record
        if record.primary_address is None:
            record.primary_address = settings.primary_address

    def observe(self) -> WorkloadState:
        return WorkloadState(
            target_revision=self.revision,
            canary_ready=_reachable(self.settings.canary_address or ""),
            primary_ready=_reachable(self.record.primary_address or ""),
            primary_revision=self.record.primary_revision,
        )

    def apply(self, action: Action) -> str | None:
        """Carry out a workload action; returns what was done, for the log."""
        if isinstance(action, InitializePrimary):
            self.record.primary_revision = action.revision
            return f"primary runs {action.revision} at {self.record.primary_address}"
        if isinstance(action, PromoteCanary):
            self._point_primary_at(self.settings.canary_address or "")
            self.record.primary_revision = action.revision
            return f"primary now serves {action.revision} from {self.settings.canary_address}"
        if isinstance(action, RestorePrimary):
            self._point_primary_at(self.settings.primary_address or "")
            self.record.primary_revision = action.revision
            return f"primary restored to {action.revision} at {self.settings.primary_address}"
        return None

    def repair(self) -> str | None:
        """Point HAProxy's primary server back where the record says, if someone moved it;
        returns what was done, for the log."""
        server = self.settings.primary_server
        live = self.runtime.server_address(self.settings.backend, server)
        wanted = self.record.primary_address or ""
        if live == wanted or not _is_ip_address(wanted):
            return None  # (HAProxy shows the address it resolved a host name to)
        self._point_primary_at(wanted)
        return f"HAProxy's {server} server pointed at {live}; put back to {wanted}"

    def _point_primary_at(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        server = f"{self.settings.backend}/{self.settings.primary_server}"
        self.runtime.command(f"set server {server} addr {host} port {port}")
        self.record.primary_address = address


def _is_ip_address(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    return bool(port.isdigit()) and port_open(host or "127.0.0.1", int(port))
