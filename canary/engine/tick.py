"""One evaluation of one rollout: the working state `step` threads through its rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from canary.engine.actions import Action, Event, Route, SetRoute
from canary.engine.observations import GateAnswer, Observations
from canary.model.gates import CONFIRM_GATE_OF_POINT, ApprovalPoint, GateType
from canary.model.notification import NotificationEvent
from canary.model.rollout import Rollout
from canary.model.status import Condition, ConditionStatus, Phase, RolloutStatus

# Ticks that wait on the world (readiness, a promotion under way) come back sooner than the
# analysis interval, so a rollout is not slowed by a minute per transition.
FAST_REQUEUE_SECONDS = 5.0

_PROMOTED_CONDITION = "Promoted"


@dataclass
class Tick:
    rollout: Rollout
    status: RolloutStatus
    obs: Observations
    now: datetime
    actions: list[Action] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    fast: bool = False

    @property
    def name(self) -> str:
        return self.rollout.metadata.name

    def emit(self, action: Action) -> None:
        self.actions.append(action)

    def tell(
        self,
        reason: str,
        message: str,
        *,
        warning: bool = False,
        notification: NotificationEvent | None = None,
    ) -> None:
        self.events.append(
            Event(reason=reason, message=message, warning=warning, notification=notification)
        )

    def enter(
        self,
        phase: Phase,
        message: str,
        *,
        warning: bool = False,
        notification: NotificationEvent | None = None,
    ) -> None:
        """Move to ``phase``, saying why; an event is recorded for every change of phase."""
        changed = phase is not self.status.phase
        self.status.phase = phase
        self.status.message = message
        if changed:
            self.status.last_transition_time = self.now
            self.tell(phase.value, message, warning=warning, notification=notification)
            self._update_promoted_condition(phase, message)

    def route(self, route: Route) -> None:
        self.status.canary_weight = route.canary_weight
        self.emit(SetRoute(route=route))

    def answers(self, gate_type: GateType) -> list[GateAnswer]:
        return [a for a in self.obs.gates if a.type is gate_type]

    def webhooks_open(self, gate_type: GateType) -> tuple[bool, str]:
        """All webhooks of a type said yes; a missing answer is a no."""
        for hook in self.rollout.spec.gates.of_type(gate_type):
            answer = next((a for a in self.answers(gate_type) if a.name == hook.name), None)
            if answer is None:
                return False, f"webhook '{hook.name}' ({gate_type.value}) has not answered"
            if not answer.open:
                said = f": {answer.message}" if answer.message else ""
                return False, f"webhook '{hook.name}' ({gate_type.value}) said no{said}"
        return True, ""

    def gate_open(self, point: ApprovalPoint) -> tuple[bool, str]:
        """The point's confirm webhooks said yes and, if required, a person approved."""
        ok, why = self.webhooks_open(CONFIRM_GATE_OF_POINT[point])
        if not ok:
            return False, why
        needs_person = point in self.rollout.spec.gates.approvals
        if needs_person and point.value not in self.status.approvals:
            return False, (
                f"approval of {point.value}: run `canary approve {self.name} --point {point.value}`"
            )
        return True, ""

    def _update_promoted_condition(self, phase: Phase, message: str) -> None:
        status = {
            Phase.SUCCEEDED: ConditionStatus.TRUE,
            Phase.INITIALIZED: ConditionStatus.TRUE,
            Phase.FAILED: ConditionStatus.FALSE,
        }.get(phase, ConditionStatus.UNKNOWN)
        condition = Condition(
            type=_PROMOTED_CONDITION,
            status=status,
            reason=phase.value,
            message=message,
            last_transition_time=self.now,
        )
        others = [c for c in self.status.conditions if c.type != _PROMOTED_CONDITION]
        self.status.conditions = [*others, condition]
