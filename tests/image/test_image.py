"""THE IMAGE TEST: the Dockerfile built with buildah, then run from its root filesystem.

Takes one to four minutes (a Debian root filesystem, unless cached, and the runtime wheels,
made side by side; two build stages on vfs storage, on a tmpfs when there is room). Needs
root; installs buildah and mmdebstrap with apt-get when they are missing.
Deselect it in a quick run with ``-m 'not image'``. image_build.py says how it works.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from image_build import (
    BASE,
    IMAGE,
    ROOT,
    Buildah,
    cache_dir,
    cached_debian_rootfs,
    ensure_tools,
    read_only_command,
    run_read_only,
    scratch_storage,
    wheelhouse,
)

from canary.testing import ApiServer

pytestmark = pytest.mark.image


@dataclass(frozen=True)
class Built:
    config: dict[str, Any]
    rootfs: Path
    files: Path  # copied to /tmp/files inside

    def sh(self, script: str) -> str:
        return run_read_only(self.rootfs, self.config, script, self.files)

    def start(self, script: str) -> subprocess.Popen[str]:
        """``script`` in the background (a process group of its own, to stop it whole)."""
        command = read_only_command(self.rootfs, self.config, script, self.files)
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    ensure_tools()
    work = tmp_path_factory.mktemp("image")
    storage = scratch_storage(work / "storage")
    buildah = Buildah(storage)
    try:
        with ThreadPoolExecutor(2) as both:  # each waits on its downloads and its subprocess
            base = both.submit(cached_debian_rootfs, cache_dir())
            wheels = both.submit(wheelhouse, work / "wheels", work / "scratch")
            buildah.import_rootfs(base.result(), BASE)
            wheels.result()
        buildah.build(ROOT / "Dockerfile", ROOT, work / "wheels", IMAGE)
        container, rootfs = buildah.mount(IMAGE)
        files = work / "files"
        shutil.copytree(ROOT / "examples", files / "examples")
        shutil.copytree(ROOT / "charts" / "canary" / "crds", files / "crds")
        yield Built(buildah.config(IMAGE), rootfs, files)
        buildah("rm", container)
    finally:
        shutil.rmtree(storage, ignore_errors=True)


def test_the_image_runs_canary_as_a_fixed_non_root_user(built: Built) -> None:
    config = built.config
    assert config["Entrypoint"] == ["canary"]
    assert config["Cmd"] == ["controller"]
    uid, _, gid = config["User"].partition(":")
    assert int(uid) > 0, "numeric, so that runAsNonRoot can check it"
    assert int(gid) > 0
    assert built.sh("id -u").strip() == uid


def test_the_image_says_what_it_is(built: Built) -> None:
    labels = built.config["Labels"]
    assert labels["org.opencontainers.image.version"] == IMAGE.rpartition(":")[2]
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    for key in ("title", "description", "source", "documentation"):
        assert labels[f"org.opencontainers.image.{key}"], key


def test_controller_help_runs_on_a_read_only_root(built: Built) -> None:
    out = built.sh("canary controller --help && (touch /opt/canary/x 2>&1 || true)")
    assert out.startswith("Usage: canary controller")
    assert "Read-only file system" in out, "the root is mounted read-only, as the chart does"


def test_validate_and_a_simulated_rollout_find_the_shipped_policies(built: Built) -> None:
    out = built.sh("canary validate files/examples/podinfo-istio.yaml")
    assert "podinfo-istio.yaml: ok (Rollout/podinfo)" in out
    report = json.loads(built.sh("canary simulate files/examples/podinfo-istio.yaml -o json"))
    assert report["phase"] == "Succeeded"
    assert {c["name"] for c in report["checks"]} == {"error-rate", "latency"}


def test_only_runtime_dependencies_are_installed(built: Built) -> None:
    script = (
        "for m in canary kubernetes fastapi pytest hypothesis mypy ruff jsonpatch setuptools "
        'pip; do python3 -c "import $m" 2>/dev/null && echo $m; done; true'
    )
    present = set(built.sh(script).split())
    assert {"canary", "kubernetes", "fastapi"} <= present
    assert not present & {"pytest", "hypothesis", "mypy", "ruff", "jsonpatch"}, "dev extra"
    assert not present & {"setuptools", "pip"}, "the build's tools stay in the build stage"
    assert not (built.rootfs / "src").exists(), "no source tree in the image"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_controller_starts_and_gets_ready_on_a_read_only_root(built: Built) -> None:
    # The test API server runs here; the controller, in the image's root, reaches it over the
    # host's loopback (chroot keeps the network).
    with ApiServer() as api:
        api.apply_file(*sorted((built.files / "crds").glob("*.yaml")))
        api.kubeconfig(built.files / "kubeconfig", namespace="default")
        port = _free_port()
        controller = built.start(
            "exec canary controller --kubeconfig /tmp/files/kubeconfig --no-leader-elect "
            f"--metrics-addr 127.0.0.1:{port} --prometheus http://127.0.0.1:9"
        )
        try:
            ready = _ready(f"http://127.0.0.1:{port}/readyz", controller)
        finally:
            _stop(controller)
            output, _ = controller.communicate(timeout=60)
    assert ready, output
    assert "Read-only file system" not in output
    assert "Traceback" not in output
    assert controller.returncode == 0, output


def _ready(url: str, process: subprocess.Popen[str]) -> bool:
    deadline = time.monotonic() + 120  # a bound on a loaded machine, not a measured figure
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    return False


def _stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM to the controller (unshare's child, which unshare then exits with), as a
    kubelet stops a container; SIGKILL to the whole group if it is not gone in 30 s."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    for pid in children.read_text().split() if children.exists() else []:
        os.kill(int(pid), signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
