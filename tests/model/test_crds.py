"""The generated CRDs: up to date, structural, and as strict as the models where they can be."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import celpy
import pytest
import yaml
from click.testing import CliRunner
from jsonschema import Draft4Validator
from pydantic import BaseModel, Field, ValidationError

from canary.cli.crds import HEADER, crd_files, crds
from canary.model import Rollout
from canary.model.crd import (
    CRD_KINDS,
    SchemaConversionError,
    all_crds,
    openapi_schema,
    structural_problems,
)
from canary.model.loader import KINDS

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "charts" / "canary" / "crds"
CRDS = {crd["spec"]["names"]["kind"]: crd for crd in all_crds()}
Json = dict[str, Any]


def schema_of(kind: str) -> Json:
    schema: Json = CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


# --- What the API server would say: the OpenAPI schema, then the CEL rules ------------------

_CEL = celpy.Environment()


def _is_sorted(values: Any) -> celpy.celtypes.BoolType:
    """Kubernetes' list library `isSorted()` (not part of standard CEL)."""
    items = list(values)
    return celpy.celtypes.BoolType(all(a <= b for a, b in pairwise(items)))


def cel_holds(rule: str, value: Any) -> bool:
    program = _CEL.program(_CEL.compile(rule), functions={"isSorted": _is_sorted})
    result = program.evaluate({"self": celpy.json_to_cel(value)})
    assert isinstance(result, celpy.celtypes.BoolType), f"{rule!r} gave {result!r}"
    return bool(result)


def cel_violations(schema: Json, value: Any, path: str = "") -> list[str]:
    """Messages of the x-kubernetes-validations rules ``value`` breaks, at every level."""
    found = [
        f"{path or '.'}: {r['message']}"
        for r in schema.get("x-kubernetes-validations", [])
        if not cel_holds(r["rule"], value)
    ]
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


def crd_errors(kind: str, obj: Json) -> list[str]:
    """Every reason the CRD of ``kind`` rejects ``obj``: schema errors, then CEL rules."""
    schema = schema_of(kind)
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in Draft4Validator(schema).iter_errors(obj)
    ]
    return errors or cel_violations(schema, obj)


def model_rejects(obj: Json) -> bool:
    try:
        KINDS[obj["kind"]].model_validate(obj)
    except ValidationError:
        return True
    return False


# --- (a) the files are what the generator writes now ---------------------------------------


def test_crd_files_are_up_to_date() -> None:
    expected = crd_files()
    actual = {p.name: p.read_text(encoding="utf-8") for p in CRD_DIR.glob("*.yaml")}
    assert sorted(actual) == sorted(expected), (
        f"{CRD_DIR} holds {sorted(actual)}, the models give {sorted(expected)}: run `make crds`"
    )
    stale = [name for name in expected if actual[name] != expected[name]]
    assert not stale, f"{', '.join(stale)} out of date with the models: run `make crds`"


def test_files_are_named_by_plural_and_group_and_carry_the_header() -> None:
    assert sorted(crd_files()) == [
        "analysispolicies.canary.dev.yaml",
        "clusteranalysispolicies.canary.dev.yaml",
        "notificationchannels.canary.dev.yaml",
        "rolloutcommands.canary.dev.yaml",
        "rollouts.canary.dev.yaml",
    ]
    for text in crd_files().values():
        assert text.startswith(HEADER)
        assert "canary crds" in HEADER
        assert "do not edit" in HEADER


def test_command_prints_every_crd_as_multi_document_yaml() -> None:
    result = CliRunner().invoke(crds, [])
    assert result.exit_code == 0, result.output
    assert list(yaml.safe_load_all(result.output)) == all_crds()


def test_command_writes_files_and_removes_stale_ones(tmp_path: Path) -> None:
    stale = tmp_path / "gone.canary.dev.yaml"
    stale.write_text(HEADER + "kind: CustomResourceDefinition\n", encoding="utf-8")
    mine = tmp_path / "mine.canary.dev.yaml"
    mine.write_text("# hand-written\n", encoding="utf-8")
    result = CliRunner().invoke(crds, ["--output-dir", str(tmp_path / ".")])
    assert result.exit_code == 0, result.output
    written = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.glob("*.yaml")}
    assert written == {**crd_files(), "mine.canary.dev.yaml": "# hand-written\n"}


