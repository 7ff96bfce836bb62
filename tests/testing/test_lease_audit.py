"""The request-log audit the sharding tests rely on finds a write made without the Lease."""

from __future__ import annotations

from canary.testing.lease_audit import writes_outside_leases

LEASES = "/apis/coordination.k8s.io/v1/namespaces/ops/leases"
STATUS = "/apis/canary.dev/v1alpha1/namespaces/shop/rollouts/web/status"


def guarded_by(method: str, path: str) -> str | None:
    return "shard-0" if path == STATUS else None


def test_writes_by_the_holder_pass_and_handovers_move_the_holder() -> None:
    log = [
        ("a", "POST", LEASES, 201),
        ("a", "PUT", STATUS, 200),  # before a's first renewal: checked against it
        ("a", "PUT", f"{LEASES}/shard-0", 200),
        ("a", "PUT", STATUS, 200),
        ("b", "PUT", f"{LEASES}/shard-0", 409),  # a lost race is no handover
        ("a", "PUT", f"{LEASES}/shard-0", 200),  # a releases
        ("b", "PUT", f"{LEASES}/shard-0", 200),  # b takes
        ("b", "PUT", STATUS, 200),
        ("a", "PUT", STATUS, 409),  # refused by the resourceVersion: not a write
        ("a", "GET", STATUS, 200),
    ]
    assert writes_outside_leases(log, guarded_by) == []


def test_a_write_by_another_than_the_holder_is_reported() -> None:
    log = [
        ("a", "PUT", f"{LEASES}/shard-0", 200),
        ("b", "PUT", f"{LEASES}/shard-0", 200),
        ("a", "PUT", STATUS, 200),
    ]
    assert writes_outside_leases(log, guarded_by) == [f"a wrote PUT {STATUS} while b held shard-0"]
    early = [("b", "PUT", STATUS, 200), ("a", "PUT", f"{LEASES}/shard-0", 200)]
    assert writes_outside_leases(early, guarded_by) == [
        f"b wrote PUT {STATUS} before a first renewed shard-0"
    ]
