"""Queries that read only the Rollout's own namespace: a check on the PromQL text.

Where a policy names its ``namespaceLabel`` (or the controller's ``--namespace-label``), every
vector selector of a query must hold the exact matcher ``<label>="{{ namespace }}"`` — the
namespace the controller fills in at each tick, escaped — and no ``label_replace`` or
``label_join`` may write that label (which would pass another namespace's series off as the
canary's). A selector is a metric name with or without braces, or bare braces; names that are
functions, aggregation modifiers, keywords or grouping labels are not selectors.

This reads the query's text, not its meaning: it refuses some harmless queries (a selector
scoped by a regular expression that happens to match one namespace) and relies on the
selector being the only way PromQL reads series, which holds for instant and range vectors,
subqueries and ``@``/``offset`` modifiers alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<placeholder>\{\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\})
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<number>[0-9][0-9A-Za-z_.]*|\.[0-9]+)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^=<>@])
  | (?P<punct>[{}()\[\],])
    """,
    re.VERBOSE,
)
_WORDS = (
    "by without on ignoring group_left group_right offset bool and or unless atan2 start end "
    "inf nan sum min max avg count stddev stdvar topk bottomk quantile count_values group "
    "limitk limit_ratio"
)
KEYWORDS = frozenset(_WORDS.split())
"""Words that are never a metric name: modifiers, operators, aggregations (which may be
followed by ``by``/``without`` rather than a parenthesis)."""
LABEL_LISTS = frozenset(("by", "without", "on", "ignoring", "group_left", "group_right"))
LABEL_WRITERS = {"label_replace": 1, "label_join": 1}
"""Functions and the index of their destination label argument."""


class ScopeError(ValueError):
    """A query that may read series of another namespace; the message says which part."""


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


def _tokens(query: str) -> list[_Token]:
    found: list[_Token] = []
    at = 0
    while at < len(query):
        match = _TOKEN.match(query, at)
        if match is None:
            raise ScopeError(f"cannot read the query at {query[at : at + 20]!r}")
        kind = match.lastgroup or ""
        if kind not in ("space", "comment"):
            found.append(_Token(kind, match.group(0)))
        at = match.end()
    return found


def _required(label: str) -> re.Pattern[str]:
    return re.compile(
        rf"""(?:^|,)\s*{re.escape(label)}\s*=\s*(["'])\{{\{{\s*namespace\s*\}}\}}\1\s*(?:,|$)"""
    )


def check_scoped(query: str, label: str) -> None:
    """Raise ScopeError unless every selector of ``query`` is scoped to the namespace."""
    tokens = _tokens(query)
    needed = _required(label)
    calls: list[list[object]] = []  # [function or keyword before "(", argument index]
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.text == "(":
            before = tokens[i - 1].text if i > 0 and tokens[i - 1].kind == "ident" else ""
            calls.append([before.lower(), 0])
        elif token.text == ")" and calls:
            calls.pop()
        elif token.text == "," and calls:
            calls[-1][1] = int(str(calls[-1][1])) + 1
        elif token.kind == "string" and calls:
            function, index = str(calls[-1][0]), int(str(calls[-1][1]))
            if LABEL_WRITERS.get(function) == index and token.text[1:-1] == label:
                raise ScopeError(f"{function} writes the label {label!r}: refused")
        elif token.kind == "ident" or token.text == "{":
            i = _selector(tokens, i, calls, needed, label)
            continue
        i += 1


def _selector(
    tokens: list[_Token],
    i: int,
    calls: list[list[object]],
    needed: re.Pattern[str],
    label: str,
) -> int:
    """Check the selector starting at ``i`` (if it is one); the index after it."""
    token = tokens[i]
    following = tokens[i + 1] if i + 1 < len(tokens) else None
    if token.kind == "ident":
        in_labels = bool(calls) and str(calls[-1][0]) in LABEL_LISTS
        after_offset = i > 0 and tokens[i - 1].text.lower() in ("offset", "@")
        if (
            token.text.lower() in KEYWORDS
            or (following is not None and following.text == "(")
            or in_labels
            or after_offset
        ):
            return i + 1
        if following is None or following.text != "{":
            raise ScopeError(
                f"selector {token.text} reads every namespace: add "
                f'{{{label}="{{{{ namespace }}}}"}}'
            )
        start = i + 1
    else:
        start = i
    end = start + 1
    while end < len(tokens) and tokens[end].text != "}":
        end += 1
    matchers = "".join(t.text for t in tokens[start + 1 : end])
    if not needed.search(matchers):
        name = token.text if token.kind == "ident" else "{...}"
        raise ScopeError(
            f'selector {name}{{{matchers}}} lacks {label}="{{{{ namespace }}}}": it may read '
            "another namespace's series"
        )
    return end + 1
