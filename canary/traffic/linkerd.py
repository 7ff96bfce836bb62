"""Linkerd: a Gateway API HTTPRoute on the Service (current Linkerd), or an SMI TrafficSplit.

With `provider.linkerd.api: gateway-api` (the default) the HTTPRoute ``<target>`` has the
Service ``<target>`` as its parent (kind Service, core group ""): Linkerd's mesh routing, applied
by the client's proxy to every meshed call to that Service. It carries the weights, the A/B
header matches, the request timeout and the header modifiers. Retries are Linkerd annotations
on the HTTPRoute (they override any on the Service). Linkerd's circuit breaker (failure
accrual) is read from annotations on the parent Service ``<target>``, which the workload part
owns: `service_annotations` gives them.

With `api: smi` a `split.smi-spec.io/v1alpha2` TrafficSplit splits the Service ``<target>``
between ``<target>-primary`` and ``<target>-canary``: weights only.
"""

from __future__ import annotations

from canary.engine.actions import Route
from canary.model.provider import LinkerdApi
from canary.model.rollout import Rollout
from canary.model.route import Retries
from canary.traffic.httproute import Layout, http_route, route_from_http_route
from canary.traffic.objects import (
    Json,
    Names,
    RenderError,
    find_object,
    metadata,
    single_unit_duration,
    split_weight,
)

SMI_GROUP = "split.smi-spec.io"
SMI_API_VERSION = f"{SMI_GROUP}/v1alpha2"

RETRY_HTTP = "retry.linkerd.io/http"
RETRY_LIMIT = "retry.linkerd.io/limit"
RETRY_TIMEOUT = "retry.linkerd.io/timeout"
ACCRUAL = "balancer.linkerd.io/failure-accrual"
ACCRUAL_MAX_FAILURES = "balancer.linkerd.io/failure-accrual-consecutive-max-failures"
ACCRUAL_MIN_PENALTY = "balancer.linkerd.io/failure-accrual-consecutive-min-penalty"
ACCRUAL_MAX_PENALTY = "balancer.linkerd.io/failure-accrual-consecutive-max-penalty"

DEFAULT_RETRY_ON = "gateway-error"
"""Linkerd retries on response codes only; with no retryOn, retry what a gateway error is."""
MAX_PENALTY_FLOOR = 300.0
"""Seconds: Envoy's default maximum ejection time, the ceiling of the back-off by default."""

# Our retry conditions (Envoy/Istio vocabulary) as Linkerd's retry.linkerd.io/http elements.
_RETRY_ON = {"5xx": "5xx", "gateway-error": "gateway-error", "retriable-4xx": "409"}


def is_smi(rollout: Rollout) -> bool:
    linkerd = rollout.spec.provider.linkerd
    return linkerd is not None and linkerd.api is LinkerdApi.SMI


def desired_objects(rollout: Rollout, route: Route) -> list[Json]:
    """The HTTPRoute (or, with SMI, the TrafficSplit) that holds ``route``."""
    if is_smi(rollout):
        return [traffic_split(rollout, route)]
    names = Names.of(rollout)
    layout = Layout(
        parent_refs=[{"group": "", "kind": "Service", "name": names.service, "port": names.port}],
        backend_filters=False,
        # Linkerd's per-try timeout is retry.linkerd.io/timeout: a try that times out is
        # retried, where timeouts.backendRequest would fail the request.
        backend_request_timeout=False,
        annotations=retry_annotations(rollout.spec.service.route.retries),
    )
    return [http_route(rollout, route, layout)]


def route_from_objects(rollout: Rollout, objects: list[Json]) -> Route:
    """The Route the live HTTPRoute or TrafficSplit holds (RouterError when unreadable)."""
    if not is_smi(rollout):
        return route_from_http_route(rollout, objects)
    names = Names.of(rollout)
    split = find_object(objects, SMI_GROUP, "TrafficSplit", names.service)
    weights = {names.primary: 0.0, names.canary: 0.0}
    for backend in split.get("spec", {}).get("backends") or []:
        if backend.get("service") in weights:
            weights[backend["service"]] += float(backend.get("weight", 0))
    return Route(canary_weight=split_weight(weights[names.primary], weights[names.canary]))


def traffic_split(rollout: Rollout, route: Route) -> Json:
    if route.match or route.mirror_percentage is not None:
        raise RenderError(
            "an SMI TrafficSplit carries only backend weights: it cannot route by header or "
            "mirror traffic (use provider.linkerd.api gateway-api)"
        )
    names = Names.of(rollout)
    return {
        "apiVersion": SMI_API_VERSION,
        "kind": "TrafficSplit",
        "metadata": metadata(rollout, names.service),
        "spec": {
            "service": names.service,
            "backends": [
                {"service": names.primary, "weight": 100 - route.canary_weight},
                {"service": names.canary, "weight": route.canary_weight},
            ],
        },
    }


def retry_annotations(retries: Retries | None) -> dict[str, str]:
    """Linkerd's retry annotations for the HTTPRoute (empty without retries)."""
    if retries is None:
        return {}
    codes: list[str] = []
    for condition in retries.retry_on or [DEFAULT_RETRY_ON]:
        code = _RETRY_ON.get(condition, condition)
        if not _is_status_code_range(code) and code not in ("5xx", "gateway-error"):
            raise RenderError(
                f"retries.retryOn {condition!r} has no Linkerd equivalent: Linkerd retries on "
                "response codes; use 5xx, gateway-error, retriable-4xx, a code (503) or a range "
                "(500-504)"
            )
        if code not in codes:
            codes.append(code)
    annotations = {RETRY_HTTP: ",".join(codes), RETRY_LIMIT: str(retries.attempts)}
    if retries.per_try_timeout is not None:
        annotations[RETRY_TIMEOUT] = single_unit_duration(
            retries.per_try_timeout, "retries.perTryTimeout"
        )
    return annotations


def _is_status_code_range(text: str) -> bool:
    low, _, high = text.partition("-")
    codes = [low, high] if high else [low]
    return all(c.isdigit() and len(c) == 3 and 100 <= int(c) <= 599 for c in codes) and (
        int(codes[0]) <= int(codes[-1])
    )


def service_annotations(rollout: Rollout) -> dict[str, str]:
    """Linkerd's circuit breaker (failure accrual) for the parent Service ``<target>``.

    Linkerd reads failure accrual from the Service the HTTPRoute is attached to, so these
    belong on that Service (the workload part writes it). Outlier detection maps as:
    consecutiveErrors -> max-failures, baseEjectionTime -> min-penalty (the first ejection),
    and max-penalty is the larger of baseEjectionTime and 5m. Linkerd has no scan interval
    and no maximum ejected share: `interval` and `maxEjectionPercent` have no equivalent.
    """
    breaker = rollout.spec.service.route.circuit_breaker
    outlier = breaker.outlier_detection if breaker else None
    if outlier is None or is_smi(rollout):
        return {}
    return {
        ACCRUAL: "consecutive",
        ACCRUAL_MAX_FAILURES: str(outlier.consecutive_errors),
        ACCRUAL_MIN_PENALTY: single_unit_duration(
            outlier.base_ejection_time, "outlierDetection.baseEjectionTime"
        ),
        ACCRUAL_MAX_PENALTY: single_unit_duration(
            max(outlier.base_ejection_time, MAX_PENALTY_FLOOR), "outlierDetection.baseEjectionTime"
        ),
    }
