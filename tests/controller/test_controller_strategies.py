"""Every strategy through the controller's tick (driven by hand, `tick_support`), healthy and
bad, on the providers it applies to: A/B on a header and on a cookie; an abort in each phase
through the path the CLI uses, and a retry; a revision that changed only a ConfigMap or a
Secret. (Blue/green with a mirror, settings changed mid-rollout and routes edited by hand:
test_route_convergence.py; the weighted canary against a real Prometheus:
test_end_to_end.py.)"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tick_support import PROVIDERS, Json, Ticker, start

from canary.controller.commands import KubeRolloutStore
from canary.controller.kube import Kube
from canary.engine.observations import Command, CommandKind
from canary.testing.telemetry_routes import split_of_objects

AB_HEADER = {"abTest": {"iterations": 2, "match": [{"headers": {"x-canary": {"exact": "on"}}}]}}
AB_COOKIE = {"abTest": {"iterations": 2, "match": [{"cookie": {"name": "beta", "value": "yes"}}]}}


def split(ticker: Ticker, provider: str) -> Any:
    route = ticker.route(PROVIDERS[provider][1])
    return split_of_objects([route], canary="web-canary", primary="web-primary")


def terminal(status: Json) -> bool:
    return status.get("phase") in ("Succeeded", "Failed") and bool(status.get("canaryRevision"))


@pytest.mark.parametrize(
    ("ticker", "verdict", "image"),
    [(0, "Succeeded", "podinfo:7.0.0"), (250, "Failed", "podinfo:6.7.0")],
    indirect=["ticker"],
    ids=["healthy", "bad"],
)
@pytest.mark.parametrize(
    ("provider", "strategy"),
    [
        ("istio", AB_HEADER),
        ("istio", AB_COOKIE),
        ("gateway-api", AB_HEADER),
        ("linkerd", AB_HEADER),  # (a cookie: Istio only, the model says why for the others)
    ],
    ids=["istio-header", "istio-cookie", "gateway-api-header", "linkerd-header"],
)
def test_ab_testing_sends_matching_requests_to_the_canary_then_ends(
    ticker: Ticker, provider: str, strategy: Json, verdict: str, image: str
) -> None:
    start(ticker, provider, strategy=strategy)
    ticker.cluster.set_image("web", "podinfo:7.0.0")
    ticker.until("the A/B route", lambda s: split(ticker, provider).matched_share is not None)
    during = split(ticker, provider)
    assert during.canary_weight == 0, "only matching requests reach the canary"
    status = ticker.until(verdict, terminal)
    assert status["phase"] == verdict
    after = split(ticker, provider)
    assert after.matched_share is None, "no A/B rule left"
    assert after.canary_weight == 0
    assert ticker.cluster.image_of("web-primary") == image
    assert ticker.cluster.deployment("web")["spec"]["replicas"] == 0


def post(ticker: Ticker, kind: CommandKind) -> None:
    """As `canary abort|retry NAME --kubeconfig` does: through KubeRolloutStore, as the user
    the kubeconfig authenticates (the CLI learns it with a SelfSubjectReview)."""
    store = KubeRolloutStore(Kube(ticker.cluster.api_client()), user="eve")
    store.post_command(ticker.cluster.namespace, "web", Command(kind=kind))


@pytest.mark.parametrize(
    ("where", "reached"),
    [
        ("waiting", lambda s: s.get("phase") == "Waiting"),
        ("progressing", lambda s: s.get("phase") == "Progressing" and s.get("canaryWeight") == 20),
        ("paused", lambda s: s.get("phase") == "Paused"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_an_abort_in_each_phase_rolls_back_and_a_retry_starts_again(
    ticker: Ticker, where: str, reached: Any
) -> None:
    gate = {"waiting": "rollout", "paused": "promotion"}.get(where)
    start(ticker, **({"gates": {"approvals": [gate]}} if gate else {}))
    ticker.cluster.set_image("web", "podinfo:7.0.0")
    ticker.until(where, reached)
    post(ticker, CommandKind.ABORT)
    ticker.until("Failed", lambda s: s.get("phase") == "Failed")
    (rolled_back,) = ticker.cluster.events("RollingBack")
    assert "aborted by eve" in rolled_back["message"]
    assert split(ticker, "istio").canary_weight == 0
    assert ticker.cluster.image_of("web-primary") == "podinfo:6.7.0"
    assert ticker.cluster.deployment("web")["spec"]["replicas"] == 0
    post(ticker, CommandKind.RETRY)
    ticker.until("started again", lambda s: s.get("phase") in ("Progressing", "Waiting"))


CONFIG = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-env"}}
SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-key"}, "type": "Opaque"}


@pytest.mark.parametrize("kind", ["ConfigMap", "Secret"])
def test_a_revision_that_changed_only_a_config_map_or_a_secret_is_promoted(
    ticker: Ticker, kind: str
) -> None:
    cluster, ns = ticker.cluster, ticker.cluster.namespace
    template = copy.deepcopy(CONFIG if kind == "ConfigMap" else SECRET)
    template["metadata"]["namespace"] = ns
    cluster.api.apply({**template, "data": {"MODE": "b2xk"}})  # (base64, as a Secret's)
    name = template["metadata"]["name"]
    ref = {"configMapRef" if kind == "ConfigMap" else "secretRef": {"name": name}}
    start(ticker)
    target = copy.deepcopy(cluster.deployment("web"))
    target["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [ref]
    target["metadata"].pop("resourceVersion")
    cluster.api.apply(target)
    ticker.until("the reference rolled out", terminal)
    first = cluster.status("web")["stableRevision"]
    cluster.api.apply({**template, "data": {"MODE": "bmV3"}})
    status = ticker.until(
        "a rollout of the new data",
        lambda s: terminal(s) and s.get("stableRevision") != first,
    )
    assert status["phase"] == "Succeeded"
    copies = [
        o
        for o in cluster.api.list("v1", kind, ns)
        if o["metadata"]["name"].startswith(f"{name}-primary-")
    ]
    container = cluster.deployment("web-primary")["spec"]["template"]["spec"]["containers"][0]
    (used,) = container["envFrom"]
    copy_name = (used.get("configMapRef") or used.get("secretRef"))["name"]
    (current,) = [c for c in copies if c["metadata"]["name"] == copy_name]
    assert current["data"] == {"MODE": "bmV3"}, "the primary runs a copy of the new data"
    # a third revision: the first one's copy is neither the primary's nor its stable one
    second = status["stableRevision"]
    cluster.api.apply({**template, "data": {"MODE": "dGhpcmQ="}})
    ticker.until(
        "a rollout of the third data",
        lambda s: terminal(s) and s.get("stableRevision") not in (first, second),
    )
    left = {
        o["metadata"]["name"]
        for o in cluster.api.list("v1", kind, ns)
        if o["metadata"]["name"].startswith(f"{name}-primary-")
    }
    first_copies = {c["metadata"]["name"] for c in copies} - {copy_name}
    assert first_copies, "the first revision had a copy of its own"
    assert not left & first_copies, "the stale copy was deleted"
    assert copy_name in left, "the stable revision's copy is kept"
