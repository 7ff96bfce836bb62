"""What one notification says: an engine event with the status it left, ready to render.

A `Notice` is self-contained (no reference back to the Rollout object), so it can wait in a
queue, be written to a file and be rendered later by any channel.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from canary.engine.actions import Event
from canary.engine.plan import SUSPENDED
from canary.model.analysis import CheckKind
from canary.model.evidence import latency_evidence
from canary.model.gates import ApprovalPoint
from canary.model.notification import NotificationEvent
from canary.model.rollout import Rollout
from canary.model.status import CheckResult, Phase, RolloutStatus, SideEvidence
from canary.model.strategy import StrategyKind

FINAL_EVENTS = frozenset({NotificationEvent.PROMOTED, NotificationEvent.FAILED})
"""Events after which a revision's rollout is over (the thread gets its timeline)."""


class TimelinePoint(BaseModel):
    time: datetime
    weight: int
    phase: Phase
    failed: bool = False


class Notice(BaseModel):
    """One engine event of one rollout, with what the status showed when it happened."""

    name: str
    namespace: str
    revision: str | None = None
    stable_revision: str | None = None
    started_at: datetime | None = None
    event: NotificationEvent
    reason: str
    message: str
    warning: bool = False
    time: datetime
    phase: Phase
    canary_weight: int = 0
    progress: str = Field(default="", description="'step 2 of 4', 'iteration 3 of 10'.")
    failed_checks: int = 0
    failure_limit: int = 0
    status_message: str = ""
    waiting_for: str | None = None
    commands: list[str] = Field(
        default_factory=list, description="What a person must run for the rollout to go on."
    )
    link: str | None = Field(default=None, description="The rollout's page on canary's API.")
    checks: list[CheckResult] = Field(default_factory=list, description="Latest, one per check.")
    units: dict[str, str] = Field(default_factory=dict, description="Unit per check name.")
    timeline: list[TimelinePoint] = Field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def waiting_for_person(self) -> bool:
        return bool(self.commands)

    @property
    def final(self) -> bool:
        return self.event in FINAL_EVENTS

    def dedupe_key(self) -> str:
        """Equal for repeats of one event (a tick replayed after a crash), not across runs."""
        started = self.started_at.isoformat() if self.started_at else "-"
        return "|".join(
            (self.key, self.revision or "-", started, self.event.value, self.reason, self.message)
        )


def build_notice(
    rollout: Rollout,
    status: RolloutStatus,
    event: Event,
    now: datetime,
    *,
    timeline: list[TimelinePoint] | None = None,
    link: str | None = None,
) -> Notice:
    """The notice of ``event`` (which must carry a notification kind)."""
    if event.notification is None:
        raise ValueError(f"event {event.reason} is not a notification")
    namespace = rollout.metadata.namespace or "default"
    waiting = status.phase in (Phase.WAITING, Phase.PAUSED) and status.waiting_for is not None
    return Notice(
        name=rollout.metadata.name,
        namespace=namespace,
        revision=status.canary_revision,
        stable_revision=status.stable_revision,
        started_at=status.started_at,
        event=event.notification,
        reason=event.reason,
        message=event.message,
        warning=event.warning,
        time=now,
        phase=status.phase,
        canary_weight=status.canary_weight,
        progress=progress_text(rollout, status),
        failed_checks=status.failed_checks,
        failure_limit=rollout.spec.analysis.failure_limit,
        status_message=status.message,
        waiting_for=status.waiting_for if waiting else None,
        commands=person_commands(rollout, status) if waiting else [],
        link=link,
        checks=latest_checks(status.checks),
        units=check_units(rollout, status.checks),
        timeline=list(timeline or []),
    )


def progress_text(rollout: Rollout, status: RolloutStatus) -> str:
    strategy = rollout.spec.strategy
    if strategy.kind is StrategyKind.CANARY:
        schedule = strategy.canary_or_default().schedule()
        return f"step {min(status.step_index + 1, len(schedule))} of {len(schedule)}"
    iterations = (
        strategy.ab_test.iterations
        if strategy.ab_test is not None
        else strategy.blue_green.iterations
        if strategy.blue_green is not None
        else 0
    )
    return f"iteration {status.iteration} of {iterations}"


