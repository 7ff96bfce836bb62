"""Custom resources checked against their CRD's openAPIV3Schema, as the API server does.

In order: unknown fields are pruned (and reported, for `fieldValidation=Strict|Warn`), defaults
are filled in, the schema is checked with `jsonschema` (Draft 4, the dialect OpenAPI v3.0
extends; a compiled check, `canary.testing.fast_schema`, answers first and `jsonschema` runs
only for an object it rejects, to word the causes), then the `x-kubernetes-validations` CEL
rules (see `canary.testing.cel`). Errors are worded like the real server's field errors:
`spec.x: Required value`, `spec.x: Invalid value: ...`, `spec.x: Unsupported value: ...`.

An update checks only the top-level fields it changes (a status write does not check the
spec again): a field equal to the stored one was checked when it was stored, and the real
server's validation ratcheting lets an unchanged field be (`_unchanged`).
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError

from canary.testing import cel, fast_schema
from canary.testing.errors import cause
from canary.testing.fast_schema import Check
from canary.testing.jsontree import clone

Json = dict[str, Any]

_PRESERVE = "x-kubernetes-preserve-unknown-fields"
_EMBEDDED = "x-kubernetes-embedded-resource"
_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer"}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return _TYPE_NAMES.get(type(value), "number")


def field_path(parts: Any) -> str:
    """`spec.http[0].route`, the way the server names a field."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def to_json_schema(node: Any) -> Any:
    """OpenAPI v3.0 + Kubernetes extensions -> plain JSON Schema (nullable, int-or-string)."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    out.pop("nullable", None)
    out.pop("default", None)
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable"):
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif isinstance(kind, list):
            out["type"] = [*kind, "null"]
        if isinstance(out.get("enum"), list):
            out["enum"] = [*out["enum"], None]
    return out


_VALIDATORS: dict[tuple[int, frozenset[str]], tuple[Json, Draft4Validator, Check | None]] = {}


def _validator(
    schema: Json, unchanged: frozenset[str] = frozenset()
) -> tuple[Draft4Validator, Check | None]:
    """One `jsonschema` validator and one compiled check (`fast_schema`) per schema object (kept
    alive here, so its id stays its own) and set of top-level fields left out (`_unchanged`)."""
    key = (id(schema), unchanged)
    found = _VALIDATORS.get(key)
    if found is None or found[0] is not schema:
        plain = to_json_schema(schema)
        if unchanged:
            properties = {
                k: ({} if k in unchanged else v) for k, v in plain.get("properties", {}).items()
            }
            plain = {**plain, "properties": properties}
        found = (schema, Draft4Validator(plain), fast_schema.compile_check(plain))
        _VALIDATORS[key] = found
    return found[1], found[2]


def _schema_errors(schema: Json, body: Json, unchanged: frozenset[str]) -> list[ValidationError]:
    """The schema's errors against `body`, in path order: none when the compiled check passes it
    (it is never more lenient than `jsonschema`), else `jsonschema`'s, which word the causes."""
    validator, compiled = _validator(schema, unchanged)
    if fast_schema.passes(compiled, body):
        return []
    return sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))


def _unchanged(body: Json, old: Json | None) -> frozenset[str]:
    """The top-level fields (``spec``, ``status``, ...) equal to the stored object's: they were
    checked when it was stored, and are not checked again (a status write does not check the
    spec again), as the API server's validation ratcheting lets an unchanged field be."""
    if old is None:
        return frozenset()
    return frozenset(k for k, v in body.items() if k in old and old[k] == v)


def prune_and_default(schema: Json, value: Any, path: list[Any], unknown: list[str]) -> Any:
    """Drop the fields the schema does not know (naming them in `unknown`); fill defaults."""
    if isinstance(value, dict):
        props: Json = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        keep_all = schema.get(_PRESERVE) or extra is True
        embedded = schema.get(_EMBEDDED) or not path
        out = {}
        for key, item in value.items():
            sub = props.get(key)
            if sub is None and isinstance(extra, dict):
                sub = extra
            if embedded and key in ("apiVersion", "kind", "metadata"):
                out[key] = item
            elif sub is not None:
                out[key] = prune_and_default(sub, item, [*path, key], unknown)
            elif keep_all:
                out[key] = item
            else:
                unknown.append(field_path([*path, key]))
        for key, sub in props.items():
            if key not in out and isinstance(sub, dict) and "default" in sub:
                out[key] = prune_and_default(sub, clone(sub["default"]), [*path, key], [])
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [
            prune_and_default(schema["items"], v, [*path, n], unknown) for n, v in enumerate(value)
        ]
    return value


def _quote(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict | list):
        return f'"{_type_name(value)}"'
    return json.dumps(value)


def _describe(error: ValidationError) -> Json:
    """One schema error as a StatusCause, in the real server's words."""
    where = field_path(error.absolute_path)
    v = error.validator
    expected: Any = error.validator_value
    value: Any = error.instance
    if v == "required":
        missing = next((m for m in expected if isinstance(value, dict) and m not in value), "")
        return cause(
            field_path([*error.absolute_path, missing]), "Required value", "FieldValueRequired"
        )
    if v == "enum":
        options = ", ".join(_quote(o) for o in expected)
        return cause(
            where,
            f"Unsupported value: {_quote(value)}: supported values: {options}",
            "FieldValueNotSupported",
        )
    if v == "type":
        kind = expected if isinstance(expected, str) else "/".join(expected)
        actual = _type_name(value)
        text = f'Invalid value: "{actual}": {where} in body must be of type {kind}: "{actual}"'
        return cause(where, text, "FieldValueTypeInvalid")
    if v == "maxLength":
        return cause(where, f"Too long: may not be more than {expected} bytes", "FieldValueTooLong")
    if v == "maxItems":
        return cause(
            where,
            f"Too many: {len(value)}: must have at most {expected} items",
            "FieldValueTooMany",
        )
    phrases = {
        "pattern": f"should match '{expected}'",
        "minimum": f"should be greater than or equal to {expected}",
        "maximum": f"should be less than or equal to {expected}",
        "minLength": f"should be at least {expected} chars long",
        "minItems": f"should have at least {expected} items",
    }
    phrase = phrases.get(str(v))
    text = f"{where} in body {phrase}" if phrase else error.message
    return cause(where, f"Invalid value: {_quote(value)}: {text}")


def check(schema: Json, obj: Json, old: Json | None) -> tuple[Json, list[Json], list[str]]:
    """(the pruned and defaulted object, the StatusCauses against it, the unknown fields)."""
    unknown: list[str] = []
    cleaned = prune_and_default(schema, obj, [], unknown)
    body = {k: v for k, v in cleaned.items() if k != "metadata"}
    causes = [_describe(e) for e in _schema_errors(schema, body, _unchanged(body, old))]
    if not causes:
        was = {k: v for k, v in old.items() if k != "metadata"} if old is not None else cel.MISSING
        causes = cel.violations(schema, body, was)
    return cleaned, causes, unknown
