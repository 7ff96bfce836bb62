"""The built wheel, installed into a fresh virtualenv, is the product a pip user gets.

The source is copied out of the checkout first, so that nothing here can be imported from the
working tree: every command runs the installed `canary`, from a folder with no source in it.
Installing pulls the runtime dependencies through pip as configured on the machine (a minute
or two the first time, its cache after). pip installs with --no-compile: byte-compiling every
dependency's modules is most of an install's CPU time and nothing here depends on it (Python
compiles what it imports).
"""

from __future__ import annotations

import email.parser
import json
import shutil
import subprocess
import sys
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[2]
# What the distribution is made of; the same list as .dockerignore lets into the image build.
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "canary", "policies")
POLICIES = {p.stem for p in (ROOT / "policies").glob("*.yaml")}
PIP_INSTALL = ("-m", "pip", "install", "--quiet", "--no-compile")


@dataclass(frozen=True)
class Installed:
    wheel: Path
    prefix: Path  # the fresh virtualenv
    cwd: Path  # an empty folder the commands run in

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``args[0]`` from the virtualenv's bin, in the empty folder."""
        command = [str(self.prefix / "bin" / args[0]), *args[1:]]
        return subprocess.run(
            command, cwd=self.cwd, capture_output=True, text=True, timeout=300, check=check
        )


def _build_wheel(source: Path, out: Path) -> Path:
    source.mkdir()
    for name in SOURCES:
        origin = ROOT / name
        if origin.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(origin, source / name, ignore=ignore)
        else:
            shutil.copy2(origin, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    [wheel] = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(base / "source", base / "dist")
    prefix = base / "venv"
    venv.create(prefix, with_pip=True)
    subprocess.run(
        [str(prefix / "bin" / "python"), *PIP_INSTALL, str(wheel)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    cwd = base / "elsewhere"
    cwd.mkdir()
    return Installed(wheel, prefix, cwd)


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode())


def test_the_distribution_has_a_name_of_its_own_and_says_what_it_is(installed: Installed) -> None:
    assert installed.wheel.name.startswith("canary_delivery-")
    meta = _metadata(installed.wheel)
    assert meta["Name"] == "canary-delivery"
    assert meta["License-Expression"] == "Apache-2.0"
    assert "LICENSE" in meta.get_all("License-File", [])
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL", []))
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(urls)
    assert "Typing :: Typed" in meta.get_all("Classifier", [])
    extras = meta.get_all("Provides-Extra", [])
    assert "testing" in extras
    with zipfile.ZipFile(installed.wheel) as archive:
        names = archive.namelist()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]


def test_both_commands_are_installed(installed: Installed) -> None:
    canary = installed.run("canary", "--help")
    assert "controller" in canary.stdout
    assert "validate" in canary.stdout
    # As a kubectl plugin its help names itself `kubectl canary`.
    plugin = installed.run("kubectl-canary", "--help")
    assert plugin.stdout.startswith("Usage: kubectl canary")


def test_the_import_package_is_the_installed_one(installed: Installed) -> None:
    where = installed.run("python", "-c", "import canary; print(canary.__file__)").stdout
    assert Path(where.strip()).is_relative_to(installed.prefix)


def test_the_shipped_policies_are_found(installed: Installed) -> None:
    script = (
        "from canary.analysis.policies import builtin_dir, builtin_policies\n"
        "print(builtin_dir()); print(' '.join(sorted(builtin_policies())))"
    )
    folder, names = installed.run("python", "-c", script).stdout.strip().splitlines()
    assert Path(folder).is_relative_to(installed.prefix), "from the wheel, not the checkout"
    assert set(names.split()) == POLICIES
    # and used: a simulated Istio rollout is judged by the shipped istio policy's checks
    shutil.copy2(ROOT / "examples" / "podinfo-istio.yaml", installed.cwd)
    result = installed.run("canary", "simulate", "podinfo-istio.yaml", "-o", "json")
    report = json.loads(result.stdout)
    assert report["phase"] == "Succeeded"
    assert {c["name"] for c in report["checks"]} >= {"error-rate"}


def test_no_crd_short_name_is_ro_and_every_crd_is_in_the_canary_category(
    installed: Installed,
) -> None:
    out = installed.cwd / "crds"
    installed.run("canary", "crds", "--output-dir", str(out))
    crds = [yaml.safe_load(p.read_text()) for p in sorted(out.glob("*.yaml"))]
    assert len(crds) == len(list((ROOT / "charts" / "canary" / "crds").glob("*.yaml")))
    for crd in crds:
        names = crd["spec"]["names"]
        assert "ro" not in names["shortNames"], crd["metadata"]["name"]
        assert names["categories"] == ["canary"]


def test_canary_testing_says_which_extra_it_needs_then_works_with_it(installed: Installed) -> None:
    probe = "from canary.testing import ApiServer"
    missing = installed.run("python", "-c", probe, check=False)
    assert missing.returncode != 0
    assert "pip install 'canary-delivery[testing]'" in missing.stderr
    subprocess.run(
        [
            str(installed.prefix / "bin" / "python"),
            *PIP_INSTALL,
            f"{installed.wheel}[testing]",
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    serve = (
        "import urllib.request\n"
        "from canary.testing import ApiServer\n"
        "with ApiServer() as api:\n"
        "    print(urllib.request.urlopen(api.url + '/version').status)\n"
    )
    assert installed.run("python", "-c", serve).stdout.strip() == "200"
