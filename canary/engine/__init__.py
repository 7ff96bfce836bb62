"""The pure rollout engine: `plan` says what a tick needs, `step` decides what happens."""

from canary.engine.actions import (
    Action,
    CallWebhook,
    Event,
    InitializePrimary,
    PromoteCanary,
    RestorePrimary,
    Route,
    ScaleCanaryDown,
    ScaleCanaryUp,
    SetRoute,
    StepResult,
)
from canary.engine.observations import (
    Command,
    CommandKind,
    GateAnswer,
    Observations,
    WorkloadState,
)
from canary.engine.plan import Needs, plan
from canary.engine.progress import tick_verdict
from canary.engine.step import step

__all__ = [
    "Action",
    "CallWebhook",
    "Command",
    "CommandKind",
    "Event",
    "GateAnswer",
    "InitializePrimary",
    "Needs",
    "Observations",
    "PromoteCanary",
    "RestorePrimary",
    "Route",
    "ScaleCanaryDown",
    "ScaleCanaryUp",
    "SetRoute",
    "StepResult",
    "WorkloadState",
    "plan",
    "step",
    "tick_verdict",
]
