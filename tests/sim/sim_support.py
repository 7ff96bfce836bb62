"""A small Rollout for simulator tests, judged by the threshold judge."""

from __future__ import annotations

from pathlib import Path

from canary.model import Rollout
from canary.model.loader import load_rollout

ROLLOUT_YAML = """\
apiVersion: canary.dev/v1alpha1
kind: Rollout
metadata:
  name: podinfo
  namespace: test
spec:
  targetRef:
    name: podinfo
  service:
    port: 9898
  provider:
    name: istio
  strategy:
{strategy}
  analysis:
    interval: 1m
    judge: threshold
"""

WEIGHTS = "    canary:\n      weights: [10, 25, 50]"
AB_TEST = (
    "    abTest:\n      iterations: 3\n      match:\n        - headers:\n"
    "            x-canary:\n              exact: insider"
)
BLUE_GREEN = "    blueGreen:\n      iterations: 3\n    mirror:\n      percentage: 100"


def write_rollout(directory: Path, strategy: str = WEIGHTS, name: str = "rollout.yaml") -> Path:
    path = directory / name
    path.write_text(ROLLOUT_YAML.format(strategy=strategy))
    return path


def rollout(directory: Path, strategy: str = WEIGHTS) -> Rollout:
    return load_rollout(write_rollout(directory, strategy))
