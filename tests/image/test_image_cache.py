"""The image test's cache of the Debian root filesystem and its scratch storage (image_build.py),
without building anything: mmdebstrap is replaced by a function that writes a marker file."""

from __future__ import annotations

import os
from pathlib import Path

import image_build
import pytest

DAY = 24 * 3600.0


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Where the stand-in for mmdebstrap was asked to write, in order."""
    calls: list[Path] = []

    def fake_rootfs(tarball: Path) -> None:
        assert tarball.suffix == ".tar", "mmdebstrap writes a tarball only to a name in .tar"
        calls.append(tarball)
        tarball.write_text(f"rootfs {len(calls)}")

    monkeypatch.setattr(image_build, "debian_rootfs", fake_rootfs)
    return calls


def test_the_base_is_made_once_then_reused_within_its_age(tmp_path: Path, made: list[Path]) -> None:
    first = image_build.cached_debian_rootfs(tmp_path)
    now = first.stat().st_mtime
    again = image_build.cached_debian_rootfs(tmp_path, now=now + image_build.BASE_MAX_AGE - 60)
    assert again == first
    assert len(made) == 1
    assert first.read_text() == "rootfs 1"
    assert [p.name for p in tmp_path.iterdir()] == [first.name], "no partial file is left"


def test_a_base_older_than_its_age_is_made_anew(tmp_path: Path, made: list[Path]) -> None:
    first = image_build.cached_debian_rootfs(tmp_path)
    old = first.stat().st_mtime - image_build.BASE_MAX_AGE - DAY
    os.utime(first, (old, old))
    assert image_build.cached_debian_rootfs(tmp_path) == first
    assert len(made) == 2
    assert first.read_text() == "rootfs 2"


def test_a_failed_build_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(tarball: Path) -> None:
        tarball.write_text("half")
        raise image_build.ImageBuildError("mmdebstrap exited 1")

    monkeypatch.setattr(image_build, "debian_rootfs", broken)
    with pytest.raises(image_build.ImageBuildError):
        image_build.cached_debian_rootfs(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_cache_folder_is_chosen_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARY_TEST_CACHE", str(tmp_path / "mine"))
    assert image_build.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("CANARY_TEST_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert image_build.cache_dir() == tmp_path / "xdg" / "canary-tests"


def test_scratch_storage_falls_back_to_disk_without_room_on_shm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image_build, "SHM", tmp_path / "no-shm")
    assert image_build.scratch_storage(tmp_path / "disk") == tmp_path / "disk"
    assert (tmp_path / "disk").is_dir()


def test_scratch_storage_on_shm_removes_what_dead_runs_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shm = tmp_path / "shm"
    shm.mkdir()
    dead = shm / f"{image_build.SCRATCH_PREFIX}999999999-abc"  # above any pid_max
    alive = shm / f"{image_build.SCRATCH_PREFIX}{os.getpid()}-def"
    dead.mkdir()
    alive.mkdir()
    monkeypatch.setattr(image_build, "SHM", shm)
    monkeypatch.setattr(image_build, "SHM_NEEDED", 0)
    fresh = image_build.scratch_storage(tmp_path / "disk")
    assert fresh.parent == shm
    assert fresh.name.startswith(f"{image_build.SCRATCH_PREFIX}{os.getpid()}-")
    assert not dead.exists()
    assert alive.exists(), "a running test's storage is left alone"
    assert not (tmp_path / "disk").exists()
