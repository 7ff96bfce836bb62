"""Where webhooks may be sent: a tenant writes the URL, the controller makes the call from
inside the cluster, so by default no webhook reaches the controller's own neighbourhood.

Refused by default (`DestinationPolicy`): loopback, link-local (cloud metadata services live
there: 169.254.169.254, fd00:ec2::254), unspecified, multicast and broadcast addresses; the
Kubernetes API server (``kubernetes.default.svc`` and the address in
``KUBERNETES_SERVICE_HOST``); and well-known metadata host names. Private ranges (10/8,
172.16/12, 192.168/16, fc00::/7) are allowed: in-cluster Services live there. ``allow`` (CIDRs)
lets an operator open a refused range on purpose, e.g. ``127.0.0.0/8`` for local tests;
``deny`` closes more.

The check runs in the HTTP client's transport before every connection, on every address the
host name resolves to (a name that resolves to one refused address is refused). A host name
whose address changes between this check and the connection (DNS rebinding) is not caught: put
an egress NetworkPolicy on the controller for that (docs/security.md).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import httpx

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], list[str]]

REFUSED_NETWORKS: tuple[tuple[str, str], ...] = (
    ("127.0.0.0/8", "loopback"),
    ("::1/128", "loopback"),
    ("0.0.0.0/8", "unspecified"),
    ("::/128", "unspecified"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("fe80::/10", "link-local"),
    ("fd00:ec2::254/128", "cloud metadata"),
    ("100.100.100.200/32", "cloud metadata"),
    ("224.0.0.0/4", "multicast"),
    ("ff00::/8", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("::ffff:0:0/96", "IPv4-mapped (checked as IPv4)"),
)
REFUSED_HOSTS = frozenset(
    {
        "localhost",
        "metadata",
        "metadata.google.internal",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    }
)


class DestinationRefusedError(httpx.RequestError):
    """The destination policy refuses the URL's host (never retried)."""


def _resolve(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []  # the connection will fail and say so
    return sorted({str(info[4][0]) for info in infos})


def _api_server_addresses() -> tuple[str, ...]:
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "").strip()
    return (host,) if host else ()


@dataclass(frozen=True)
class DestinationPolicy:
    allow: tuple[Network, ...] = ()
    deny: tuple[Network, ...] = ()
    api_server: tuple[str, ...] = field(default_factory=_api_server_addresses)
    resolve: Resolver = _resolve

    @classmethod
    def of(cls, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> DestinationPolicy:
        """From CIDR strings; raises ValueError naming a bad one."""
        return cls(allow=_networks(allow, "allow"), deny=_networks(deny, "deny"))

    def why_refused(self, host: str) -> str | None:
        """None when ``host`` may be called, else why not."""
        name = host.strip("[]").rstrip(".").lower()
        if name in REFUSED_HOSTS:
            return f"{host} is refused by the webhook destination policy (a cluster-internal name)"
        if name in self.api_server:
            return f"{host} is the Kubernetes API server: refused by the webhook destination policy"
        addresses = [name] if _is_address(name) else self.resolve(name)
        for text in addresses:
            reason = self._address_refused(ipaddress.ip_address(text.split("%", 1)[0]))
            if reason is not None:
                shown = host if text == name else f"{host} ({text})"
                return f"{shown} is {reason}: refused by the webhook destination policy"
        return None

    def _address_refused(self, address: Address) -> str | None:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in net for net in self.allow):
            return None
        if str(address) in self.api_server:
            return "the Kubernetes API server"
        if any(address in net for net in self.deny):
            return "in a denied range"
        for cidr, what in REFUSED_NETWORKS:
            if address in ipaddress.ip_network(cidr):
                return f"a {what} address"
        return None


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _networks(cidrs: Iterable[str], what: str) -> tuple[Network, ...]:
    found = []
    for cidr in cidrs:
        try:
            found.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"webhook destination {what} {cidr!r}: give a CIDR such as 10.0.0.0/8"
            ) from None
    return tuple(found)


LOCAL_MODE = DestinationPolicy.of(allow=("127.0.0.0/8", "::1/128"))
"""Local mode's policy: the person running `canary run` is its only tenant, and the
receivers of a local demo listen on loopback."""


class PolicyTransport(httpx.HTTPTransport):
    """An HTTP transport that asks the policy before each request's connection."""

    def __init__(self, policy: DestinationPolicy, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.policy = policy

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        reason = self.policy.why_refused(request.url.host)
        if reason is not None:
            raise DestinationRefusedError(reason, request=request)
        return super().handle_request(request)
