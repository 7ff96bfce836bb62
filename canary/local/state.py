"""What local mode remembers between runs: the state file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import Field, ValidationError

from canary.engine import Route
from canary.local.workload import WorkloadRecord
from canary.model.base import CamelModel
from canary.model.rollout import Rollout
from canary.model.status import Phase, RolloutStatus


class LocalRunError(Exception):
    """Local mode cannot run this Rollout or state file; the message says what to change."""


STATE_FORMAT = 1


class LocalState(CamelModel):
    """Everything local mode remembers between runs."""

    format: int = STATE_FORMAT
    rollout: str = Field(description="namespace/name of the Rollout this state belongs to.")
    status: RolloutStatus
    workload: WorkloadRecord = Field(default_factory=WorkloadRecord)
    route: Route = Field(default_factory=Route, description="The route last applied.")


def load_state(path: Path, rollout: Rollout, stable: str) -> LocalState:
    """The state file's contents, or a fresh state whose primary already runs ``stable``."""
    if not path.exists():
        status = RolloutStatus(phase=Phase.INITIALIZED, stable_revision=stable)
        return LocalState(
            rollout=rollout.key,
            status=status,
            workload=WorkloadRecord(primary_revision=stable),
        )
    try:
        state = LocalState.model_validate_json(path.read_text())
    except (OSError, ValidationError, json.JSONDecodeError) as exc:
        raise LocalRunError(
            f"state file {path} is unreadable ({exc}); move it away to start afresh"
        ) from None
    if state.rollout != rollout.key:
        raise LocalRunError(
            f"state file {path} belongs to Rollout {state.rollout}, not {rollout.key}: "
            "give another --state file"
        )
    return state


def save_state(path: Path, state: LocalState) -> None:
    """Write atomically: a crash mid-write leaves the previous state, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(state.model_dump_json(by_alias=True, indent=2))
    os.replace(tmp, path)
