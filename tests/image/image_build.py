"""Building the Dockerfile with no container engine and no registry: buildah, from Debian.

The Dockerfile's base (``PYTHON_IMAGE``, python:3.11-slim-bookworm in a real build) is replaced
by a Debian bookworm root filesystem that mmdebstrap makes from Debian's packages (its python3
and python3-venv), imported into buildah as a local image. buildah then builds the Dockerfile
itself, stage by stage (vfs storage, chroot isolation: no daemon, no overlay mounts), with the
project's runtime dependencies taken from a folder of PyPI wheels that pip on this machine
fills and that the build mounts read-only (PIP_FIND_LINKS=/wheels PIP_NO_INDEX=1): the build
stage needs no network of its own.

Two things make the build cheaper without changing what is built or tested: the Debian root
filesystem is kept in a cache folder for a week (`cached_debian_rootfs`; a local image cache, as
a container engine keeps the base image it pulled), and buildah's storage lives on a tmpfs when
/dev/shm has room (`scratch_storage`): vfs storage copies the root filesystem for every stage,
which costs minutes of disk writes and deletes on a busy machine and seconds in memory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"ghcr.io/canary-dev/canary:{VERSION}"
BASE = "localhost/canary-image-test/python:3.11-bookworm"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv")
TOOLS = {"buildah": "buildah", "mmdebstrap": "mmdebstrap", "unshare": "util-linux"}
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "canary", "policies")
BASE_MAX_AGE = 7 * 24 * 3600.0  # seconds a cached Debian root filesystem is used for
SHM = Path("/dev/shm")
SHM_NEEDED = 4 * 2**30  # bytes free on /dev/shm to put the storage there (the build takes ~2 GB)
SCRATCH_PREFIX = "canary-image-test-"


class ImageBuildError(Exception):
    """A step of the image build failed; the message has the command and what it printed."""


def run(command: list[str], timeout: float = 900, **kwargs: Any) -> str:
    """Run ``command``; its stdout, or ImageBuildError with its output."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired:
        raise ImageBuildError(f"{' '.join(command)}: no end within {timeout:g}s") from None
    if done.returncode != 0:
        tail = (done.stdout[-3000:] + "\n" + done.stderr[-3000:]).strip()
        raise ImageBuildError(f"{' '.join(command)} exited {done.returncode}:\n{tail}")
    return done.stdout


def ensure_tools() -> None:
    """buildah, mmdebstrap and unshare, installed with apt-get when missing (root only)."""
    if os.geteuid() != 0:
        raise ImageBuildError(
            "the image test builds a root filesystem and chroots into it: run it as root "
            "(or deselect it with -m 'not image')"
        )
    missing = sorted({package for tool, package in TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        run(["apt-get", "install", "-y", "-q", *missing], env=env)
    except ImageBuildError:
        run(["apt-get", "update", "-q"], env=env)
        run(["apt-get", "install", "-y", "-q", *missing], env=env)


@dataclass(frozen=True)
class Buildah:
    """buildah with a storage of its own (vfs), so that runs never share or leave images."""

    storage: Path

    def __call__(self, *args: str, timeout: float = 900) -> str:
        where = ["--root", str(self.storage / "root"), "--runroot", str(self.storage / "run")]
        return run(["buildah", *where, "--storage-driver", "vfs", *args], timeout=timeout)

    def import_rootfs(self, tarball: Path, name: str) -> None:
        container = self("from", "scratch").strip()
        try:
            self("add", container, str(tarball), "/")
            self("commit", "--quiet", container, name)
        finally:
            self("rm", container)

    def build(self, dockerfile: Path, context: Path, wheels: Path, tag: str) -> None:
        self(
            "bud",
            "--isolation",
            "chroot",
            "--pull=never",
            "--layers=false",
            "--volume",
            f"{wheels}:/wheels:ro",
            "--build-arg",
            f"PYTHON_IMAGE={BASE}",
            "--build-arg",
            "PIP_FIND_LINKS=/wheels",
            "--build-arg",
            "PIP_NO_INDEX=1",
            "--build-arg",
            f"VERSION={VERSION}",
            "--tag",
            tag,
            "--file",
            str(dockerfile),
            str(context),
            timeout=1800,
        )

    def config(self, image: str) -> dict[str, Any]:
        """The OCI image configuration (``config`` of the OCI image config document)."""
        inspected = json.loads(self("inspect", "--type", "image", image))
        config: dict[str, Any] = inspected["OCIv1"]["config"]
        return config

    def mount(self, image: str) -> tuple[str, Path]:
        """A working container of ``image`` and the folder holding its root filesystem."""
        container = self("from", "--pull=never", image).strip()
        return container, Path(self("mount", container).strip())


def debian_rootfs(tarball: Path) -> None:
    """A minimal Debian with Python, from Debian's packages only (what stands for the base)."""
    run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            SUITE,
            str(tarball),
        ]
    )


