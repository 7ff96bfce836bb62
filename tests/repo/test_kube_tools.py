"""scripts/install_kube_tools.py, which the bootstrap runs: the helm and kubectl the tests use
are the pinned ones from the venv's bin, and running it again changes nothing."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install_kube_tools.py"
VENV_BIN = Path(sys.executable).parent


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("install_kube_tools", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tools = _script()


def test_the_tests_run_the_pinned_helm_and_kubectl_from_the_venv() -> None:
    assert shutil.which("helm") == str(VENV_BIN / "helm")
    assert shutil.which("kubectl") == str(VENV_BIN / "kubectl")
    assert tools.installed_versions(VENV_BIN) == {
        "helm": tools.HELM_VERSION,
        "kubectl": tools.KUBECTL_VERSION,
    }


def test_running_it_again_changes_nothing() -> None:
    before = {name: (VENV_BIN / name).stat().st_mtime_ns for name in ("helm", "kubectl")}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(VENV_BIN)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "already in" in result.stdout
    after = {name: (VENV_BIN / name).stat().st_mtime_ns for name in ("helm", "kubectl")}
    assert after == before


def test_a_wrong_folder_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "is not a folder" in result.stderr


def test_a_missing_tool_counts_as_not_installed(tmp_path: Path) -> None:
    assert tools.installed_versions(tmp_path) == {"helm": None, "kubectl": None}
    fake = tmp_path / "helm"
    fake.write_text("#!/bin/sh\necho v3.0.0\n")
    fake.chmod(0o755)
    assert tools.installed_versions(tmp_path)["helm"] == "v3.0.0"  # not the pinned one
