"""Who is asking, and ValidatingAdmissionPolicies, for the test API server.

Users: a bearer token maps to a user (name and groups), as a kube-apiserver static token file
does; a request with no known token is the default user (``kubernetes-admin``, group
``system:masters``), so tests that do not care keep working. ``SelfSubjectReview`` answers with
the caller's user, as Kubernetes 1.28+ does (`kubectl auth whoami`).

Admission: the ValidatingAdmissionPolicies installed with `install` (the shipped YAML, as the
chart would apply it) are evaluated with cel-python on every create and update of a matching
resource, with ``object``, ``oldObject`` and ``request`` (``userInfo``, ``operation``,
``namespace``) as Kubernetes binds them. Unlike the CRD rules of canary.testing.cel, a policy
expression that cannot be compiled or evaluated refuses the request (``failurePolicy: Fail``),
so a gap here shows as a failing test, never as a silent pass. Bindings are taken as binding
every policy with ``Deny``; match conditions, params and audit annotations are not supported
(an error says so).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from canary.testing.cel import celpy
from canary.testing.errors import ApiError

Json = dict[str, Any]

DEFAULT_USER = "kubernetes-admin"


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ("system:authenticated",)

    def info(self) -> Json:
        return {"username": self.name, "groups": list(self.groups), "uid": ""}


ADMIN = User(DEFAULT_USER, ("system:masters", "system:authenticated"))


@dataclass
class Identities:
    """Bearer tokens and their users; thread-safe (the server runs on its own thread)."""

    _users: dict[str, User] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, user: User) -> str:
        token = secrets.token_hex(16)
        with self._lock:
            self._users[token] = user
        return token

    def of(self, headers: Mapping[str, str]) -> User:
        """The user of a request: its bearer token's, else the default user; impersonated
        (``Impersonate-User``, ``kubectl --as``) when asked, as the default user may. kubectl
        sends no token over plain HTTP, so tests of kubectl use ``--as``."""
        kind, _, token = (headers.get("Authorization") or "").partition(" ")
        with self._lock:
            user = self._users.get(token.strip(), ADMIN) if kind.lower() == "bearer" else ADMIN
        impersonated = headers.get("Impersonate-User")
        if impersonated and user is ADMIN:
            groups = (
                tuple(headers.getall("Impersonate-Group", [])) if hasattr(headers, "getall") else ()
            )
            return User(impersonated, (*groups, "system:authenticated"))
        return user


class PolicyError(ValueError):
    """A policy this evaluator does not support."""


@dataclass
class Admission:
    """The installed ValidatingAdmissionPolicies."""

    policies: list[Json] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, docs: list[Json]) -> None:
        for doc in docs:
            if doc.get("kind") == "ValidatingAdmissionPolicy":
                spec = doc.get("spec") or {}
                for unsupported in ("paramKind", "matchConditions", "variables"):
                    if unsupported in spec:
                        raise PolicyError(f"{unsupported} is not supported by the test server")
                with self._lock:
                    self.policies.append(doc)

    def check(
        self,
        group: str,
        plural: str,
        operation: str,
        namespace: str,
        obj: Json,
        old: Json | None,
        user: User,
    ) -> None:
        """Raise ApiError 422 (Invalid) or 403 (Forbidden) as the first failing policy says."""
        with self._lock:
            matching = [p for p in self.policies if _matches(p, group, plural, operation)]
        request = {
            "operation": operation,
            "namespace": namespace,
            "userInfo": user.info(),
            "resource": {"group": group, "resource": plural},
        }
        for policy in matching:
            for validation in (policy.get("spec") or {}).get("validations") or []:
                _validate(policy, validation, obj, old, request)


def _matches(policy: Json, group: str, plural: str, operation: str) -> bool:
    rules = ((policy.get("spec") or {}).get("matchConstraints") or {}).get("resourceRules") or []
    for rule in rules:
        groups = rule.get("apiGroups") or []
        resources = rule.get("resources") or []
        operations = rule.get("operations") or []
        if (
            ("*" in groups or group in groups)
            and ("*" in resources or plural in resources)
            and ("*" in operations or operation in operations)
        ):
            return True
    return False


def _evaluate(expression: str, activation: Json) -> Any:
    if celpy is None:
        raise PolicyError("cel-python is not installed: admission policies cannot be evaluated")
    env = celpy.Environment()
    program = env.program(env.compile(expression))
    return program.evaluate({k: celpy.json_to_cel(v) for k, v in activation.items()})


def _validate(policy: Json, validation: Json, obj: Json, old: Json | None, request: Json) -> None:
    name = (policy.get("metadata") or {}).get("name", "?")
    activation = {"object": obj, "oldObject": old, "request": request}
    expression = str(validation.get("expression", ""))
    try:
        result = _evaluate(expression, activation)
        allowed = isinstance(result, celpy.celtypes.BoolType) and bool(result)
    except Exception as exc:  # failurePolicy Fail: what cannot be evaluated is refused
        raise ApiError(
            403, f"ValidatingAdmissionPolicy '{name}' could not evaluate {expression!r}: {exc}"
        ) from exc
    if allowed:
        return
    message = validation.get("message") or f"failed expression: {expression}"
    if validation.get("messageExpression"):
        # Kubernetes falls back to the message too when the expression fails
        with contextlib.suppress(Exception):
            message = str(_evaluate(str(validation["messageExpression"]), activation))
    status = 422 if validation.get("reason") == "Invalid" else 403
    raise ApiError(
        status,
        f"{(obj.get('metadata') or {}).get('name') or 'the object'} is forbidden: "
        f"ValidatingAdmissionPolicy '{name}' with binding '{name}' denied request: {message}",
    )
