"""A cluster for the CLI's direct Kubernetes mode: the project's test API server with canary's
CRDs, a kubeconfig for it, and a Rollout whose status the real engine writes tick by tick,
taking its commands from its RolloutCommand objects as the controller does."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import config

from canary.controller.commands import KubeRolloutStore
from canary.controller.kube import Kube
from canary.engine import StepResult
from canary.testing import ApiServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from api_support import measured
from engine_harness import World, rollout

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "charts" / "canary" / "crds"
NAMESPACE = "test"
ROLLOUTS = "canary.dev/v1alpha1"
USER = "canary-test"
"""The user the kubeconfig's token authenticates as (SelfSubjectReview): who asked."""


def crd_files() -> list[Path]:
    files = sorted(CRDS.glob("*.yaml"))
    if not files:
        raise AssertionError(f"canary's CRDs are missing from {CRDS}: run `make crds`")
    return files


@dataclass
class KubeRollout:
    """The Rollout test/podinfo in the API server, stepped by the real engine."""

    api: ApiServer
    kubeconfig: Path
    world: World

    def __post_init__(self) -> None:
        self._client = config.new_client_from_config(config_file=str(self.kubeconfig))
        self.kube = Kube(self._client)
        self.api.apply({"apiVersion": ROLLOUTS, "kind": "Rollout", **self.world.ro.to_wire()})
        self.save()

    def save(self) -> None:
        assert self.world.status is not None
        self.api.update_status(
            ROLLOUTS, "Rollout", "podinfo", self.world.status.to_wire(), NAMESPACE
        )

    def tick(self, **kwargs: Any) -> StepResult:
        """One controller tick: take the commands (RolloutCommands), step, write status."""
        commands = KubeRolloutStore(self.kube, (NAMESPACE,)).take_commands(NAMESPACE, "podinfo")
        result = self.world.tick(commands=commands, **kwargs)
        self.save()
        return result

    def queued(self) -> list[dict[str, Any]]:
        """The specs of the RolloutCommands waiting, in creation order."""
        found = self.api.list(ROLLOUTS, "RolloutCommand", NAMESPACE)
        found.sort(key=lambda o: int(o["metadata"]["resourceVersion"]))
        return [o["spec"] for o in found]

    def events(self) -> list[dict[str, Any]]:
        return self.api.list("v1", "Event", NAMESPACE)

    def close(self) -> None:
        self._client.close()


def progressing_in(api: ApiServer, kubeconfig: Path, **spec: Any) -> KubeRollout:
    """test/podinfo at its second step (10%) with measured checks."""
    world = World(ro=rollout(**spec)).initialized().progressing()
    world.tick(checks=measured())
    return KubeRollout(api, kubeconfig, world)