# --- (b) structural, and the check can fail -------------------------------------------------


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_generated_schema_is_structural(kind: str) -> None:
    assert structural_problems(schema_of(kind)) == []
    assert "$ref" not in yaml.safe_dump(CRDS[kind])


def _root(**properties: Json) -> Json:
    return {"type": "object", "properties": {"metadata": {"type": "object"}, **properties}}


BAD_SCHEMAS = [
    pytest.param(_root(spec={"$ref": "#/$defs/Spec"}), "$.spec: '$ref'", id="ref"),
    pytest.param({**_root(), "$defs": {"Spec": {}}}, "$: '$defs'", id="defs"),
    pytest.param(_root(spec={"description": "untyped"}), "$.spec: no type", id="no-type"),
    pytest.param(
        _root(spec={"type": "array", "items": {"minimum": 1}}), "$.spec[*]: no type", id="items"
    ),
    pytest.param(_root(kind={"type": "string", "const": "Rollout"}), "$.kind: 'const'", id="const"),
    pytest.param(
        _root(w={"type": "number", "exclusiveMinimum": 0}),
        "$.w: exclusiveMinimum must be a boolean",
        id="exclusive-minimum",
    ),
    pytest.param(
        _root(w={"type": "number", "exclusiveMaximum": 100}),
        "$.w: exclusiveMaximum must be a boolean",
        id="exclusive-maximum",
    ),
    pytest.param(
        _root(
            spec={
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "additionalProperties": {"type": "string"},
            }
        ),
        "$.spec: additionalProperties together with properties",
        id="properties-and-additional",
    ),
    pytest.param(
        _root(spec={"type": "object", "additionalProperties": False}),
        "$.spec: boolean additionalProperties",
        id="additional-false",
    ),
    pytest.param(
        _root(spec={"anyOf": [{"type": "string"}, {"type": "null"}]}),
        "$.spec.anyOf[0]: 'type' inside",
        id="any-of-types",
    ),
    pytest.param(
        _root(spec={"type": "object", "oneOf": [{"type": "object", "required": ["a"]}]}),
        "$.spec.oneOf[0]: 'type' inside",
        id="one-of-types",
    ),
    pytest.param(
        _root(spec={"type": "object", "anyOf": [{"properties": {"b": {}}}]}),
        "$.spec.anyOf[0]: properties not declared outside it",
        id="junctor-properties",
    ),
    pytest.param(
        _root(spec={"type": "object", "patternProperties": {"^a": {"type": "string"}}}),
        "$.spec: 'patternProperties'",
        id="pattern-properties",
    ),
    pytest.param(_root(t={"type": ["string", "null"]}), "$.t: type must be one of", id="null"),
    pytest.param(
        _root(t={"type": "array", "items": {"type": "string"}, "uniqueItems": True}),
        "$.t: uniqueItems is forbidden",
        id="unique-items",
    ),
    pytest.param(
        _root(
            t={
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}}},
            }
        ),
        "$.t: list-type map needs list-map-keys that items require",
        id="list-map-keys-optional",
    ),
    pytest.param(
        _root(metadata={"type": "object", "properties": {"name": {"type": "string"}}}),
        "$.metadata: must be just {type: object}",
        id="metadata",
    ),
    pytest.param({"type": "array", "items": {"type": "string"}}, "$: the root", id="root-array"),
]


@pytest.mark.parametrize(("schema", "problem"), BAD_SCHEMAS)
def test_structural_check_reports_each_problem_with_its_path(schema: Json, problem: str) -> None:
    problems = structural_problems(schema)
    assert any(p.startswith(problem) for p in problems), problems


def test_pydantic_schema_as_it_comes_is_not_structural() -> None:
    problems = structural_problems(Rollout.model_json_schema(by_alias=True, mode="validation"))
    assert any("'$ref'" in p for p in problems)
    assert any("'$defs'" in p for p in problems)
    assert any("'const'" in p for p in problems)


class _Part(BaseModel):
    n: int


