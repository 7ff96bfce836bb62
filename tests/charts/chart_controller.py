"""`canary controller` run as the chart's Deployment would run it, against the test API
server, and the objects and stand-ins (kubelet, Deployment controller) such a run needs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from chart_support import NAMESPACE, Rendered

from canary.testing import ApiServer

Json = dict[str, Any]
T = TypeVar("T")


@dataclass
class Running:
    """`canary controller` started with the rendered Deployment's command, args and env."""

    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def address(self, pattern: str, timeout: float = 30) -> str:
        def found() -> str | None:
            for line in list(self.output):
                m = re.search(pattern, line)
                if m:
                    return m.group(1)
            if self.process.poll() is not None:
                raise AssertionError("the controller exited:\n" + "".join(self.output))
            return None

        return wait_for(f"{pattern!r} in the controller's log", found, timeout)


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 30) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def http(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@contextmanager
def controller_from_chart(
    result: Rendered, kubeconfig: Path, tmp_path: Path, config_maps: dict[str, Json] | None = None
) -> Iterator[Running]:
    """A stand-in for the kubelet: the Pod's volumes become folders (the chart's own Secrets,
    and the ConfigMaps given by name, written in them; paths in the flags and the environment,
    /tmp's too, moved there), `$(POD_NAMESPACE)` and the downward
    API are filled in, the listening addresses move to 127.0.0.1 port 0 (the log says which
    port), and the in-cluster config becomes the test API server's kubeconfig."""
    deployment = result.one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    main = pod["containers"][0]
    volumes = {v["name"]: v for v in pod["volumes"]}
    folders: dict[str, Path] = {}
    for mount in main["volumeMounts"]:
        folder = tmp_path / "volumes" / mount["name"]
        folder.mkdir(parents=True)
        secret = volumes[mount["name"]].get("secret")
        config_map = volumes[mount["name"]].get("configMap")
        data: dict[str, str] = {}
        if secret:
            data = result.one("Secret", secret["secretName"])["stringData"]
        elif config_map:
            data = (config_maps or {})[config_map["name"]]
        for key, value in data.items():
            (folder / key).write_text(value, encoding="utf-8")
        folders[mount["mountPath"]] = folder
    fields = {"metadata.name": "canary-5f7d8-x2x9q", "metadata.namespace": NAMESPACE}
    env = {
        e["name"]: e["value"] if "value" in e else fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
        for e in main["env"]
    }
    env = {name: _in_folders(value, folders) for name, value in env.items()}
    args = []
    for arg in main["args"]:
        flag, _, value = arg.replace("$(POD_NAMESPACE)", env["POD_NAMESPACE"]).partition("=")
        if flag in ("--metrics-addr", "--api-listen"):
            value = "127.0.0.1:0"
        value = _in_folders(value, folders)
        args.append(f"{flag}={value}" if value else flag)
    assert main["command"][0] == "canary"
    argv = [sys.executable, "-m", "canary.cli.main", *main["command"][1:], *args]
    argv += ["--kubeconfig", str(kubeconfig)]
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**_environment(), **env},
    )
    running = Running(process)
    reader = threading.Thread(target=lambda: running.output.extend(process.stdout or []))
    reader.start()
    try:
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        reader.join(5)


def _in_folders(value: str, folders: dict[str, Path]) -> str:
    """A path in the Pod (a flag's or a variable's value, e.g. HOME=/tmp) moved to the folder
    that stands in for its volume; any other value as it is."""
    for mount_path, folder in folders.items():
        if value == mount_path or value.startswith(f"{mount_path}/"):
            return str(folder) + value[len(mount_path) :]
    return value


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}


def deployment(name: str, namespace: str, image: str, env_from: list[Json] | None = None) -> Json:
    labels = {"app": name}
    container: Json = {"name": "app", "image": image}
    if env_from:
        container["envFrom"] = env_from
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [container]},
            },
        },
    }


def rollout(name: str, namespace: str) -> Json:
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "targetRef": {"name": name},
            "service": {"port": 9898},
            "provider": {"name": "istio"},
            "skipAnalysis": True,
            "analysis": {"interval": "2s"},
        },
    }


def phase_of(api: ApiServer, namespace: str) -> str | None:
    found = api.list("canary.dev/v1alpha1", "Rollout", namespace)
    return (found[0].get("status") or {}).get("phase") if found else None


def kubelet(api: ApiServer, namespace: str) -> None:
    """The Deployment controller's part: every Deployment's pods ready."""
    for item in api.list("apps/v1", "Deployment", namespace):
        status = item.get("status") or {}
        wanted = item["spec"].get("replicas", 1)
        current = status.get("observedGeneration") == item["metadata"].get("generation")
        if wanted and not (current and status.get("readyReplicas") == wanted):
            api.set_deployment_ready(namespace, item["metadata"]["name"])
