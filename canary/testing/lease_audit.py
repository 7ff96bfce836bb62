"""Auditing an API server's request log for writes made without the Lease that guards them.

`ApiServer.requests_by_agent` holds (User-Agent, method, path, status) of every request in the
order the server answered them. A controller replica sends its identity in its User-Agent and
renews the Leases it holds with PUTs, so the log says, at each point, who last wrote each
Lease: its holder (a release is written by the holder too, and is followed by the taker's
write). `writes_outside_leases` replays the log and reports every successful write that
``guarded_by`` ties to a Lease made by anyone but that Lease's last writer: a replica acting
on what another replica holds. (A Lease's first write is a POST whose path does not name it:
writes before its first PUT are checked against that PUT's writer.)
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence

LEASE_PATH = re.compile(r"^/apis/coordination\.k8s\.io/v1/namespaces/[^/]+/leases/([^/?]+)")

Request = tuple[str, str, str, int]
"""(User-Agent, method, path with query, status code)."""


def writes_outside_leases(
    log: Sequence[Request], guarded_by: Callable[[str, str], str | None]
) -> list[str]:
    """Every successful write (``guarded_by(method, path)`` names the Lease that must be held
    for it, None: not audited) made by someone other than that Lease's holder then."""
    holder: dict[str, str] = {}
    before_first: dict[str, list[tuple[str, str]]] = defaultdict(list)
    found: list[str] = []
    for agent, method, path, code in log:
        if code >= 300:
            continue
        lease = LEASE_PATH.match(path)
        if lease is not None and method == "PUT":
            name = lease.group(1)
            if name not in holder:
                found += [
                    f"{writer} wrote {what} before {agent} first renewed {name}"
                    for writer, what in before_first.pop(name, [])
                    if writer != agent
                ]
            holder[name] = agent
            continue
        if method not in ("PUT", "PATCH", "POST", "DELETE"):
            continue
        guard = guarded_by(method, path)
        if guard is None:
            continue
        if guard not in holder:
            before_first[guard].append((agent, f"{method} {path}"))
        elif holder[guard] != agent:
            found.append(f"{agent} wrote {method} {path} while {holder[guard]} held {guard}")
    return found


def status_writers(
    log: Sequence[Request], namespace: str, since: int = 0, agent_prefix: str = ""
) -> dict[str, list[str]]:
    """By Rollout, who made each successful status write, in order (from entry ``since``), the
    User-Agent without ``agent_prefix``."""
    prefix = f"/apis/canary.dev/v1alpha1/namespaces/{namespace}/rollouts/"
    writers: dict[str, list[str]] = defaultdict(list)
    for agent, method, path, code in log[since:]:
        if method == "PUT" and path.startswith(prefix) and path.endswith("/status") and code < 300:
            writers[path[len(prefix) : -len("/status")]].append(agent.removeprefix(agent_prefix))
    return writers


def rollout_guard(
    namespace: str, lease_of: Callable[[str], str | None]
) -> Callable[[str, str], str | None]:
    """A ``guarded_by`` for `writes_outside_leases`: a write of a Rollout or of the objects named
    after it (Deployments, Services, VirtualServices, DestinationRules; `-primary`/`-canary`
    suffixes included) needs ``lease_of(rollout)`` (None: not audited)."""
    pattern = re.compile(
        rf"^/apis?/(?:[^/]+/)*namespaces/{re.escape(namespace)}/"
        r"(rollouts|deployments|services|virtualservices|destinationrules)/([^/?]+)"
    )

    def guarded_by(method: str, path: str) -> str | None:
        found = pattern.match(path)
        if found is None:
            return None
        return lease_of(re.sub(r"-(primary|canary)$", "", found.group(2)))

    return guarded_by