class _Constructs(BaseModel):
    metadata: dict[str, Any]
    literal: Literal["only"]
    choice: Literal["a", "b"] = "a"
    optional: _Part | None = Field(default=None, description="Maybe a part.")
    int_or_string: int | str = 1
    parts: dict[str, _Part] = Field(default_factory=dict)
    anything: Any = None
    share: float = Field(default=0.5, gt=0, lt=1)
    count: int = Field(default=1, ge=1, gt=0)


def test_each_json_schema_construct_gets_its_kubernetes_form() -> None:
    schema = openapi_schema(_Constructs)
    props = schema["properties"]
    assert props["metadata"] == {"type": "object"}
    assert props["literal"] == {"type": "string", "enum": ["only"]}
    assert props["choice"] == {"type": "string", "enum": ["a", "b"]}
    assert props["optional"] == {
        "description": "Maybe a part.",
        "type": "object",
        "required": ["n"],
        "properties": {"n": {"type": "integer"}},
    }
    assert props["int_or_string"] == {"x-kubernetes-int-or-string": True}
    assert props["parts"]["additionalProperties"]["properties"] == {"n": {"type": "integer"}}
    assert props["anything"] == {"x-kubernetes-preserve-unknown-fields": True}
    assert props["share"] == {
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 1,
        "exclusiveMaximum": True,
    }
    assert props["count"] == {"type": "integer", "minimum": 1}  # ge=1 is stricter than gt=0
    assert schema["required"] == ["literal"]
    assert structural_problems(schema) == []


def test_a_construct_without_kubernetes_form_is_an_error() -> None:
    class Pair(BaseModel):
        metadata: dict[str, str]
        pair: tuple[int, str]

    with pytest.raises(SchemaConversionError, match="pair"):
        openapi_schema(Pair)


class _Tree(BaseModel):
    children: list[_Tree] = Field(default_factory=list)


def test_a_recursive_model_is_an_error_not_a_hang() -> None:
    with pytest.raises(SchemaConversionError, match="recursive"):
        openapi_schema(_Tree)


def test_extra_rules_on_a_missing_field_are_an_error() -> None:
    with pytest.raises(SchemaConversionError, match=r"spec\.nothing"):
        openapi_schema(Rollout, {"spec.nothing": {"maxItems": 1}})


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_cel_rules_compile_and_name_fields_of_their_node(kind: str) -> None:
    """The API server type-checks each rule against the schema; a misspelled field fails."""
    methods = {"isSorted", "all", "exists_one"}

    def walk(node: Json, path: str) -> int:
        count = 0
        for rule in node.get("x-kubernetes-validations", []):
            _CEL.compile(rule["rule"])
            for name in re.findall(r"self\.(\w+)", rule["rule"]):
                assert name in methods | set(node.get("properties", {})), f"{path}: {name}"
            count += 1
        for name, sub in node.get("properties", {}).items():
            count += walk(sub, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            count += walk(node["items"], f"{path}[*]")
        return count

    assert walk(schema_of(kind), "") >= (0 if "Policy" in kind else 1)


def test_cel_rules_stay_out_of_lists_and_maps() -> None:
    """Inside an unbounded list or map the API server's cost estimate would refuse a rule."""

    def walk(node: Json, in_collection: bool) -> None:
        if in_collection:
            assert "x-kubernetes-validations" not in node
        for sub in node.get("properties", {}).values():
            walk(sub, in_collection)
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key], True)

    for kind in CRDS:
        walk(schema_of(kind), False)


# --- (c) the examples validate against their CRDs -----------------------------------------


def _example_resources() -> list[tuple[str, Json]]:
    found = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for index, doc in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            if isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith("canary.dev/"):
                found.append((f"{path.name}[{index}]", doc))
    return found


def test_examples_validate_against_their_crds() -> None:
    resources = _example_resources()
    if not resources:
        pytest.fail("no canary.dev resources in examples/*.yaml yet")
    for label, doc in resources:
        assert doc["kind"] in CRDS, f"{label}: no CRD for kind {doc['kind']!r}"
        assert crd_errors(doc["kind"], doc) == [], label


# --- (d) what the model refuses, the CRD refuses too -------------------------------------


def _rollout() -> Json:
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "targetRef": {"name": "podinfo"},
            "service": {"port": 9898},
            "provider": {"name": "istio"},
            "strategy": {"canary": {"weights": [5, 10, 20, 50]}},
            "analysis": {"interval": "1m"},
        },
    }