def cache_dir() -> Path:
    """$CANARY_TEST_CACHE, else $XDG_CACHE_HOME/canary-tests, else ~/.cache/canary-tests."""
    if os.environ.get("CANARY_TEST_CACHE"):
        return Path(os.environ["CANARY_TEST_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "canary-tests"


def cached_debian_rootfs(cache: Path, now: float | None = None) -> Path:
    """The Debian root filesystem tarball from ``cache``, made anew by `debian_rootfs` when it
    is missing or older than BASE_MAX_AGE (so Debian's updates reach it within a week).
    Written under a name of its own, then renamed: runs side by side never read half a file."""
    tarball = cache / f"debian-{SUITE}-{'-'.join(BASE_PACKAGES)}.tar"
    now = time.time() if now is None else now
    if tarball.exists() and now - tarball.stat().st_mtime < BASE_MAX_AGE:
        return tarball
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f".{os.getpid()}.{tarball.name}"  # mmdebstrap's format follows the suffix
    try:
        debian_rootfs(partial)
        partial.replace(tarball)
    finally:
        partial.unlink(missing_ok=True)
    return tarball


def scratch_storage(fallback: Path) -> Path:
    """A new folder for buildah's storage: on /dev/shm (a tmpfs) when it has SHM_NEEDED free,
    else ``fallback`` (on disk). The caller removes it. Folders on /dev/shm left by runs that
    were killed (their pid is gone) are removed first, since a tmpfs holds memory."""
    if not SHM.is_dir() or shutil.disk_usage(SHM).free < SHM_NEEDED:
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback
    for stale in SHM.glob(f"{SCRATCH_PREFIX}*"):
        pid = stale.name.removeprefix(SCRATCH_PREFIX).partition("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=SHM))


def wheelhouse(folder: Path, scratch: Path) -> None:
    """The runtime dependencies as wheels, and the build backend: what the build stage needs.
    The project's own wheel is left out, so the image's is the one its build stage makes."""
    source = scratch / "source"
    source.mkdir(parents=True)
    for name in SOURCES:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, source / name)
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(folder)]
    run([*pip, str(source), "setuptools>=77"])
    for own in folder.glob("canary_delivery-*.whl"):
        own.unlink()


def read_only_command(rootfs: Path, config: dict[str, Any], script: str, files: Path) -> list[str]:
    """The command that runs ``script`` (sh) in ``rootfs`` as a container of ``config`` would:
    the image's user, environment and working folder, a read-only root with a tmpfs on /tmp
    (what the chart mounts), and ``files`` copied to /tmp/files. The network is the host's."""
    user = config["User"]
    env = list(config.get("Env", []))
    workdir = config.get("WorkingDir") or "/"
    inside = ["chroot", f"--userspec={user}", str(rootfs), "/usr/bin/env", "-i", *env]
    inside += ["/bin/sh", "-c", f"cd {workdir} && {script}"]
    setup = (
        f'mount --bind "{rootfs}" "{rootfs}" && mount -o remount,bind,ro "{rootfs}" '
        f'&& mount -t tmpfs -o mode=1777 tmpfs "{rootfs}/tmp" '
        f'&& cp -r "{files}" "{rootfs}/tmp/files" && chmod -R a+rX "{rootfs}/tmp/files" '
        '&& exec "$@"'
    )
    unshare = ["unshare", "--mount", "--fork", "--kill-child"]
    return [*unshare, "/bin/sh", "-c", setup, "setup", *inside]


def run_read_only(rootfs: Path, config: dict[str, Any], script: str, files: Path) -> str:
    """``script``'s output, run as `read_only_command` says."""
    return run(read_only_command(rootfs, config, script, files))
