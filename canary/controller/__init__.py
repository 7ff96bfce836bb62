"""The Kubernetes shell: watches Rollouts and their Deployments, ticks each Rollout on its own
schedule (scheduling.py), runs the engine, applies its actions with the official client, writes
status, records Events; leader election on a Lease; /metrics, /healthz, /readyz.

docs/controller.md describes how it runs, what it watches and writes, and the RBAC it needs.
"""

from canary.controller.controller import Controller
from canary.controller.kube import Kube, KubeError
from canary.controller.leader import LeaderElector, LeaseSettings
from canary.controller.settings import ControllerSettings

__all__ = [
    "Controller",
    "ControllerSettings",
    "Kube",
    "KubeError",
    "LeaderElector",
    "LeaseSettings",
]
