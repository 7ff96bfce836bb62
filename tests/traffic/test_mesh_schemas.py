"""Every object the mesh routers can write, validated against the meshes' real CRD schemas.

The CRDs are the projects' own (tests/data/mesh-crds, reduced; see its README). Each
object is checked as the API server would: schema defaults applied, then the OpenAPI schema
(with jsonschema), unknown fields (the server would prune them silently, which is worse than a
rejection), list-type keys, then the CEL rules (x-kubernetes-validations, with cel-python).

The matrix: each provider x strategy (canary at 0/5/50/100%, A/B on exact, prefix and regex
headers and on a cookie, blue/green with a mirror) x route settings (none; every setting the
provider honours, in two shapes), over every route the engine asks for in that strategy.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from jsonschema import Draft4Validator

from canary.engine.actions import Route
from canary.engine.routes import STABLE, SWITCHED, analysis_route
from canary.model.provider import unsupported_route_settings
from canary.model.rollout import Rollout
from canary.model.strategy import CookieMatch, MatchRule
from canary.traffic import mesh

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "tests" / "data" / "mesh-crds"
Json = dict[str, Any]

# --- the real schemas -------------------------------------------------------------------------


@cache
def schemas() -> dict[tuple[str, str, str], Json]:
    """(group, version, kind) -> openAPIV3Schema, from every CRD in tests/data/mesh-crds."""
    if not CRD_DIR.is_dir() or not list(CRD_DIR.glob("*.yaml")):
        pytest.fail(
            f"the meshes' CRDs are missing: looked for {CRD_DIR} (see its README.md for the "
            "files, their sources and scripts/reduce_crds.py, which makes them)",
            pytrace=False,
        )
    found: dict[tuple[str, str, str], Json] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                key = (spec["group"], version["name"], spec["names"]["kind"])
                found[key] = version["schema"]["openAPIV3Schema"]
    return found


def schema_for(obj: Json) -> Json:
    group, _, version = obj["apiVersion"].rpartition("/")
    key = (group, version, obj["kind"])
    assert key in schemas(), f"no CRD in {CRD_DIR} serves {obj['apiVersion']} {obj['kind']}"
    return schemas()[key]


def with_defaults(schema: Json, value: Any) -> Any:
    """``value`` with the schema's defaults filled in, as the API server does before validating."""
    value = copy.deepcopy(value)
    _default(schema, value)
    return value


def _default(schema: Json, value: Any) -> None:
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                _default(sub, value[name])
        if isinstance(schema.get("additionalProperties"), dict):
            for item in value.values():
                _default(schema["additionalProperties"], item)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            _default(schema["items"], item)


def unknown_fields(schema: Json, value: Any, path: str = "", root: bool = True) -> list[str]:
    """Fields the schema does not declare: the API server would drop them without a word."""
    found: list[str] = []
    if isinstance(value, dict) and not schema.get("x-kubernetes-preserve-unknown-fields"):
        known = set(schema.get("properties", {}))
        if root:
            known |= {"apiVersion", "kind", "metadata"}
        open_map = isinstance(schema.get("additionalProperties"), dict)
        for key, item in value.items():
            if root and key == "metadata":
                continue
            if key in schema.get("properties", {}):
                found += unknown_fields(schema["properties"][key], item, f"{path}.{key}", False)
            elif open_map:
                found += unknown_fields(
                    schema["additionalProperties"], item, f"{path}.{key}", False
                )
            elif key not in known:
                found.append(f"{path}.{key}: not in the schema (would be pruned)")
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += unknown_fields(schema["items"], item, f"{path}[{index}]", False)
    return found


