"""A policy's query template with the tick's ``{{ variables }}``, each escaped for where it stands.

A template is read once (`compile_template`, cached by its text): the text between its
placeholders, and for each placeholder the context it stands in (plain code, which quotes,
a regular expression, the replacement argument of ``label_replace``). Rendering a tick's query
is then joining the pieces with the escaped values; the controller renders the same few
templates for every Rollout and tick, so the character-by-character reading is done once a
template, not once a tick.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canary.analysis.provider import QueryError

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_DURATION = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d|w|y))+")
_TOKENS = {"interval": _DURATION, "objective_ms": _NUMBER, "objective_seconds": _NUMBER}
_REGEX_SPECIAL = frozenset("\\.+*?()|[]{}^$")
_CONTROL = {c: {10: "\\n", 13: "\\r", 9: "\\t"}.get(c, f"\\x{c:02x}") for c in [*range(32), 127]}
_FUNCTION_BEFORE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*$")
TEMPLATES_KEPT = 4096
"""Compiled templates kept (least recently used dropped): a policy has a few, a cluster a few
policies and inline checks."""


def escape_string(value: str, quote: str = '"') -> str:
    """``value`` as the inside of a PromQL string quoted with ``quote``."""
    return value.translate({ord("\\"): "\\\\", ord(quote): "\\" + quote, **_CONTROL})


def escape_regex(value: str) -> str:
    """``value`` matched literally by an RE2 regular expression."""
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in value)


@dataclass(frozen=True)
class Slot:
    """A placeholder and where it stands: ``quote`` is the open string's quote (``#`` in a
    comment, empty in plain code); ``regex`` inside a regular expression; ``replacement`` in
    label_replace's replacement argument (where ``$1`` would expand)."""

    name: str
    quote: str
    regex: bool
    replacement: bool


@dataclass(frozen=True)
class Template:
    """A template read once: literal text and slots in order, and the error that stopped the
    reading, if any (raised after the slots before it, as a one-pass renderer would)."""

    pieces: tuple[str | Slot, ...]
    error: str | None


def render(template: str, variables: Mapping[str, str]) -> str:
    """``template`` with each ``{{ name }}`` replaced, escaped for where it stands.

    Inside a string the value is escaped for that string (and for a regular expression after
    ``=~``/``!~`` and as the regex argument of ``label_replace``; ``$`` doubled in its
    replacement argument), so no value can close the string or mean more than itself;
    outside strings only numbers and durations may go. ``interval`` must be a duration and
    ``objective_*`` numbers, wherever they stand. An unknown name is a QueryError naming it.
    """
    compiled = compile_template(template)
    out = [p if isinstance(p, str) else _fill(p, variables) for p in compiled.pieces]
    if compiled.error is not None:
        raise QueryError(compiled.error)
    return "".join(out)


def _fill(slot: Slot, variables: Mapping[str, str]) -> str:
    value = _value(slot.name, variables, slot.quote, slot.regex)
    return value.replace("$", "$$") if slot.replacement else value


@functools.lru_cache(maxsize=TEMPLATES_KEPT)
def compile_template(template: str) -> Template:
    """Read ``template`` once: where each placeholder stands (strings, comments, calls)."""
    pieces: list[str | Slot] = []
    literal: list[str] = []
    quote = ""  # the open string's quote; "#" in a comment; "" in plain code
    regex = False
    calls: list[list[Any]] = []  # open parentheses: [function name, argument index]
    i = 0
    while i < len(template):
        if template.startswith("{{", i):
            match = _PLACEHOLDER.match(template, i)
            if match is None:
                return _stopped(pieces, literal, f"malformed placeholder {template[i : i + 24]!r}")
            pieces.append("".join(literal))
            literal = []
            replacement = quote in ('"', "'") and _argument(calls) == ("label_replace", 2)
            pieces.append(Slot(match.group(1), quote, regex, replacement))
            i = match.end()
            continue
        char = template[i]
        literal.append(char)
        i += 1
        if quote in ('"', "'"):
            if char == "\\" and i < len(template):
                literal.append(template[i])
                i += 1
            elif char == quote:
                quote = ""
        elif (quote == "`" and char == "`") or (quote == "#" and char == "\n"):
            quote = ""
        elif not quote and char in "\"'`#":
            quote = char
            regex = template[: i - 1].rstrip().endswith(("=~", "!~")) or _argument(calls) == (
                "label_replace",
                4,
            )
        elif not quote:
            _track_call(calls, template, i - 1, char)
    if quote and quote != "#":
        return _stopped(pieces, literal, f"unterminated {quote}-quoted string in the query")
    pieces.append("".join(literal))
    return Template(tuple(p for p in pieces if p != ""), None)


def _stopped(pieces: list[str | Slot], literal: list[str], error: str) -> Template:
    return Template((*pieces, "".join(literal)), error)


def _track_call(calls: list[list[Any]], template: str, at: int, char: str) -> None:
    """Follow parentheses and commas outside strings: which function's argument we are in."""
    if char == "(":
        found = _FUNCTION_BEFORE.search(template, max(0, at - 64), at)
        calls.append([found.group(1).lower() if found else "", 0])
    elif char == ")" and calls:
        calls.pop()
    elif char == "," and calls:
        calls[-1][1] += 1


def _argument(calls: list[list[Any]]) -> tuple[str, int] | None:
    return (str(calls[-1][0]), int(calls[-1][1])) if calls else None


def _value(name: str, variables: Mapping[str, str], quote: str, regex: bool) -> str:
    if name not in variables:
        known = ", ".join(sorted(variables)) or "none"
        raise QueryError(f"unknown variable {{{{ {name} }}}} (known: {known})")
    value = variables[name]
    pattern = _TOKENS.get(name)
    if pattern is not None and not pattern.fullmatch(value):
        what = "a duration such as 1m" if pattern is _DURATION else "a number"
        raise QueryError(f"variable {name} must be {what}, not {value!r}")
    if not quote:
        if _NUMBER.fullmatch(value) or _DURATION.fullmatch(value):
            return value
        raise QueryError(
            f"{{{{ {name} }}}} stands outside quotes, where only a number or a duration may; "
            f'quote it ("{{{{ {name} }}}}") (value {value!r})'
        )
    if regex and quote != "#":
        value = escape_regex(value)
    if quote == "`":
        if "`" in value:
            raise QueryError(f"{{{{ {name} }}}} is in a `raw string` and its value has a backtick")
        return value
    return escape_string(value, "'" if quote == "'" else '"')
