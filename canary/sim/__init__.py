"""The simulator: rollouts through the real engine in virtual time, with synthetic traffic."""

from canary.sim.result import CheckOutcome, CheckSummary, SimulationResult, TimelineEntry
from canary.sim.runner import EPOCH, NEW_REVISION, STABLE_REVISION, simulate
from canary.sim.scenario import SCENARIOS, Scenario, get_scenario

__all__ = [
    "EPOCH",
    "NEW_REVISION",
    "SCENARIOS",
    "STABLE_REVISION",
    "CheckOutcome",
    "CheckSummary",
    "Scenario",
    "SimulationResult",
    "TimelineEntry",
    "get_scenario",
    "simulate",
]
