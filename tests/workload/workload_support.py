"""A target Deployment referencing configuration every way a pod template can, and its Rollout."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

TARGET: Json = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "podinfo",
        "namespace": "test",
        "labels": {"app": "podinfo", "app.kubernetes.io/instance": "team-a"},
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
        "generation": 3,
        "resourceVersion": "41",
        "uid": "target-uid",
    },
    "spec": {
        "replicas": 3,
        "minReadySeconds": 5,
        "selector": {"matchLabels": {"app": "podinfo", "tier": "web"}},
        "template": {
            "metadata": {
                "creationTimestamp": None,
                "labels": {"app": "podinfo", "tier": "web", "version": "v1"},
                "annotations": {"prometheus.io/scrape": "true"},
            },
            "spec": {
                "initContainers": [
                    {
                        "name": "migrate",
                        "image": "ghcr.io/example/migrate:1.0",
                        "envFrom": [{"secretRef": {"name": "db-credentials"}}],
                    }
                ],
                "containers": [
                    {
                        "name": "podinfo",
                        "image": "ghcr.io/stefanprodan/podinfo:6.7.1",
                        "ports": [{"name": "http", "containerPort": 9898}],
                        "envFrom": [{"configMapRef": {"name": "podinfo-env"}}],
                        "env": [
                            {"name": "PLAIN", "value": "x"},
                            {
                                "name": "LEVEL",
                                "valueFrom": {
                                    "configMapKeyRef": {"name": "log-settings", "key": "level"}
                                },
                            },
                            {
                                "name": "TOKEN",
                                "valueFrom": {
                                    "secretKeyRef": {
                                        "name": "api-token",
                                        "key": "token",
                                        "optional": True,
                                    }
                                },
                            },
                            {
                                "name": "EXTRA",
                                "valueFrom": {
                                    "configMapKeyRef": {
                                        "name": "extra",
                                        "key": "x",
                                        "optional": True,
                                    }
                                },
                            },
                        ],
                        "volumeMounts": [{"name": "config", "mountPath": "/config"}],
                    }
                ],
                "imagePullSecrets": [{"name": "registry"}],
                "volumes": [
                    {"name": "config", "configMap": {"name": "podinfo-files"}},
                    {"name": "tls", "secret": {"secretName": "podinfo-tls"}},
                    {"name": "cache", "emptyDir": {}},
                    {
                        "name": "bundle",
                        "projected": {
                            "sources": [
                                {"configMap": {"name": "ca-bundle"}},
                                {"secret": {"name": "signing-key"}},
                                {"serviceAccountToken": {"path": "token"}},
                            ]
                        },
                    },
                ],
            },
        },
    },
    "status": {"replicas": 0, "observedGeneration": 3},
}

CONFIGMAP_NAMES = ["ca-bundle", "extra", "log-settings", "podinfo-env", "podinfo-files"]
SECRET_NAMES = ["api-token", "db-credentials", "podinfo-tls", "signing-key"]


def configmap(name: str, data: dict[str, str] | None = None) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "test", "resourceVersion": "7"},
        "data": data if data is not None else {"key": f"value of {name}"},
    }


def secret(name: str, data: dict[str, str] | None = None) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "test"},
        "type": "Opaque",
        "data": data if data is not None else {"key": "c2VjcmV0"},
    }


ROLLOUT: Json = {
    "apiVersion": "canary.dev/v1alpha1",
    "kind": "Rollout",
    "metadata": {"name": "podinfo", "namespace": "test", "uid": "rollout-uid"},
    "spec": {
        "targetRef": {"name": "podinfo"},
        "service": {"port": 80, "targetPort": 9898},
        "provider": {"name": "istio"},
    },
}
