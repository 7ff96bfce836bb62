"""The import graph of a Python package tree: every module each file's import statements name
(function-level imports too, relative imports resolved).

``import_graph`` parses in a fresh interpreter (this file run as a script), not in the test
process: CPython 3.11's AST constructor keeps its recursion counter in state shared by the
whole interpreter and can leave it out of balance (gh-106905), after which ``ast.parse`` of a
sound file raises ``SystemError: AST constructor recursion depth mismatch``; a full test run
met it once, after an earlier test's deep recursion. A new process has no such history, and a
new thread would not help: the counter is not per thread.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path


def imports_in(text: str, module: str, is_package: bool = False) -> set[str]:
    """The modules ``text`` (the source of ``module``) imports."""
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


def _graph_here(root: Path, package: str) -> dict[str, list[str]]:
    graph = {}
    for path in sorted((root / package).rglob("*.py")):
        relative = path.relative_to(root)
        module = ".".join(relative.with_suffix("").parts)
        text = path.read_text(encoding="utf-8")
        graph[relative.as_posix()] = sorted(imports_in(text, module, path.name == "__init__.py"))
    return graph


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """``root/package``'s files (paths relative to ``root``) -> the modules each imports,
    parsed in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-I", __file__, str(root), package],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"parsing {root / package} failed:\n{done.stderr}")
    graph: dict[str, list[str]] = json.loads(done.stdout)
    return {path: set(modules) for path, modules in graph.items()}


if __name__ == "__main__":
    json.dump(_graph_here(Path(sys.argv[1]), sys.argv[2]), sys.stdout)
