"""Rewrite one section of docs/benchmarks.md, leaving the others as they are.

Each benchmark owns the text between ``<!-- BEGIN name -->`` and ``<!-- END name -->``; a
section that is missing is appended at the end of the file.
"""

from __future__ import annotations

from pathlib import Path

REPORT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"


def replace_section(name: str, body: str, path: Path = REPORT) -> None:
    """Put ``body`` between the markers of section ``name`` in ``path``."""
    begin, end = _markers(name)
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{body.strip()}\n{end}"
    start = text.find(begin)
    stop = text.find(end)
    if start == -1 or stop == -1 or stop < start:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    else:
        text = text[:start] + block + text[stop + len(end) :]
    path.write_text(text, encoding="utf-8")
