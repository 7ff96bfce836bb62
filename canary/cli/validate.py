"""`canary validate FILE...`: every problem of every file, as file: path.to.field: message.

Each file is judged on its own (one that cannot be read never stops the others); a policy's
variables are expanded as the controller would, so a policy that loops or grows past the
limits of canary.model.limits is refused here too. The controller words the problems of a
policy or channel it refuses the same way (`canary.analysis.resource_problems`), and a Rollout
naming a refused policy among the files is refused as the controller refuses it
(`canary.cli.validate_refs`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from canary.analysis.judges.feasibility import document_warnings as traffic_warnings
from canary.analysis.resource_problems import expansion_problems
from canary.cli.output import OUTPUT_OPTION, console, print_json
from canary.cli.validate_refs import reference_problems, refused_policies
from canary.model.loader import KINDS, Document, LoadError, Problem, load_file


def _expansion_problems(documents: list[Document]) -> list[Problem]:
    return [p for d in documents for p in expansion_problems(d.resource, d.source)]


def _name_of(document: Document) -> str:
    meta = getattr(document.resource, "metadata", None)
    name = getattr(meta, "name", None) or getattr(meta, "generate_name", None)
    return str(name) if name else "?"


def validate_path(path: Path) -> tuple[list[Document], list[Problem]]:
    """Documents and problems of one file; a file without any canary resource is a problem."""
    try:
        documents = load_file(path)
    except LoadError as exc:
        return [], exc.problems
    expanded = _expansion_problems(documents)
    if expanded:
        return documents, expanded
    if not any(d.resource is not None for d in documents):
        kinds = ", ".join(sorted({d.kind for d in documents}))
        return documents, [
            Problem(
                str(path),
                "kind",
                f"no canary resource in the file (found {kinds}); expected one of "
                f"{', '.join(KINDS)}",
            )
        ]
    return documents, []


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--rpm",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Expected requests a minute: also warn when this traffic cannot reach a decision "
    "within a Rollout's deadline, or a judge cannot see the canary.",
)
@click.option(
    "--primary-errors",
    type=click.FloatRange(0, 100),
    default=0.5,
    show_default=True,
    help="Expected primary error rate in percent, with --rpm.",
)
@OUTPUT_OPTION
def validate(
    files: tuple[Path, ...], rpm: float | None, primary_errors: float, output: str
) -> None:
    """Check Rollouts, policies and channels; exit 1 listing every problem (warnings do not
    change the exit code)."""
    report: list[dict[str, Any]] = []
    problems: list[Problem] = []
    refused = refused_policies(files)
    for path in files:
        documents, found = validate_path(path)
        found += reference_problems(documents, refused)
        problems.extend(found)
        warnings = traffic_warnings(documents, rpm, primary_errors) if rpm and not found else []
        for warning in warnings:
            console(stderr=True).print(f"{path}: warning: {warning}", style="yellow", markup=False)
        report.append(
            {
                "file": str(path),
                "valid": not found,
                "resources": [
                    f"{d.kind}/{_name_of(d)}" for d in documents if d.resource is not None
                ],
                "problems": [{"path": p.path, "message": p.message} for p in found],
                "warnings": warnings,
            }
        )
    if output == "json":
        print_json({"valid": not problems, "files": report})
    else:
        err = console(stderr=True)
        for problem in problems:
            err.print(str(problem), style="red", markup=False)
        out = console()
        for entry in report:
            if entry["valid"]:
                out.print(f"{entry['file']}: ok ({', '.join(entry['resources'])})")
    raise SystemExit(1 if problems else 0)
