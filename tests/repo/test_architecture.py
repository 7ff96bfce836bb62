"""docs/architecture.md's dependency rules, checked on the real imports of every module
(function-level imports too): which of canary's packages each package may import, and that
the engine imports nothing that reads a clock, the network, files or processes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from import_graph import import_graph

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "canary"

# package -> the canary packages it may import ("canary" itself: the version)
ALLOWED: dict[str, set[str]] = {
    "model": set(),
    "engine": {"model"},
    "workload": {"model"},
    "traffic": {"engine", "model"},
    "analysis": {"engine", "model"},
    "notify": {"engine", "gates", "model"},
    "gates": {"engine", "model", "local", "canary"},
    "sim": {"analysis", "engine", "model"},
    "controller": {"analysis", "engine", "gates", "model", "notify", "traffic", "workload"},
    "local": {"analysis", "engine", "gates", "model", "notify", "sim", "traffic"},
    "testing": {"engine"},
    "cli": {
        "analysis", "controller", "engine", "gates", "local", "model", "notify", "sim",
        "traffic", "canary",
    },
}  # fmt: skip

# Modules allowed more than their package, and why (docs/architecture.md says the same)
EXCEPTIONS: dict[str, set[str]] = {
    # an audit, not a stand-in: what the controller owes is its own record (the status outbox,
    # read with the controller's model and Event naming); it checks delivery, not naming
    "canary/testing/event_audit.py": {"controller", "model", "notify"},
}

# What a pure engine must not import: clocks, randomness, the network, files, processes.
ENGINE_FORBIDDEN = {
    "time", "random", "socket", "ssl", "http", "urllib", "urllib3", "requests", "httpx",
    "aiohttp", "kubernetes", "prometheus_api_client", "prometheus_client", "subprocess",
    "os", "pathlib", "io", "shutil", "tempfile", "threading", "asyncio", "yaml",
    "canary.controller", "canary.local", "canary.sim", "canary.cli", "canary.testing",
}  # fmt: skip


def package_of(module: str) -> str | None:
    if module == "canary":
        return "canary"
    m = re.match(r"canary\.(\w+)", module)
    return m.group(1) if m else None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    """canary's files (paths from the repository's top) -> the modules each imports."""
    return import_graph(ROOT, "canary")


def in_package(path: str, package: str) -> bool:
    return path.startswith(f"canary/{package}/")


def test_every_package_is_in_the_rules() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_what_the_architecture_allows(
    package: str, graph: dict[str, set[str]]
) -> None:
    files = [path for path in graph if in_package(path, package)]
    assert files, f"no modules of canary.{package} parsed"
    breaches = []
    for path in files:
        for module in graph[path]:
            target = package_of(module)
            allowed = ALLOWED[package] | EXCEPTIONS.get(path, set())
            if target not in (None, package) and target not in allowed:
                breaches.append(f"{path} imports {module}")
    assert breaches == []


def _forbidden_in_the_engine(module: str) -> bool:
    return module.split(".")[0] in ENGINE_FORBIDDEN or any(
        module == f or module.startswith(f"{f}.") for f in ENGINE_FORBIDDEN
    )


def test_the_engine_does_no_io(graph: dict[str, set[str]]) -> None:
    breaches = []
    for path in (p for p in graph if in_package(p, "engine")):
        for module in graph[path]:
            if _forbidden_in_the_engine(module):
                breaches.append(f"{path} imports {module}")
    assert breaches == []


def test_the_check_sees_a_breach(tmp_path: Path) -> None:
    """The rules have teeth: an engine module importing a clock and the controller is caught,
    inside a function and through a relative import, by the same parse the tests above use."""
    probe = tmp_path / "canary" / "engine" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("def f() -> None:\n    import time\n    from ..controller import kube\n")
    found = import_graph(tmp_path, "canary")
    assert found == {"canary/engine/probe.py": {"time", "canary.controller"}}
    assert all(_forbidden_in_the_engine(module) for module in found["canary/engine/probe.py"])


def test_a_file_that_does_not_parse_fails_the_check(tmp_path: Path) -> None:
    broken = tmp_path / "canary" / "engine" / "broken.py"
    broken.parent.mkdir(parents=True)
    broken.write_text("def f(:\n")
    with pytest.raises(RuntimeError, match="SyntaxError"):
        import_graph(tmp_path, "canary")


def test_the_docs_state_the_same_rules() -> None:
    docs = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `canary\.(\w+)` \| [^|]+ \| ([^|]*) \|$", docs, re.MULTILINE))
    assert set(rows) == set(ALLOWED)
    for package, allowed in ALLOWED.items():
        named = set(re.findall(r"`(\w+)`", rows[package]))
        assert named == allowed, package