def _channel(**spec: Any) -> Json:
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "NotificationChannel",
        "metadata": {"name": "deploys"},
        "spec": spec,
    }


def _set(path: str, value: Any) -> Callable[[Json], Json]:
    """A change to a fresh Rollout: set (or, with value None, delete) the field at ``path``."""

    def change(obj: Json) -> Json:
        *parents, last = path.split(".")
        node = obj
        for name in parents:
            node = node.setdefault(name, {})
        if value is None:
            del node[last]
        else:
            node[last] = copy.deepcopy(value)
        return obj

    return change


SINGLE_FIELD = [
    pytest.param(_set("spec.strategy.canary.weights", [10, 150]), id="weight-150"),
    pytest.param(_set("spec.strategy.canary", {"stepWeight": 0}), id="step-weight-0"),
    pytest.param(_set("spec.analysis.interval", "abc"), id="interval-abc"),
    pytest.param(_set("spec.analysis.interval", 60), id="interval-number"),
    pytest.param(_set("spec.provider.name", "nginx"), id="provider-nginx"),
    pytest.param(_set("spec.targetRef", None), id="missing-target-ref"),
    pytest.param(_set("spec.targetRef.name", "Pod_Info"), id="target-not-dns"),
    pytest.param(_set("spec.targetRef.kind", "StatefulSet"), id="target-kind"),
    pytest.param(_set("spec.service.port", 70000), id="port-70000"),
    pytest.param(_set("spec.analysis.failureLimit", 0), id="failure-limit-0"),
    pytest.param(_set("spec.analysis.judge", "vibes"), id="judge-unknown"),
    pytest.param(
        _set("spec.gates.webhooks", [{"name": "a", "type": "x", "url": "http://a"}]),
        id="gate-type-unknown",
    ),
    pytest.param(_set("spec.service.route", {"mtlsMode": "STRICT"}), id="mtls-mode"),
]

CROSS_FIELD = [
    pytest.param(_set("spec.strategy.canary.weights", [10, 5]), id="weights-fall"),
    pytest.param(_set("spec.strategy.canary.weights", [10, 10, 20]), id="weights-repeat"),
    pytest.param(_set("spec.strategy.canary.stepWeight", 10), id="weights-and-step"),
    pytest.param(
        _set("spec.strategy.canary", {"stepWeight": 30, "maxWeight": 20}), id="step-above-max"
    ),
    pytest.param(_set("spec.strategy.blueGreen", {}), id="two-strategies"),
    pytest.param(_set("spec.strategy.mirror", {"percentage": 50}), id="mirror-with-canary"),
    pytest.param(_set("spec.provider.linkerd", {"api": "smi"}), id="settings-of-other-provider"),
    pytest.param(_set("spec.provider", {"name": "gateway-api"}), id="gateway-api-no-parents"),
    pytest.param(
        _set("spec.gates.approvals", ["promotion", "promotion"]), id="approval-listed-twice"
    ),
]


@pytest.mark.parametrize("change", SINGLE_FIELD)
def test_the_crd_schema_refuses_what_the_model_refuses(change: Callable[[Json], Json]) -> None:
    obj = change(_rollout())
    assert model_rejects(obj)
    assert list(Draft4Validator(schema_of("Rollout")).iter_errors(obj))


def _list_type_errors(schema: Json, value: Any) -> list[str]:
    """Duplicates that x-kubernetes-list-type set/map makes the API server refuse."""
    found: list[str] = []
    if isinstance(value, list):
        if schema.get("x-kubernetes-list-type") == "set" and len(set(value)) != len(value):
            found.append("duplicate in a set")
        if schema.get("x-kubernetes-list-type") == "map":
            keys = [tuple(v.get(k) for k in schema["x-kubernetes-list-map-keys"]) for v in value]
            if len(set(keys)) != len(keys):
                found.append("duplicate key in a map list")
        for item in value:
            found += _list_type_errors(schema.get("items", {}), item)
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                found += _list_type_errors(sub, value[name])
    return found


@pytest.mark.parametrize("change", CROSS_FIELD)
def test_cel_rules_refuse_what_the_model_refuses(change: Callable[[Json], Json]) -> None:
    obj = change(_rollout())
    assert model_rejects(obj)
    assert crd_errors("Rollout", obj) or _list_type_errors(schema_of("Rollout"), obj)