def person_commands(rollout: Rollout, status: RolloutStatus) -> list[str]:
    """Exactly what to run when the rollout waits for a person; empty when it waits on a hook."""
    name = rollout.metadata.name
    namespace = rollout.metadata.namespace
    ns = f" -n {namespace}" if namespace and namespace != "default" else ""
    if status.waiting_for == SUSPENDED:
        patch = """'{"spec":{"suspend":false}}'"""
        return [f"kubectl patch rollouts.canary.dev {name}{ns} --type merge -p {patch}"]
    try:
        point = ApprovalPoint(status.waiting_for or "")
    except ValueError:
        return []
    if point not in rollout.spec.gates.approvals or point.value in status.approvals:
        return []
    return [
        f"canary approve {name} --point {point.value}{ns}",
        f"kubectl canary approve {name} --point {point.value}{ns}",
    ]


def latest_checks(results: list[CheckResult]) -> list[CheckResult]:
    """The most recent result of each check, in the order the checks first appear."""
    latest: dict[str, CheckResult] = {}
    for result in results:
        previous = latest.get(result.name)
        if previous is None or result.time >= previous.time:
            latest[result.name] = result
    return list(latest.values())


def check_units(rollout: Rollout, results: list[CheckResult]) -> dict[str, str]:
    """The unit of each check's value: % for error rates, ms for latencies, none for custom."""
    kinds = {c.name: c.kind for c in rollout.spec.analysis.checks if c.kind is not None}
    units: dict[str, str] = {}
    for result in results:
        kind = kinds.get(result.name)
        lowered = result.name.lower()
        if kind is CheckKind.ERROR_RATE or (kind is None and "error" in lowered):
            units[result.name] = "%"
        elif kind is CheckKind.LATENCY or (kind is None and "latency" in lowered):
            units[result.name] = "ms"
    return units


def check_summary(check: CheckResult, unit: str = "") -> str:
    """'error-rate: canary 2.4% (n=812) vs primary 0.5% (n=9,040) — fail'; a latency check
    that says its kind reads 'canary 1.2% >500ms (12/1000), p99~520ms (500-1000)' (its value
    is the slow share for one judge and a quantile for others: the words say which)."""
    parts = [_side("canary", check.canary, unit, check)]
    if check.primary is not None:
        parts.append(_side("primary", check.primary, unit, check))
    numbers = " vs ".join(p for p in parts if p)
    if check.no_data:
        numbers = f"{numbers} (no data)" if numbers else "no data"
    body = f"{check.name}: {numbers}" if numbers else check.name
    return f"{body} — {check.verdict.value}"


def _side(label: str, side: SideEvidence | None, unit: str, check: CheckResult) -> str:
    if side is None:
        return ""
    if check.kind is CheckKind.LATENCY:
        shown = latency_evidence(side, check)
        if shown:
            return f"{label} {shown}"
    text = label
    if side.value is not None:
        sep = "" if unit in ("", "%") else " "
        text += f" {_number(side.value)}{sep}{unit}"
    details = []
    if side.requests is not None:
        details.append(f"n={side.requests:,}")
    if side.failures is not None:
        details.append(f"bad={side.failures:,}")
    if details:
        text += f" ({', '.join(details)})"
    return text


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def describe_wait(notice: Notice) -> str:
    """One sentence for a rollout that waits for a person, with the command to run."""
    if not notice.commands:
        return ""
    if notice.waiting_for == SUSPENDED:
        return f"Suspended (spec.suspend is true). To resume, run `{notice.commands[0]}`"
    alternatives = " or ".join(f"`{c}`" for c in notice.commands)
    text = f"Waiting for a person to approve *{notice.waiting_for}*. Run {alternatives}"
    if notice.link:
        text += f", or open {notice.link}"
    return text
