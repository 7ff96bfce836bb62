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

from canary.model.command import RolloutCommand
from canary.model.fields import field_help, suggest_field
from canary.model.notification import NotificationChannel
from canary.model.policy import AnalysisPolicy, ClusterAnalysisPolicy
from canary.model.rollout import API_VERSION, Rollout

KINDS: dict[str, type[BaseModel]] = {
    "Rollout": Rollout,
    "AnalysisPolicy": AnalysisPolicy,
    "ClusterAnalysisPolicy": ClusterAnalysisPolicy,
    "NotificationChannel": NotificationChannel,
    "RolloutCommand": RolloutCommand,
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


def _message(error: dict[str, Any], model: type[BaseModel] | None) -> str:
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        guess = suggest_field(model, loc) if model is not None else None
        hint = f"did you mean '{guess}'? " if guess else ""
        return f"unknown field: {hint}`canary crds` prints every field of each kind"
    if error["type"] == "missing":
        name = next((p for p in reversed(loc) if isinstance(p, str)), "")
        help_text = field_help(model, loc) if model is not None else None
        return f"required field is missing: add '{name}'" + (f" ({help_text})" if help_text else "")
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


def problems_of(
    source: str, error: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = tuple(
            p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-"))
        )
        path = field_path(loc)
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        problems.append(Problem(source, path, _message({**item, "loc": loc}, model)))
    return problems


class _AliasError(yaml.YAMLError):
    """A YAML alias: refused before it is expanded (a few hundred bytes of aliases nested a
    few levels expand to gigabytes)."""


class _NoAliasLoader(yaml.SafeLoader):
    """The safe loader, refusing anchors and aliases (Kubernetes manifests need neither)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise _AliasError(
                f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not "
                "accepted in canary resources: write the value out in full"
            )
        return super().compose_node(parent, index)

    def construct_as_text(self, node: Any) -> Any:
        return self.construct_scalar(node)

    def construct_yaml_int(self, node: Any) -> Any:
        # Python refuses to read integers of more than 4,300 digits: pass the text on, and
        # the model names the field that cannot hold it.
        if len(str(node.value)) > _MAX_INT_DIGITS:
            return str(node.value)
        return super().construct_yaml_int(node)


_MAX_INT_DIGITS = 30

# Timestamps stay text: the model reads the ones it knows (creationTimestamp) and names the
# field of one that is not a date, where YAML would fail on the whole file.
_NoAliasLoader.add_constructor("tag:yaml.org,2002:timestamp", _NoAliasLoader.construct_as_text)
_NoAliasLoader.add_constructor("tag:yaml.org,2002:int", _NoAliasLoader.construct_yaml_int)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


def raw_documents(source: str, text: str) -> list[Any]:
    """The YAML documents of ``text`` as read (no alias expanded), before any model; raises
    LoadError when the text cannot be read."""
    try:
        return [d for d in yaml.load_all(text, Loader=_NoAliasLoader) if d is not None]
    except _AliasError as exc:
        raise LoadError([Problem(source, "", str(exc))]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise LoadError([Problem(source, "", f"not valid YAML: {where}{problem}")]) from None
    except RecursionError:
        raise LoadError(
            [Problem(source, "", "nested too deeply to be a canary resource")]
        ) from None
    except (ValueError, OverflowError) as exc:
        # a scalar YAML types itself but cannot hold: a date like 2001-13-45, a 5,000-digit int
        raise LoadError([Problem(source, "", f"a value cannot be read: {_short(exc)}")]) from None


def parse_documents(source: str, text: str) -> list[Document]:
    """Every document of ``text``; raises LoadError listing all problems found."""
    raw_docs = raw_documents(source, text)
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
        raise LoadError(problems_of(label, exc, model=model)) from None


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
