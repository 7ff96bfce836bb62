"""The `x-kubernetes-validations` rules of a CRD schema, evaluated with cel-python.

Best effort by design: a rule that cel-python cannot compile or evaluate (Kubernetes' own CEL
libraries but `isSorted`: `url`, `quantity`, `format`, optionals...) is skipped, never counted as a
failure, so the server never rejects what a real one would accept because of a gap here.
Transition rules (those naming `oldSelf`) run on updates only, where the old value exists.
Without cel-python installed, no rule is evaluated.
"""

from __future__ import annotations

import functools
import importlib
import itertools
from typing import Any

from canary.testing.errors import cause

Json = dict[str, Any]

celpy: Any
try:
    celpy = importlib.import_module("celpy")
except ImportError:  # pragma: no cover - cel-python is a dev dependency
    celpy = None

MISSING = object()


def _is_sorted(values: Any) -> Any:
    """Kubernetes' list library `isSorted()`, which standard CEL lacks."""
    items = list(values)
    return celpy.celtypes.BoolType(all(a <= b for a, b in itertools.pairwise(items)))


@functools.cache
def _program(rule: str) -> Any:
    """The compiled rule, or None when cel-python cannot compile it."""
    if celpy is None:
        return None
    env = celpy.Environment()
    try:
        return env.program(env.compile(rule), functions={"isSorted": _is_sorted})
    except Exception:  # cel-python raises several unrelated types on what it cannot read
        return None


def _holds(rule: str, value: Any, old: Any) -> bool:
    """False only when the rule evaluated cleanly to false."""
    program = _program(rule)
    if program is None:
        return True
    activation = {"self": celpy.json_to_cel(value)}
    if "oldSelf" in rule:
        if old is MISSING:
            return True
        activation["oldSelf"] = celpy.json_to_cel(old)
    try:
        result = program.evaluate(activation)
    except Exception:  # an evaluation error is not a verdict
        return True
    return not (isinstance(result, celpy.celtypes.BoolType) and not bool(result))


def _where(path: list[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def violations(
    schema: Json, value: Any, old: Any = MISSING, path: list[Any] | None = None
) -> list[Json]:
    """A StatusCause per rule `value` breaks, at every level of the schema it reaches."""
    if celpy is None or not isinstance(schema, dict):
        return []
    path = path or []
    found = []
    for rule in schema.get("x-kubernetes-validations") or []:
        text = rule.get("rule", "")
        if not _holds(text, value, old):
            where = _where(path) + (rule.get("fieldPath") or "")
            kind = "object" if isinstance(value, dict) else type(value).__name__
            message = rule.get("message") or f"failed rule: {text}"
            found.append(cause(where, f'Invalid value: "{kind}": {message}'))
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                was = old.get(key, MISSING) if isinstance(old, dict) else MISSING
                found += violations(sub, item, was, [*path, key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            found += violations(schema["items"], item, MISSING, [*path, index])
    return found
