"""RBAC as the API server decides it, for the chart's tests: docs/controller.md's rules, an
evaluator of rendered Roles and bindings, and the copy guard's CEL rules evaluated with
cel-python (templates/admission-policy.yaml)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import celpy
import yaml
from chart_support import DOCS, NAMESPACE

Json = dict[str, Any]
Rule = dict[str, list[str]]


# --- RBAC ----------------------------------------------------------------------------------


def documented_rbac() -> tuple[list[Rule], list[Rule]]:
    """docs/controller.md's RBAC: (the ClusterRole's rules, the Lease Role's rules). The same
    block tests/controller/test_operations.py checks against the controller's requests."""
    text = (DOCS / "controller.md").read_text(encoding="utf-8")
    block = text.split("## RBAC", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    cluster_part, _, role_part = block.partition("# Role in the Lease's namespace")
    return yaml.safe_load(cluster_part), yaml.safe_load(role_part)


@dataclass(frozen=True)
class Request:
    """One API request as RBAC sees it."""

    verb: str
    group: str
    resource: str  # plural, or plural/subresource
    namespace: str | None  # None: cluster-scoped, or across all namespaces

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else " cluster-wide"
        return f"{self.verb} {self.group or 'core'}/{self.resource}{where}"


def request_of(method: str, target: str) -> Request | None:
    """The RBAC request of an HTTP request to the API server (None: not a resource path)."""
    path, _, query = target.partition("?")
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) > 2:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)
    if verb is None:
        named = len(rest) > 1
        verb = "get" if named else ("watch" if re.search(r"\bwatch=(1|true)", query) else "list")
    return Request(verb, group, resource, namespace)


def _rule_allows(rule: Json, request: Request) -> bool:
    return (
        (request.verb in rule["verbs"] or "*" in rule["verbs"])
        and request.group in rule["apiGroups"]
        and request.resource in rule["resources"]
        and not rule.get("resourceNames")
    )


def rbac_allows(objects: list[Json], subject: tuple[str, str], request: Request) -> bool:
    """Whether the rendered Roles, ClusterRoles and bindings let the ServiceAccount
    `subject` (namespace, name) make `request`, as the API server's RBAC authorizer decides."""
    roles = {
        (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o.get("rules") or []
        for o in objects
        if o["kind"] in ("Role", "ClusterRole")
    }
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = {
            (s.get("namespace"), s["name"])
            for s in binding.get("subjects") or []
            if s["kind"] == "ServiceAccount"
        }
        if subject not in subjects:
            continue
        bound_in = binding["metadata"].get("namespace")
        if binding["kind"] == "RoleBinding" and request.namespace != bound_in:
            continue
        ref = binding["roleRef"]
        role_ns = bound_in if ref["kind"] == "Role" else None
        rules = roles.get((ref["kind"], role_ns, ref["name"]))
        if rules is None:
            raise AssertionError(f"{binding['metadata']['name']}: no {ref['kind']} {ref['name']}")
        if any(_rule_allows(rule, request) for rule in rules):
            return True
    return False


# --- the copy guard (templates/admission-policy.yaml), evaluated ------------------------------

CONTROLLER_USER = f"system:serviceaccount:{NAMESPACE}:canary"


def _program(expression: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(expression))


@dataclass(frozen=True)
class Verdict:
    applies: bool  # the matchConditions held: the policy judges this request
    refusals: tuple[str, ...]  # the messages of the validations that failed

    @property
    def admitted(self) -> bool:
        return not self.refusals


def judge(
    policy: Json, operation: str, obj: Json | None, old: Json | None, user: str | None = None
) -> Verdict:
    """The policy's verdict on one admission request, as the API server evaluates it."""
    subject = obj if obj is not None else old
    assert subject is not None
    resource = {"ConfigMap": "configmaps", "Secret": "secrets"}[subject["kind"]]
    rules = policy["spec"]["matchConstraints"]["resourceRules"]
    if not any(resource in r["resources"] and operation in r["operations"] for r in rules):
        return Verdict(False, ())
    request = {
        "operation": operation,
        "namespace": subject["metadata"]["namespace"],
        "name": subject["metadata"]["name"],
        "userInfo": {"username": user or CONTROLLER_USER},
        "resource": {"group": "", "version": "v1", "resource": resource},
    }
    activation = {
        "request": celpy.json_to_cel(request),
        "object": celpy.json_to_cel(obj),
        "oldObject": celpy.json_to_cel(old),
    }
    for condition in policy["spec"]["matchConditions"]:
        if not bool(_program(condition["expression"]).evaluate(activation)):
            return Verdict(False, ())
    refusals = []
    for validation in policy["spec"]["validations"]:
        result = _program(validation["expression"]).evaluate(activation)
        assert isinstance(result, celpy.celtypes.BoolType), (validation, result)
        if not bool(result):
            refusals.append(validation["message"])
    return Verdict(True, tuple(refusals))
