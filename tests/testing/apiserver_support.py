"""Objects the test API server's tests create."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CANARY_CRDS = ROOT / "charts" / "canary" / "crds"
MESH_CRDS = ROOT / "tests" / "data" / "mesh-crds"


def deployment(name: str = "web", replicas: int = 2, image: str = "app:1") -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "test", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "ports": [{"containerPort": 8080, "name": "http"}],
                        }
                    ]
                },
            },
        },
    }


def rollout(name: str = "web", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": "test"},
        "spec": {
            "targetRef": {"name": name},
            "service": {"port": 8080},
            "provider": {"name": "istio"},
            **spec,
        },
    }


class Kubectl:
    """`kubectl` against the test server, with a discovery cache of the test's own."""

    def __init__(self, kubeconfig: Path, cache: Path) -> None:
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        self.cache = cache

    def run(self, *args: str, check: bool = True, timeout: float = 20, **kw: Any) -> Any:
        result = subprocess.run(
            ["kubectl", "--cache-dir", str(self.cache), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kw,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["kubectl", "--cache-dir", str(self.cache), *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
