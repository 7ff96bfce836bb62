"""RolloutCommand: a person's or a pipeline's request (approve, promote, abort, retry) as an
object of its own, so that Kubernetes RBAC grants it apart from editing the Rollout (verb
``create`` on ``rolloutcommands.canary.dev``) and an admission policy checks who asks.

``spec.user`` must be the Kubernetes user who creates the object: the ValidatingAdmissionPolicy
of `admission_policy` refuses any other value (``request.userInfo.username``), so the name in
the audit Event is the authenticated one. The controller's own ServiceAccount (the canary API)
creates commands for its token holders and says so in ``spec.onBehalfOf``; nobody else may set
that field. ``spec`` cannot change once created.

The controller applies a command once: its ``metadata.uid`` is recorded in the Rollout's
``status.appliedCommands`` in the same status write that records its effect, and only then is
the object deleted (docs/security.md, "Commands").
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from canary.model.base import CamelModel, ObjectName, ShortObjectName
from canary.model.gates import ApprovalPoint
from canary.model.meta import ObjectMeta

ROLLOUT_LABEL = "canary.dev/rollout"
"""Label of a command: the Rollout it is for (the controller lists commands by it)."""

MAX_USER = 253


class RolloutCommandSpec(CamelModel):
    rollout: ShortObjectName = Field(description="The Rollout, in the command's namespace.")
    action: Literal["approve", "promote", "abort", "retry"] = Field(
        description="approve a gate, promote now, abort (roll back), or retry a failed revision."
    )
    point: ApprovalPoint | None = Field(
        default=None, description="For approve: which point; the one waited on when omitted."
    )
    user: str = Field(
        min_length=1,
        max_length=MAX_USER,
        description="Who asks: the Kubernetes user creating the command (the admission policy "
        "refuses any other name).",
    )
    on_behalf_of: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$",
        description="Set by the canary API only: the name of the API token that asked.",
    )

    @model_validator(mode="after")
    def _point_for_approve(self) -> RolloutCommandSpec:
        if self.point is not None and self.action != "approve":
            raise ValueError(f"'point' belongs to approve, not {self.action}")
        return self


class CommandMeta(ObjectMeta):
    """A command is usually created with ``generateName``: its name comes from the server."""

    name: ObjectName | None = None  # type: ignore[assignment]
    generate_name: str | None = Field(default=None, max_length=200)


class RolloutCommand(CamelModel):
    api_version: Literal["canary.dev/v1alpha1"] = "canary.dev/v1alpha1"
    kind: Literal["RolloutCommand"] = "RolloutCommand"
    metadata: CommandMeta
    spec: RolloutCommandSpec

    @property
    def asked_by(self) -> str:
        """Who asked, as the audit shows it: the authenticated user, or the API's token."""
        if self.spec.on_behalf_of:
            return f"{self.spec.on_behalf_of} (canary API token, via {self.spec.user})"
        return self.spec.user


def admission_policy(controller_user: str, name: str = "canary-rollout-commands") -> list[Any]:
    """The ValidatingAdmissionPolicy and its binding that make a RolloutCommand's author
    authentic. ``controller_user`` is the controller's ServiceAccount as Kubernetes names it
    (``system:serviceaccount:NAMESPACE:NAME``): the only user that may set ``onBehalfOf``."""
    quoted = controller_user.replace("\\", "\\\\").replace("'", "\\'")
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["canary.dev"],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["rolloutcommands"],
                    }
                ]
            },
            "validations": [
                {
                    "expression": "object.spec.user == request.userInfo.username",
                    "messageExpression": "'spec.user must be the user who creates the command, "
                    "' + request.userInfo.username",
                    "reason": "Forbidden",
                },
                {
                    "expression": "!has(object.spec.onBehalfOf) || "
                    f"request.userInfo.username == '{quoted}'",
                    "message": "spec.onBehalfOf is set by the canary API only",
                    "reason": "Forbidden",
                },
                {
                    "expression": "has(object.metadata.labels) && "
                    f"'{ROLLOUT_LABEL}' in object.metadata.labels && "
                    f"object.metadata.labels['{ROLLOUT_LABEL}'] == object.spec.rollout",
                    "message": f"label {ROLLOUT_LABEL} must name spec.rollout",
                    "reason": "Invalid",
                },
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }
    return [policy, binding]


def new_command(
    namespace: str,
    rollout: str,
    action: str,
    user: str,
    *,
    point: ApprovalPoint | None = None,
    on_behalf_of: str | None = None,
) -> dict[str, Any]:
    """The object to create (its name generated by the API server)."""
    spec: dict[str, Any] = {"rollout": rollout, "action": action, "user": user}
    if point is not None:
        spec["point"] = point.value
    if on_behalf_of is not None:
        spec["onBehalfOf"] = on_behalf_of
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "RolloutCommand",
        "metadata": {
            "generateName": f"{rollout[:40]}-{action}-",
            "namespace": namespace,
            "labels": {ROLLOUT_LABEL: rollout},
        },
        "spec": spec,
    }
