"""Pydantic models of every resource canary reads and writes: the single source of truth."""

from canary.model.analysis import AnalysisSpec, CheckKind, CheckSpec, JudgeName, PolicyRef
from canary.model.duration import Duration, DurationError, format_duration, parse_duration
from canary.model.gates import ApprovalPoint, GatesSpec, GateType, Webhook
from canary.model.meta import ObjectMeta
from canary.model.notification import NotificationChannel, NotificationEvent, NotificationsSpec
from canary.model.policy import AnalysisPolicy, AnalysisPolicySpec, ClusterAnalysisPolicy
from canary.model.provider import ProviderName, ProviderSpec
from canary.model.rollout import API_VERSION, GROUP, VERSION, Rollout, RolloutSpec, ServiceSpec
from canary.model.route import RouteSettings
from canary.model.status import (
    ACTIVE_PHASES,
    IDLE_PHASES,
    CheckResult,
    CheckState,
    Condition,
    Phase,
    RolloutStatus,
    SideEvidence,
    Verdict,
)
from canary.model.strategy import Strategy, StrategyKind

__all__ = [
    "ACTIVE_PHASES",
    "API_VERSION",
    "GROUP",
    "IDLE_PHASES",
    "VERSION",
    "AnalysisPolicy",
    "AnalysisPolicySpec",
    "AnalysisSpec",
    "ApprovalPoint",
    "CheckKind",
    "CheckResult",
    "CheckSpec",
    "CheckState",
    "ClusterAnalysisPolicy",
    "Condition",
    "Duration",
    "DurationError",
    "GateType",
    "GatesSpec",
    "JudgeName",
    "NotificationChannel",
    "NotificationEvent",
    "NotificationsSpec",
    "ObjectMeta",
    "Phase",
    "PolicyRef",
    "ProviderName",
    "ProviderSpec",
    "Rollout",
    "RolloutSpec",
    "RolloutStatus",
    "RouteSettings",
    "ServiceSpec",
    "SideEvidence",
    "Strategy",
    "StrategyKind",
    "Verdict",
    "Webhook",
    "format_duration",
    "parse_duration",
]
