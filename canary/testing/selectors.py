"""Label selectors (equality and set-based) and field selectors, as list and watch take them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from canary.testing.errors import bad_request

Json = dict[str, Any]
Matcher = Callable[[Json], bool]

_SET = re.compile(r"^\s*(\S+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ = re.compile(r"^\s*([^!=\s]+)\s*(==|=|!=)\s*(\S*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([^!=\s()]+)\s*$")


def _split(text: str) -> list[str]:
    """Split on the commas that are not inside a `(...)` value set."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(ch, 0)
        current += ch
    parts.append(current)
    return [p for p in parts if p.strip()]


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return value == self.values[0]
        if self.op == "!=":
            return value != self.values[0]
        if self.op == "in":
            return value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        return present if self.op == "exists" else not present


def parse_label_selector(text: str) -> list[Requirement]:
    reqs = []
    for part in _split(text or ""):
        if m := _SET.match(part):
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append(Requirement(m.group(1), m.group(2), values))
        elif m := _EQ.match(part):
            reqs.append(Requirement(m.group(1), "!=" if m.group(2) == "!=" else "=", (m.group(3),)))
        elif m := _EXISTS.match(part):
            reqs.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
        else:
            raise bad_request(f"unable to parse requirement: {part.strip()!r}")
    return reqs


def _field(obj: Json, path: str) -> str | None:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if node is None or isinstance(node, dict | list):
        return None
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def parse_field_selector(text: str) -> list[tuple[str, bool, str]]:
    """(path, equal?, value) triples; any dotted path of the object is accepted."""
    found = []
    for part in _split(text or ""):
        m = _EQ.match(part)
        if not m:
            raise bad_request(f"invalid field selector: {part.strip()!r}")
        found.append((m.group(1), m.group(2) != "!=", m.group(3)))
    return found


def selector(label_selector: str | None, field_selector: str | None) -> Matcher:
    """A predicate on objects; raises 400 BadRequest for a selector that does not parse."""
    labels = parse_label_selector(label_selector or "")
    fields = parse_field_selector(field_selector or "")

    def matches(obj: Json) -> bool:
        have = (obj.get("metadata") or {}).get("labels") or {}
        if not all(r.matches(have) for r in labels):
            return False
        return all(((_field(obj, p) or "") == v) == eq for p, eq, v in fields)

    return matches


def selector_from_match_labels(spec: Json | None) -> str:
    """The text form of a LabelSelector object (matchLabels and matchExpressions)."""
    if not spec:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((spec.get("matchLabels") or {}).items())]
    for expr in spec.get("matchExpressions") or []:
        op, key = expr.get("operator", ""), expr.get("key", "")
        values = ",".join(expr.get("values") or [])
        if op in ("In", "NotIn"):
            parts.append(f"{key} {op.lower()} ({values})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)
