"""What a tick observes besides the workload: the fresh RolloutCommands, the gating webhooks'
answers, and the analysis (Prometheus) when the plan asks for it.

Each look queries the time since the previous one (`canary.engine.timing.analysis_window`);
the canary is the target Deployment, the primary ``<target>-primary``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from canary.analysis.analyse import analyse
from canary.analysis.provider import MetricsProvider, Targets
from canary.controller.commands import Taken
from canary.controller.workloads import namespace_of
from canary.engine import Needs, Observations, WorkloadState
from canary.engine.timing import analysis_window
from canary.gates.webhooks import WebhookCaller
from canary.model.analysis import CheckSpec
from canary.model.rollout import Rollout
from canary.model.status import CheckResult, CheckState, RolloutStatus


@dataclass(frozen=True)
class Observer:
    """Asks the gates and runs the analysis for a tick."""

    provider: MetricsProvider
    webhooks: WebhookCaller

    def observe(
        self,
        rollout: Rollout,
        status: RolloutStatus,
        needs: Needs,
        checks: list[CheckSpec],
        workload: WorkloadState,
        taken: Taken,
        look: float,
        now: datetime,
    ) -> Observations:
        """The tick's observations for `canary.engine.step`: what ``needs`` asks for."""
        commands = [p.command for p in taken.fresh]
        # the commands stay until the status write records them (commands.py)
        answers = self.webhooks.ask(rollout, status, needs.webhooks, now) if needs.webhooks else []
        results: list[CheckResult] = []
        states: list[CheckState] = []
        if needs.analyse:
            results, states = analyse(
                rollout,
                status,
                checks,
                self.provider,
                targets_of(rollout),
                analysis_window(rollout, status, now),
                now,
            )
        return Observations(
            workload=workload,
            checks=results,
            check_states=states,
            gates=answers,
            commands=commands,
            look_interval=look,
        )


def targets_of(rollout: Rollout) -> Targets:
    name = rollout.spec.target_ref.name
    return Targets(
        namespace=namespace_of(rollout), target=name, canary=name, primary=f"{name}-primary"
    )
