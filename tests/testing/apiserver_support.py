"""Objects the test API server's tests create."""

from __future__ import annotations

from typing import Any


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
