"""A compiled yes/no schema check, the fast path in front of `jsonschema` (`validation.check`).

`fastjsonschema` turns a JSON Schema into plain Python code, several times cheaper than
`jsonschema`'s `iter_errors` for an object that passes, which almost every write does. It only
answers "valid or not": when it says valid the write is valid, and when it says not (or cannot
compile the schema) `jsonschema` runs as before and its errors are the answer, so no verdict and
no message changes. That holds as long as the compiled check is never more lenient than
`jsonschema`'s Draft 4 validator; where the two differ, the compiled one is the stricter (it
reads a pattern's `$` as the end of the string, and formats are not checked by either here).
`tests/testing/test_validation_fast.py` checks that over the real CRDs and many seeded objects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import fastjsonschema

Json = dict[str, Any]
Check = Callable[[Any], Any]

# Draft 4 (what OpenAPI v3.0 and `jsonschema`'s Draft4Validator read): without it fastjsonschema
# takes the newest draft, where 1.0 is an integer and exclusiveMinimum is a number
_DRAFT4 = "http://json-schema.org/draft-04/schema#"


_SCHEMA_MAPS = ("properties", "patternProperties", "definitions")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_ONES = ("not", "items", "additionalProperties")


def escape_class_dollars(pattern: str) -> str:
    """`pattern` with each `$` inside a character class written `\\$` (the same class).

    fastjsonschema reads every unescaped `$` as the end of the string (`\\Z`), in a class too,
    where Python's `re` refuses `\\Z` (the Gateway API CRDs' `[...!$&'()*+,;=:]`)."""
    out: list[str] = []
    in_class = False
    opened = 0  # where the class's members start in `out`; a `]` first among them is one
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            out.append(pattern[index : index + 2])
            index += 2
            continue
        if in_class:
            first = len(out) == opened or (len(out) == opened + 1 and out[opened] == "^")
            if char == "]" and not first:
                in_class = False
            elif char == "$":
                char = "\\$"
        elif char == "[":
            in_class, opened = True, len(out) + 1
        out.append(char)
        index += 1
    return "".join(out)


def _with_escaped_patterns(schema: Any) -> Any:
    """A copy of a schema with `escape_class_dollars` applied to its `pattern`s (and only to
    them: an enum value or a property that happens to be called `pattern` is left alone)."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if isinstance(out.get("pattern"), str):
        out["pattern"] = escape_class_dollars(out["pattern"])
    for key in _SCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: _with_escaped_patterns(sub) for name, sub in out[key].items()}
    for key in _SCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [_with_escaped_patterns(sub) for sub in out[key]]
    for key in _SCHEMA_ONES:
        if isinstance(out.get(key), list):
            out[key] = [_with_escaped_patterns(sub) for sub in out[key]]
        elif isinstance(out.get(key), dict):
            out[key] = _with_escaped_patterns(out[key])
    return out


_COMPILED: dict[str, Check | None] = {}


def compile_check(plain: Json) -> Check | None:
    """The compiled check of a plain (already converted) JSON Schema, or None when
    `fastjsonschema` cannot compile it (then `jsonschema` alone decides). One compilation per
    distinct schema in the process (1-50 ms for the CRDs the tests apply), shared by every API
    server stand-in that holds the same CRD."""
    text = json.dumps(plain, sort_keys=True, default=repr)  # a YAML date in an enum, say
    if text not in _COMPILED:
        _COMPILED[text] = _compile(plain)
    return _COMPILED[text]


def _compile(plain: Json) -> Check | None:
    try:
        check: Check = fastjsonschema.compile(
            {**_with_escaped_patterns(plain), "$schema": _DRAFT4},
            use_default=False,
            use_formats=False,
            detailed_exceptions=False,
        )
    except (ValueError, TypeError, re.error, RecursionError):  # a definition error is a ValueError
        return None
    return check


def passes(check: Check | None, body: Any) -> bool:
    """True when the compiled check accepts `body`; False when it rejects it or is missing."""
    if check is None:
        return False
    try:
        check(body)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True
