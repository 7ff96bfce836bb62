"""Reading canary resources from YAML or JSON files, with every problem named by field.

A problem reads ``file: path.to.field: message``; loading never raises anything but
`LoadError`, whatever the file holds (empty, binary, not YAML, another kind).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from canary.model.notification import NotificationChannel
from canary.model.policy import AnalysisPolicy, ClusterAnalysisPolicy
from canary.model.rollout import API_VERSION, Rollout

KINDS: dict[str, type[BaseModel]] = {
    "Rollout": Rollout,
    "AnalysisPolicy": AnalysisPolicy,
    "ClusterAnalysisPolicy": ClusterAnalysisPolicy,
    "NotificationChannel": NotificationChannel,
}
MAX_FILE_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class Problem:
    source: str
    path: str
    message: str

    def __str__(self) -> str:
        return (
            f"{self.source}: {self.path}: {self.message}"
            if self.path
            else (f"{self.source}: {self.message}")
        )


class LoadError(Exception):
    """One or more problems in the files read; ``problems`` lists them all."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Document:
    """One YAML document of a file: a canary resource, or another kind left alone."""

    source: str
    index: int
    kind: str
    resource: BaseModel | None


def field_path(loc: tuple[int | str, ...]) -> str:
    """('spec', 'strategy', 'canary', 'weights', 2) -> 'spec.strategy.canary.weights[2]'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(error: dict[str, Any]) -> str:
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if error["type"] == "extra_forbidden":
        return "unknown field: check its spelling against `canary crds` or docs/rollout.md"
    if error["type"] == "missing":
        name = next((p for p in reversed(error["loc"]) if isinstance(p, str)), "")
        return f"required field is missing: add '{name}' (see docs/rollout.md)"
    if error["type"] in _SHOWS_INPUT:
        return f"{message} (got {error.get('input')!r})"
    return message


# Errors about a value the user wrote: the message is clearer with the value in it.
_SHOWS_INPUT = frozenset(
    {
        "literal_error",
        "enum",
        "less_than",
        "less_than_equal",
        "greater_than",
        "greater_than_equal",
    }
)


def problems_of(source: str, error: ValidationError, prefix: str = "") -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = tuple(
            p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-"))
        )
        path = field_path(loc)
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        problems.append(Problem(source, path, _message(dict(item))))
    return problems


def parse_documents(source: str, text: str) -> list[Document]:
    """Every document of ``text``; raises LoadError listing all problems found."""
    try:
        raw_docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise LoadError([Problem(source, "", f"not valid YAML: {where}{problem}")]) from None
    except RecursionError:
        raise LoadError(
            [Problem(source, "", "nested too deeply to be a canary resource")]
        ) from None
    if not raw_docs:
        raise LoadError([Problem(source, "", "empty: no YAML documents in the file")])
    documents: list[Document] = []
    problems: list[Problem] = []
    multiple = len(raw_docs) > 1
    for index, raw in enumerate(raw_docs):
        label = f"{source}[{index}]" if multiple else source
        try:
            documents.append(_parse_one(label, index, raw))
        except LoadError as exc:
            problems.extend(exc.problems)
    if problems:
        raise LoadError(problems)
    return documents


def _parse_one(label: str, index: int, raw: object) -> Document:
    if not isinstance(raw, dict):
        raise LoadError(
            [
                Problem(
                    label,
                    "",
                    f"a resource is a mapping with apiVersion and kind, not {type(raw).__name__}",
                )
            ]
        )
    kind = raw.get("kind")
    if not isinstance(kind, str) or not kind:
        raise LoadError([Problem(label, "kind", "required field is missing: e.g. 'kind: Rollout'")])
    model = KINDS.get(kind)
    if model is None:
        return Document(label, index, kind, None)
    api_version = raw.get("apiVersion")
    if api_version != API_VERSION:
        raise LoadError(
            [
                Problem(
                    label, "apiVersion", f"{kind} is served as '{API_VERSION}', not {api_version!r}"
                )
            ]
        )
    try:
        return Document(label, index, kind, model.model_validate(raw))
    except ValidationError as exc:
        raise LoadError(problems_of(label, exc)) from None


def read_text(path: Path) -> str:
    """A file's text, or LoadError for a missing, huge or binary file."""
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError([Problem(source, "", f"cannot read: {exc.strerror or exc}")]) from None
    if len(data) > MAX_FILE_BYTES:
        raise LoadError([Problem(source, "", f"too large ({len(data)} bytes) for a resource file")])
    if b"\x00" in data:
        raise LoadError([Problem(source, "", "a binary file, not YAML or JSON")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise LoadError([Problem(source, "", "not UTF-8 text, so not YAML or JSON")]) from None


def load_file(path: Path) -> list[Document]:
    return parse_documents(str(path), read_text(path))


def load_rollout(path: Path) -> Rollout:
    """The one Rollout of a file (other kinds in it, e.g. its Deployment, are skipped)."""
    rollouts = [d.resource for d in load_file(path) if isinstance(d.resource, Rollout)]
    if len(rollouts) != 1:
        found = "no Rollout" if not rollouts else f"{len(rollouts)} Rollouts"
        raise LoadError(
            [Problem(str(path), "", f"{found} in the file: give a file with one Rollout")]
        )
    return rollouts[0]
