"""A state folder laid out as the local runner lays it out, driven tick by tick by the real
engine (through `engine_harness.World`), with the commands taken from the store each tick."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from engine_harness import T0, World, rollout

from canary.engine import StepResult
from canary.gates.api.filestore import FileStore, publish_rollout
from canary.local.state import LocalState, save_state
from canary.model import CheckResult, Verdict
from canary.model.status import SideEvidence

CI_TOKEN = "ci-token-0123456789abcdef"
VIEWER_TOKEN = "viewer-token-0123456789abcdef"
TOKENS = (("ci", "operate", CI_TOKEN), ("viewer", "read", VIEWER_TOKEN))
OPERATE = {"Authorization": f"Bearer {CI_TOKEN}"}
READ = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
ROLLOUT = "/api/v1/namespaces/test/rollouts/podinfo"


def measured(verdict: Verdict = Verdict.PASS) -> list[CheckResult]:
    """Check results carrying numbers, as the analysis returns them."""
    return [
        CheckResult(
            name="error-rate",
            verdict=verdict,
            time=T0,
            judge="sequential",
            canary=SideEvidence(requests=1200, failures=18, value=1.5),
            primary=SideEvidence(requests=4800, failures=24, value=0.5),
            statistic=3.25,
            message=f"error rate 1.5% vs 0.5%: {verdict.value}",
        ),
        CheckResult(
            name="latency",
            verdict=Verdict.PASS,
            time=T0,
            canary=SideEvidence(requests=1200, failures=7, value=412.0),
            primary=SideEvidence(requests=4800, failures=30, value=398.0),
            message="p99 412ms vs 398ms",
        ),
    ]


@dataclass
class Workspace:
    state_dir: Path
    tokens_file: Path

    def __post_init__(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        lines = [f"# name scope token\n{n} {s} {t}" for n, s, t in TOKENS]
        self.tokens_file.write_text("\n".join(lines) + "\n")

    @property
    def audit_path(self) -> Path:
        return self.state_dir / "audit.jsonl"

    @property
    def store(self) -> FileStore:
        return FileStore(self.state_dir)

    def state_path(self, world: World) -> Path:
        return self.state_dir / f"{world.ro.metadata.name}.state.json"

    def save(self, world: World, *, publish: bool = True) -> Path:
        """Write the world's status as the runner would (and publish its Rollout)."""
        assert world.status is not None
        path = self.state_path(world)
        save_state(path, LocalState(rollout=world.ro.key, status=world.status))
        if publish:
            publish_rollout(path, world.ro, world.target)
        return path

    def tick(self, world: World, **kwargs: Any) -> StepResult:
        """One runner tick: take the commands from the store, step the engine, save."""
        namespace, _, name = world.ro.key.partition("/")
        commands = self.store.take_commands(namespace, name)
        result = world.tick(commands=commands, **kwargs)
        self.save(world)
        return result


@dataclass
class Served:
    url: str
    client: httpx.Client
    workspace: Workspace


def progressing(workspace: Workspace, **spec: Any) -> World:
    """A rollout at its first step with measured checks, saved in the workspace."""
    world = World(ro=rollout(**spec)).initialized().progressing()
    world.tick(checks=measured())
    workspace.save(world)
    return world