def list_type_violations(schema: Json, value: Any, path: str = "") -> list[str]:
    """x-kubernetes-list-type set/map: items (or their keys) must be unique."""
    found: list[str] = []
    if isinstance(value, list):
        kind = schema.get("x-kubernetes-list-type")
        if kind == "set" and len({repr(v) for v in value}) != len(value):
            found.append(f"{path}: duplicate items in a set")
        if kind == "map":
            keys = [tuple(v.get(k) for k in schema["x-kubernetes-list-map-keys"]) for v in value]
            if len(set(keys)) != len(keys):
                found.append(f"{path}: duplicate keys {keys} in a map list")
        for index, item in enumerate(value):
            found += list_type_violations(schema.get("items", {}), item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            sub = schema.get("properties", {}).get(key)
            if sub is None and isinstance(schema.get("additionalProperties"), dict):
                sub = schema["additionalProperties"]
            if sub is not None:
                found += list_type_violations(sub, item, f"{path}.{key}")
    return found


_CEL = celpy.Environment()
# CEL keywords are escaped as __name__ when used as field names (Kubernetes' CEL rules).
_CEL_RESERVED = {
    "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for",
    "function", "if", "import", "let", "loop", "package", "namespace", "return", "var",
    "void", "while",
}  # fmt: skip


@cache
def _program(rule: str) -> Any:
    return _CEL.program(_CEL.compile(rule))


def _cel_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {(f"__{k}__" if k in _CEL_RESERVED else k): _cel_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cel_value(v) for v in value]
    return value


def cel_violations(schema: Json, value: Any, path: str = "") -> list[str]:
    found = []
    for rule in schema.get("x-kubernetes-validations", []):
        result = _program(rule["rule"]).evaluate({"self": celpy.json_to_cel(_cel_value(value))})
        assert isinstance(result, celpy.celtypes.BoolType), f"{rule['rule']!r} gave {result!r}"
        if not result:
            found.append(f"{path or '.'}: {rule['message']}")
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                found += cel_violations(sub, value[name], f"{path}.{name}")
        if isinstance(schema.get("additionalProperties"), dict):
            for key, item in value.items():
                found += cel_violations(schema["additionalProperties"], item, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += cel_violations(schema["items"], item, f"{path}[{index}]")
    return found


def metadata_problems(obj: Json) -> list[str]:
    meta = obj.get("metadata", {})
    problems = []
    if not meta.get("name") or not meta.get("namespace"):
        problems.append("metadata: name and namespace are required")
    for section in ("labels", "annotations"):
        for key, value in meta.get(section, {}).items():
            if not isinstance(value, str) or not isinstance(key, str):
                problems.append(f"metadata.{section}.{key}: must be a string")
    if meta.get("labels", {}).get("app.kubernetes.io/managed-by") != "canary":
        problems.append("metadata.labels: app.kubernetes.io/managed-by: canary is missing")
    return problems


def crd_errors(obj: Json) -> list[str]:
    """Every reason the API server would refuse (or silently change) ``obj``."""
    schema = schema_for(obj)
    live = with_defaults(schema, obj)
    errors = [
        f"{'.'.join(map(str, e.absolute_path)) or '.'}: {e.message}"
        for e in Draft4Validator(schema).iter_errors(live)
    ]
    errors += unknown_fields(schema, live)
    errors += list_type_violations(schema, live)
    errors += metadata_problems(live)
    return errors or cel_violations(schema, live)


# --- the matrix ---------------------------------------------------------------------------------

PROVIDERS: dict[str, Json] = {
    "istio": {
        "name": "istio",
        "istio": {"hosts": ["podinfo.example.com"], "gateways": ["istio-system/public", "mesh"]},
    },
    "linkerd": {"name": "linkerd"},
    "linkerd-smi": {"name": "linkerd", "linkerd": {"api": "smi"}},
    "gateway-api": {
        "name": "gateway-api",
        "gatewayApi": {
            "parentRefs": [
                {"name": "public", "namespace": "gateway-system", "sectionName": "https"},
                {"name": "internal"},
            ],
            "hostnames": ["podinfo.example.com", "*.podinfo.example.org"],
        },
    },
}

# Every route setting, in two shapes; each provider gets those it honours.
SETTINGS: dict[str, Json] = {
    "none": {},
    "all": {
        "timeout": "10s",
        "retries": {"attempts": 3, "perTryTimeout": "2500ms", "retryOn": ["5xx", "gateway-error"]},
        "cors": {
            "allowOrigins": ["https://example.com", "http://*.example.org:8080"],
            "allowMethods": ["GET", "POST"],
            "allowHeaders": ["x-user", "authorization"],
            "exposeHeaders": ["x-trace-id"],
            "maxAge": "1m30s",
            "allowCredentials": True,
        },
        "headers": {
            "request": {"set": {"x-env": "prod"}, "add": {"x-via": "mesh"}, "remove": ["x-debug"]},
            "response": {"set": {"x-served-by": "podinfo"}, "remove": ["server"]},
        },
        "mirror": {"host": "shadow.testing", "port": 8080, "percentage": 12.5},
        "circuitBreaker": {
            "connectionPool": {
                "maxConnections": 100,
                "connectTimeout": "250ms",
                "http1MaxPendingRequests": 10,
                "http2MaxRequests": 1000,
                "maxRequestsPerConnection": 5,
            },
            "outlierDetection": {
                "consecutiveErrors": 5,
                "interval": "10s",
                "baseEjectionTime": "30s",
                "maxEjectionPercent": 50,
            },
        },
        "mtlsMode": "ISTIO_MUTUAL",
    },
    "all-other-shapes": {
        "timeout": "1h30m",
        "retries": {"attempts": 0},
        "cors": {"allowOrigins": ["*"], "maxAge": "500ms"},
        "headers": {"request": {"remove": ["x-debug"]}},
        "mirror": {"host": "shadow", "port": 80},
        "circuitBreaker": {
            "connectionPool": {"maxConnections": 1},
            "outlierDetection": {"baseEjectionTime": "10m"},
        },
        "mtlsMode": "DISABLE",
    },
}

HEADER_KINDS: dict[str, list[Json]] = {
    "exact": [{"headers": {"x-canary": {"exact": "insider"}}}],
    "prefix": [{"headers": {"x-user": {"prefix": "beta.(1)"}}}],
    "regex": [{"headers": {"user-agent": {"regex": ".*Firefox.*"}}}],
    "cookie": [{"cookie": {"name": "canary", "value": "always"}}],
    "several": [
        {"headers": {"x-canary": {"exact": "insider"}, "x-region": {"prefix": "eu-"}}},
        {"headers": {"x-user": {"regex": "^[a-z]+@example\\.com$"}}},
    ],
}

STRATEGIES: dict[str, Json] = {
    "canary": {"canary": {"weights": [5, 50, 100]}},
    **{f"abTest-{kind}": {"abTest": {"match": rules}} for kind, rules in HEADER_KINDS.items()},
    "blueGreen-mirror": {"blueGreen": {}, "mirror": {"percentage": 33.3}},
    "blueGreen-mirror-all": {"blueGreen": {}, "mirror": {}},
}


def settings_for(flavour: str, shape: str) -> Json:
    """The settings of ``shape`` that provider ``flavour`` honours."""
    wanted = copy.deepcopy(SETTINGS[shape])
    used = [k for k in wanted if k != "circuitBreaker"] + [
        f"circuitBreaker.{k}" for k in wanted.get("circuitBreaker", {})
    ]
    for name in unsupported_route_settings(flavour, used):
        head, _, tail = name.partition(".")
        if tail:
            del wanted[head][tail]
            if not wanted[head]:
                del wanted[head]
        else:
            del wanted[head]
    return wanted


def make_rollout(flavour: str, strategy: Json, settings: Json) -> Rollout:
    return Rollout.model_validate(
        {
            "apiVersion": "canary.dev/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"name": "podinfo"},
                "service": {"port": 9898, "route": settings},
                "provider": PROVIDERS[flavour],
                "strategy": strategy,
            },
        }
    )


def engine_routes(rollout: Rollout) -> list[Route]:
    """Every route the engine asks for during this rollout (canary: also 0/5/50/100%)."""
    routes = [STABLE, SWITCHED, analysis_route(rollout, 0)]
    if rollout.spec.strategy.canary is not None:
        routes += [Route(canary_weight=w) for w in (0, 5, 50, 100)]
    unique: list[Route] = []
    for route in routes:
        if route not in unique:
            unique.append(route)
    return unique


@dataclass(frozen=True)
class Case:
    id: str
    flavour: str
    strategy: str
    rollout: Rollout
    routes: tuple[Route, ...]


def _cases() -> list[Case]:
    cases = []
    for flavour, strategy, shape in itertools.product(PROVIDERS, STRATEGIES, SETTINGS):
        try:
            rollout = make_rollout(flavour, STRATEGIES[strategy], settings_for(flavour, shape))
        except ValueError:
            continue  # the model refuses this strategy for this provider
        routes = tuple(engine_routes(rollout))
        cases.append(Case(f"{flavour}-{strategy}-{shape}", flavour, strategy, rollout, routes))
    # What the models refuse today but the HTTPRoute renderers can write: a cookie match.
    cookie = (MatchRule(cookie=CookieMatch(name="canary", value="always")),)
    for flavour, shape in itertools.product(("linkerd", "gateway-api"), SETTINGS):
        rollout = make_rollout(flavour, STRATEGIES["canary"], settings_for(flavour, shape))
        routes = (Route(match=cookie), Route(canary_weight=20, match=cookie))
        name = f"{flavour}-cookie-renderer-only-{shape}"
        cases.append(Case(name, flavour, "abTest-cookie", rollout, routes))
    return cases


CASES = _cases()
ROUTES = [(c, r) for c in CASES for r in c.routes]
ROUTE_IDS = [
    f"{c.id}-w{r.canary_weight}{'-ab' if r.match else ''}"
    f"{f'-mirror{r.mirror_percentage:g}' if r.mirror_percentage else ''}"
    for c, r in ROUTES
]


def test_the_matrix_covers_every_provider_and_strategy() -> None:
    covered = {(c.flavour, c.strategy) for c in CASES}
    expected = {(f, s) for f in ("istio", "linkerd", "gateway-api") for s in STRATEGIES}
    # What the model refuses: SMI routes by weight only; Linkerd cannot mirror.
    expected -= {("linkerd", s) for s in STRATEGIES if s.startswith("blueGreen-mirror")}
    expected |= {("linkerd-smi", "canary")}
    assert expected <= covered, sorted(expected - covered)
    assert {r.canary_weight for _, r in ROUTES} >= {0, 5, 50, 100}
    objects = sum(len(mesh.desired_objects(c.rollout, r)) for c, r in ROUTES)
    print(f"\nmesh schema matrix: {len(CASES)} rollouts, {len(ROUTES)} routes, {objects} objects")


@pytest.mark.parametrize(("case", "route"), ROUTES, ids=ROUTE_IDS)
def test_every_object_is_accepted_by_its_crd(case: Case, route: Route) -> None:
    objects = mesh.desired_objects(case.rollout, route)
    assert objects
    for obj in objects:
        assert obj["metadata"]["namespace"] == "test"
        assert obj["metadata"]["labels"]["canary.dev/rollout"] == "podinfo"
        errors = crd_errors(obj)
        assert not errors, f"{obj['kind']} {obj['metadata']['name']}:\n" + "\n".join(errors)


@pytest.mark.parametrize(("case", "route"), ROUTES, ids=ROUTE_IDS)
def test_the_route_reads_back_from_the_objects(case: Case, route: Route) -> None:
    objects = mesh.desired_objects(case.rollout, route)
    assert mesh.route_from_objects(case.rollout, objects) == route
    # As the API server returns them: defaults filled in, status and server fields added.
    live = [with_defaults(schema_for(o), o) | {"status": {}} for o in objects]
    for obj in live:
        obj["metadata"] = obj["metadata"] | {"resourceVersion": "7", "uid": "u-1"}
    assert mesh.route_from_objects(case.rollout, live) == route
    for want, have in zip(objects, live, strict=True):
        assert mesh.differences(want, have) == []


# --- behaviour over the matrix -------------------------------------------------------------------


def weighted_entries(obj: Json) -> list[list[float]]:
    """The weights of each place that splits traffic: http routes, rules, split backends."""
    spec = obj["spec"]
    if obj["kind"] == "VirtualService":
        return [[d["weight"] for d in http["route"]] for http in spec["http"]]
    if obj["kind"] == "HTTPRoute":
        return [[b["weight"] for b in rule["backendRefs"]] for rule in spec["rules"]]
    if obj["kind"] == "TrafficSplit":
        return [[b["weight"] for b in spec["backends"]]]
    return []


@pytest.mark.parametrize(("case", "route"), ROUTES, ids=ROUTE_IDS)
def test_weights_sum_to_100_and_the_ab_route_comes_first(case: Case, route: Route) -> None:
    objects = mesh.desired_objects(case.rollout, route)
    entries = [e for obj in objects for e in weighted_entries(obj)]
    assert entries
    for weights in entries:
        assert sum(weights) == 100, weights
        assert len(weights) == 2  # primary first, canary second, always both
    assert entries[-1] == [100 - route.canary_weight, route.canary_weight]
    main = objects[0]
    if main["kind"] == "VirtualService":
        first, last = main["spec"]["http"][0], main["spec"]["http"][-1]
        assert ("match" in first) == bool(route.match)
        assert "match" not in last
    elif main["kind"] == "HTTPRoute":
        rules = main["spec"]["rules"]
        assert any("headers" in m for m in rules[0]["matches"]) == bool(route.match)
        assert not any("headers" in m for m in rules[-1]["matches"])
        if route.match:
            assert entries[0] == [0, 100]


def settings_view(obj: Json) -> list[Json]:
    """What each traffic-splitting place carries of the service's settings."""
    if obj["kind"] == "VirtualService":
        keys = ("timeout", "retries", "corsPolicy", "headers")
        views = []
        for http in obj["spec"]["http"]:
            view = {k: http[k] for k in keys if k in http}
            mirrors = [(http["mirror"], http["mirrorPercentage"])] if "mirror" in http else []
            mirrors += [(m["destination"], m["percentage"]) for m in http.get("mirrors", [])]
            view["mirror"] = [m for m in mirrors if m[0]["host"] != "podinfo-canary"]
            views.append(view)
        return views
    if obj["kind"] == "HTTPRoute":
        return [
            {
                "timeouts": rule.get("timeouts"),
                "filters": [
                    f
                    for f in rule.get("filters", [])
                    if f.get("requestMirror", {}).get("backendRef", {}).get("name")
                    != "podinfo-canary"
                ],
                "annotations": obj["metadata"].get("annotations"),
            }
            for rule in obj["spec"]["rules"]
        ]
    if obj["kind"] == "DestinationRule":
        return [obj["spec"]]
    return [{}]  # a TrafficSplit carries no settings


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_service_settings_hold_at_every_weight(case: Case) -> None:
    views = []
    routes = [*case.routes, *(Route(canary_weight=w) for w in (0, 5, 50, 100))]
    for route in routes:
        for obj in mesh.desired_objects(case.rollout, route):
            views.append((obj["kind"], obj["metadata"]["name"], settings_view(obj)))
    by_object: dict[tuple[str, str], list[Json]] = {}
    for kind, name, view in views:
        by_object.setdefault((kind, name), []).extend(view)
    settings = case.rollout.spec.service.route
    for (kind, name), seen in by_object.items():
        assert all(v == seen[0] for v in seen), f"{kind} {name} changes its settings with the route"
        first = seen[0]
        if kind == "VirtualService":
            assert ("timeout" in first) == (settings.timeout is not None)
            assert ("retries" in first) == (settings.retries is not None)
            assert ("corsPolicy" in first) == (settings.cors is not None)
            assert bool(first["mirror"]) == (settings.mirror is not None)
        if kind == "DestinationRule":
            policy = first.get("trafficPolicy", {})
            breaker = settings.circuit_breaker
            assert ("outlierDetection" in policy) == bool(breaker and breaker.outlier_detection)
            assert ("connectionPool" in policy) == bool(breaker and breaker.connection_pool)
            assert ("tls" in policy) == (settings.mtls_mode is not None)
        if kind == "HTTPRoute":
            assert bool(first["timeouts"]) == (settings.timeout is not None)
            types = {f["type"] for f in first["filters"]}
            assert ("CORS" in types) == (settings.cors is not None)
            assert ("RequestMirror" in types) == (settings.mirror is not None)
            assert bool(first["annotations"]) == (settings.retries is not None)


# --- the checks themselves refuse what the API server refuses ----------------------------------


def _set(path: tuple[str | int, ...], value: Any) -> Any:
    def change(obj: Json) -> None:
        target: Any = obj
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def _first_case(case_id: str) -> Case:
    return next(c for c in CASES if c.id == case_id)


BROKEN = {
    "gateway duration with a fraction": (
        "gateway-api-abTest-several-all",
        _set(("spec", "rules", 0, "timeouts", "request"), "1.5s"),
        "does not match",
    ),
    "gateway backendRequest over request": (
        "gateway-api-abTest-several-all",
        _set(("spec", "rules", 0, "timeouts", "backendRequest"), "20s"),
        "cannot be longer than request timeout",
    ),
    "gateway unknown field": (
        "gateway-api-abTest-several-all",
        _set(("spec", "rules", 0, "retry"), {"attempts": 2}),
        "would be pruned",
    ),
    "gateway repeated header modifier": (
        "gateway-api-abTest-several-all",
        lambda o: o["spec"]["rules"][0]["filters"].append(o["spec"]["rules"][0]["filters"][0]),
        "cannot be repeated",
    ),
    "istio zero timeout": (
        "istio-canary-all",
        _set(("spec", "http", 0, "timeout"), "0s"),
        "greater than 1ms",
    ),
    "istio unknown tls mode": (
        "istio-canary-all",
        lambda o: o["spec"].setdefault("trafficPolicy", {}).update(tls={"mode": "STRICT"}),
        "is not one of",
    ),
    "smi weight as text": (
        "linkerd-smi-canary-none",
        _set(("spec", "backends", 0, "weight"), "80"),
        "is not of type",
    ),
}


@pytest.mark.parametrize("name", BROKEN)
def test_the_checks_refuse_what_the_api_server_refuses(name: str) -> None:
    case_id, change, message = BROKEN[name]
    case = _first_case(case_id)
    route = case.routes[-1]
    objects = mesh.desired_objects(case.rollout, route)
    obj = copy.deepcopy(objects[-1] if "tls mode" in name else objects[0])
    assert crd_errors(obj) == []
    change(obj)
    errors = crd_errors(obj)
    assert any(message in e for e in errors), errors