def test_list_types_refuse_repeated_names() -> None:
    obj = _rollout()
    obj["spec"]["analysis"]["checks"] = [{"name": "errors", "max": 1}, {"name": "errors"}]
    obj["spec"]["gates"] = {"webhooks": [{"name": "a", "type": "event", "url": "http://a"}] * 2}
    assert model_rejects(obj)
    assert len(_list_type_errors(schema_of("Rollout"), obj)) == 2


SECRET = {"name": "slack", "key": "token"}
CHANNELS = [
    pytest.param({"slack": {"channel": "#d", "tokenSecretRef": SECRET}}, True, id="slack-token"),
    pytest.param({"slack": {"webhookUrlSecretRef": SECRET}}, True, id="slack-webhook"),
    pytest.param({"webhook": {"url": "https://hooks.example/x"}}, True, id="webhook"),
    pytest.param({}, False, id="neither"),
    pytest.param(
        {"slack": {"webhookUrlSecretRef": SECRET}, "webhook": {"url": "http://a"}}, False, id="both"
    ),
    pytest.param({"slack": {"channel": "#d"}}, False, id="slack-no-mode"),
    pytest.param({"slack": {"tokenSecretRef": SECRET}}, False, id="slack-token-no-channel"),
    pytest.param(
        {"slack": {"tokenSecretRef": SECRET, "webhookUrlSecretRef": SECRET, "channel": "#d"}},
        False,
        id="slack-two-modes",
    ),
    pytest.param({"webhook": {"url": "ftp://a"}}, False, id="webhook-not-http"),
]


@pytest.mark.parametrize(("spec", "valid"), CHANNELS)
def test_notification_channel_crd_agrees_with_the_model(spec: Json, valid: bool) -> None:
    obj = _channel(**spec)
    assert model_rejects(obj) is not valid
    assert (crd_errors("NotificationChannel", obj) == []) is valid


def _full_rollouts() -> list[Json]:
    """Model-valid rollouts that use most optional fields, as the controller writes them."""
    abtest = _rollout()
    abtest["spec"].update(
        service={
            "port": 80,
            "targetPort": 9898,
            "route": {
                "timeout": "10s",
                "retries": {"attempts": 2, "perTryTimeout": "2s", "retryOn": ["5xx"]},
                "cors": {"allowOrigins": ["*"], "maxAge": "1h"},
                "headers": {"request": {"set": {"x-a": "1"}}, "response": {"remove": ["x-b"]}},
                "mirror": {"host": "shadow", "percentage": 10.5},
                "circuitBreaker": {
                    "connectionPool": {"maxConnections": 100, "connectTimeout": "250ms"},
                    "outlierDetection": {"consecutiveErrors": 3},
                },
                "mtlsMode": "ISTIO_MUTUAL",
            },
        },
        strategy={
            "abTest": {
                "match": [
                    {"headers": {"x-canary": {"exact": "1"}}},
                    {"cookie": {"name": "canary", "value": "yes"}},
                ],
                "iterations": 5,
            }
        },
        gates={
            "webhooks": [{"name": "smoke", "type": "pre-rollout", "url": "http://smoke/"}],
            "approvals": ["promotion"],
        },
        notifications={"channels": [{"name": "deploys"}], "events": ["failed"]},
    )
    now = datetime(2025, 1, 1, tzinfo=UTC)
    abtest["status"] = {
        "phase": "Progressing",
        "canaryWeight": 20,
        "canaryRevision": "abc123",
        "checks": [
            {"name": "errors", "verdict": "pass", "time": now, "canary": {"requests": 10}},
        ],
        "analysis": [{"name": "errors", "ticks": 2, "judgeState": [0.5]}],
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
        "startedAt": now,
    }
    blue_green = _rollout()
    blue_green["spec"]["strategy"] = {"blueGreen": {"iterations": 3}, "mirror": {}}
    stepped = _rollout()
    stepped["spec"]["strategy"] = {"canary": {"stepWeight": 20, "maxWeight": 60}}
    gateway = _rollout()
    gateway["spec"]["provider"] = {
        "name": "gateway-api",
        "gatewayApi": {"parentRefs": [{"name": "public", "namespace": "edge"}]},
    }
    return [abtest, blue_green, stepped, gateway]


