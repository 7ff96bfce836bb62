"""docs/architecture.md's dependency rules, checked on the real imports of every module
(function-level imports too): which of canary's packages each package may import, and that
the engine imports nothing that reads a clock, the network, files or processes."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "canary"

# package -> the canary packages it may import ("canary" itself: the version)
ALLOWED: dict[str, set[str]] = {
    "model": set(),
    "engine": {"model"},
    "workload": {"model"},
    "traffic": {"engine", "model"},
    "analysis": {"engine", "model"},
    "notify": {"engine", "model"},
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

# What a pure engine must not import: clocks, randomness, the network, files, processes.
ENGINE_FORBIDDEN = {
    "time", "random", "socket", "ssl", "http", "urllib", "urllib3", "requests", "httpx",
    "aiohttp", "kubernetes", "prometheus_api_client", "prometheus_client", "subprocess",
    "os", "pathlib", "io", "shutil", "tempfile", "threading", "asyncio", "yaml",
    "canary.controller", "canary.local", "canary.sim", "canary.cli", "canary.testing",
}  # fmt: skip


def imports_of(path: Path) -> set[str]:
    """Every module an import statement of the file names (relative imports resolved)."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return imports_in(path.read_text(encoding="utf-8"), module, path.name == "__init__.py")


def imports_in(text: str, module: str, is_package: bool = False) -> set[str]:
    package = module.removesuffix(".__init__") if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                found.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                found.add(node.module)
    return found


def package_of(module: str) -> str | None:
    if module == "canary":
        return "canary"
    m = re.match(r"canary\.(\w+)", module)
    return m.group(1) if m else None


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if len(p.relative_to(PACKAGE).parts) > 1)


def test_every_package_is_in_the_rules() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_what_the_architecture_allows(package: str) -> None:
    breaches = []
    for path in _modules():
        if path.relative_to(PACKAGE).parts[0] != package:
            continue
        for module in imports_of(path):
            target = package_of(module)
            if target not in (None, package) and target not in ALLOWED[package]:
                breaches.append(f"{path.relative_to(ROOT)} imports {module}")
    assert breaches == []


def _forbidden_in_the_engine(module: str) -> bool:
    return module.split(".")[0] in ENGINE_FORBIDDEN or any(
        module == f or module.startswith(f"{f}.") for f in ENGINE_FORBIDDEN
    )


def test_the_engine_does_no_io() -> None:
    breaches = []
    for path in sorted((PACKAGE / "engine").rglob("*.py")):
        for module in imports_of(path):
            if _forbidden_in_the_engine(module):
                breaches.append(f"{path.relative_to(ROOT)} imports {module}")
    assert breaches == []


def test_the_check_sees_a_breach() -> None:
    """The rules have teeth: an engine module importing a clock and the controller is caught,
    inside a function and through a relative import."""
    text = "def f() -> None:\n    import time\n    from ..controller import kube\n"
    found = imports_in(text, "canary.engine.probe")
    assert found == {"time", "canary.controller"}
    assert all(_forbidden_in_the_engine(module) for module in found)


def test_the_docs_state_the_same_rules() -> None:
    docs = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `canary\.(\w+)` \| [^|]+ \| ([^|]*) \|$", docs, re.MULTILINE))
    assert set(rows) == set(ALLOWED)
    for package, allowed in ALLOWED.items():
        named = set(re.findall(r"`(\w+)`", rows[package]))
        assert named == allowed, package
