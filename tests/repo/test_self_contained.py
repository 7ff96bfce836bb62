"""The repository stands alone: nothing in it reads or links a folder beside it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Spelt in two parts, so that this file does not find itself.
BESIDE = "../" + "shared"


def _tracked_files() -> list[Path]:
    result = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=False
    )
    if result.returncode != 0:
        pytest.skip("not a git checkout: the tracked files are unknown")
    return [ROOT / name for name in result.stdout.decode().split("\0") if name]


def test_no_file_mentions_a_folder_beside_the_repository() -> None:
    mentions = []
    for path in _tracked_files():
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        mentions += [
            f"{path.relative_to(ROOT)}:{number}"
            for number, line in enumerate(text.splitlines(), 1)
            if BESIDE in line
        ]
    assert mentions == []