@pytest.mark.parametrize("obj", _full_rollouts(), ids=["ab-test", "blue-green", "step", "gw"])
def test_the_crd_accepts_what_the_model_accepts_and_writes(obj: Json) -> None:
    wire = Rollout.model_validate(obj).to_wire()  # with every default filled in
    assert crd_errors("Rollout", wire) == []
    assert _list_type_errors(schema_of("Rollout"), wire) == []


def test_policy_crds_accept_a_model_policy() -> None:
    policy = {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "ClusterAnalysisPolicy",
        "metadata": {"name": "istio"},
        "spec": {
            "variables": {"namespace": "default"},
            "checks": [
                {"name": "errors", "kind": "error-rate", "requestsQuery": "a", "failuresQuery": "b"}
            ],
        },
    }
    wire = (
        KINDS["ClusterAnalysisPolicy"]
        .model_validate(policy)
        .model_dump(mode="json", by_alias=True, exclude_none=True)
    )
    assert crd_errors("ClusterAnalysisPolicy", wire) == []
    assert crd_errors("AnalysisPolicy", {**wire, "kind": "AnalysisPolicy"}) == []
    del policy["spec"]["checks"]
    assert model_rejects(policy)
    assert crd_errors("ClusterAnalysisPolicy", policy)


# --- (e) how each kind is served --------------------------------------------------------


def test_rollout_is_served_with_status_and_printer_columns() -> None:
    crd = CRDS["Rollout"]
    names = crd["spec"]["names"]
    assert crd["metadata"]["name"] == "rollouts.canary.dev"
    assert crd["spec"]["group"] == "canary.dev"
    assert crd["spec"]["scope"] == "Namespaced"
    assert (names["plural"], names["singular"], names["shortNames"], names["categories"]) == (
        "rollouts",
        "rollout",
        ["cro"],
        ["canary"],
    )
    version = crd["spec"]["versions"][0]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    assert version["additionalPrinterColumns"] == [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Weight", "type": "integer", "jsonPath": ".status.canaryWeight"},
        {"name": "Revision", "type": "string", "jsonPath": ".status.canaryRevision"},
        {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    status = schema_of("Rollout")["properties"]["status"]["properties"]
    for column in version["additionalPrinterColumns"][:4]:
        assert column["jsonPath"].removeprefix(".status.") in status


@pytest.mark.parametrize(
    ("kind", "plural", "short", "scope"),
    [
        ("AnalysisPolicy", "analysispolicies", "ap", "Namespaced"),
        ("ClusterAnalysisPolicy", "clusteranalysispolicies", "cap", "Cluster"),
        ("NotificationChannel", "notificationchannels", "nc", "Namespaced"),
    ],
)
def test_other_kinds_are_served(kind: str, plural: str, short: str, scope: str) -> None:
    crd = CRDS[kind]
    assert crd["metadata"]["name"] == f"{plural}.canary.dev"
    assert crd["spec"]["names"]["plural"] == plural
    assert crd["spec"]["names"]["singular"] == kind.lower()
    assert crd["spec"]["names"]["shortNames"] == [short]
    assert crd["spec"]["scope"] == scope
    [version] = crd["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert "subresources" not in version


# Argo Rollouts' short names (rollouts, analysisruns, analysistemplates, clusteranalysistemplates,
# experiments); Flagger's kinds have none. kubectl resolves a short name to one resource only.
ARGO_ROLLOUTS_SHORT_NAMES = {"ro", "ar", "at", "cat", "exp"}


def test_no_short_name_is_one_argo_rollouts_uses() -> None:
    ours = {short for crd in CRDS.values() for short in crd["spec"]["names"]["shortNames"]}
    assert ours, "every kind has a short name"
    assert not ours & ARGO_ROLLOUTS_SHORT_NAMES
    assert all(crd["spec"]["names"]["categories"] == ["canary"] for crd in CRDS.values())


def test_every_loadable_kind_has_a_crd() -> None:
    assert sorted(KINDS) == sorted(CRDS) == sorted(k.kind for k in CRD_KINDS)
