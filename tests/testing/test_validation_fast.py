"""The compiled fast path (`canary.testing.fast_schema`) changes no verdict and no message.

Differential: over every version of every real CRD the tests apply (the chart's, the mesh CRDs
under tests/data), seeded objects built from each schema and then mutated (wrong types, nulls,
out-of-range numbers, strings that break a pattern or a length, unknown enum values, missing
required fields, 1.0 and True where an integer is due, a trailing newline after a pattern's
`$`) go through `validation.check` twice: as it is, and with the fast path taken out (the
`jsonschema`-only path it had before). The two results must be equal, and wherever the compiled
check passes an object `jsonschema` must find no error (the one property the fast path rests on).
"""

from __future__ import annotations

import copy
import random
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft4Validator

from canary.testing import fast_schema, validation

Json = dict[str, Any]
ROOT = Path(__file__).resolve().parents[2]
CRD_FILES = sorted((ROOT / "charts/canary/crds").glob("*.yaml")) + sorted(
    (ROOT / "tests/data/mesh-crds").glob("*.yaml")
)
OBJECTS_PER_SCHEMA = 120
STRING_CANDIDATES = (
    "a",
    "abc",
    "web",
    "my-app.example.com",
    "x/y",
    "example.com/path",
    "example.com/a",
    "http://example.com",
    "https://example.com:8443",
    "*",
    "*.example.com",
    "Content-Type",
    "#general",
    "a_b",
    "A1",
    "10s",
    "127.0.0.1:8080",
    "",
)


def _schemas() -> Iterator[tuple[str, Json]]:
    for path in CRD_FILES:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            for version in doc["spec"]["versions"]:
                schema = version["schema"]["openAPIV3Schema"]
                yield f"{doc['metadata']['name']}/{version['name']}", schema


SCHEMAS = list(_schemas())


class Builder:
    """Objects from a schema: mostly what it asks for, with the choices seeded."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def value(self, schema: Json, depth: int = 0) -> Any:
        if schema.get("nullable") and self.rng.random() < 0.05:
            return None
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return copy.deepcopy(self.rng.choice(schema["enum"]))
        if schema.get("x-kubernetes-int-or-string"):
            return self.rng.choice([self.rng.randint(0, 100), f"{self.rng.randint(0, 100)}%"])
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            return self.mapping(schema, depth)
        if kind == "array":
            return self.array(schema, depth)
        if kind == "string":
            return self.string(schema)
        if kind == "integer":
            return self.number(schema, integer=True)
        if kind == "number":
            return self.number(schema, integer=False)
        if kind == "boolean":
            return self.rng.random() < 0.5
        return self.rng.choice([1, "x", {"k": "v"}, [1], True])

    def mapping(self, schema: Json, depth: int) -> Json:
        props: Json = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        out: Json = {}
        for key, sub in props.items():
            wanted = key in required or (depth < 6 and self.rng.random() < 0.3)
            if wanted and isinstance(sub, dict):
                out[key] = self.value(sub, depth + 1)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and not props:
            for n in range(self.rng.randint(0, 2)):
                out[f"key{n}"] = self.value(extra, depth + 1)
        if schema.get("x-kubernetes-preserve-unknown-fields") and not props:
            out["anything"] = {"goes": [1, "two"]}
        return out

    def array(self, schema: Json, depth: int) -> list[Any]:
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        low = int(schema.get("minItems", 0))
        high = min(int(schema.get("maxItems", 3)), low + 3)
        if depth >= 6:
            high = low
        return [self.value(items, depth + 1) for _ in range(self.rng.randint(low, max(low, high)))]

    def string(self, schema: Json) -> str:
        if schema.get("format") == "date-time":
            return "2026-12-06T07:00:00Z"
        pattern = schema.get("pattern")
        candidates = list(STRING_CANDIDATES)
        self.rng.shuffle(candidates)
        if isinstance(pattern, str):
            matching = [c for c in candidates if re.search(pattern, c)]
            text = matching[0] if matching else candidates[0]
        else:
            text = candidates[0] or "value"
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")
        text = text + "a" * max(0, low - len(text))
        return text[:high] if isinstance(high, int) else text

    def number(self, schema: Json, *, integer: bool) -> int | float:
        low = schema.get("minimum", 0)
        high = schema.get("maximum", low + 100)
        if schema.get("exclusiveMinimum"):
            low += 1
        value = self.rng.randint(int(low), int(max(low, high)))
        if integer or value + 0.5 > high:
            return value
        return value + self.rng.choice([0.0, 0.25, 0.5])


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into `value` (the root's own path, (), left out)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key)
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*path, index)
            yield from _leaves(item, (*path, index))


def _bad_value(rng: random.Random, current: Any) -> Any:
    """Something a schema may well refuse in place of `current`."""
    choices: list[Any] = [
        None,
        "not-a-number",
        -1,
        10**12,
        1.0,
        2.5,
        True,
        [],
        {},
        {"unexpected": 1},
        "x" * 300,
        "UPPER_and spaces",
        "",
    ]
    if isinstance(current, str):
        choices += [current + "\n", current + "!", current.upper(), current * 40]
    if isinstance(current, int) and not isinstance(current, bool):
        choices += [float(current), str(current), current + 10**6, -current - 1]
    if isinstance(current, list):
        choices += [current * 20, [None], current[:0]]
    return rng.choice(choices)


def _mutate(rng: random.Random, obj: Json) -> Json:
    out = copy.deepcopy(obj)
    for _ in range(rng.randint(1, 3)):
        paths = list(_leaves(out))
        if not paths:
            return out
        path = rng.choice(paths)
        parent = out
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        if isinstance(parent, dict) and rng.random() < 0.2:
            del parent[last]
        else:
            parent[last] = _bad_value(rng, parent[last])
    return out


def _without_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_schema, "passes", lambda check, body: False)


def _objects(name: str, schema: Json, seed: int) -> Iterator[Json]:
    rng = random.Random(f"{seed}:{name}")
    build = Builder(rng)
    for n in range(OBJECTS_PER_SCHEMA):
        obj = build.value(schema)
        assert isinstance(obj, dict)
        obj = obj if n % 3 == 0 else _mutate(rng, obj)
        yield {**obj, "metadata": {"name": f"o{n}", "namespace": "test"}}


def _results(schema: Json, objects: list[Json], olds: list[Json | None]) -> list[Any]:
    pairs = zip(objects, olds, strict=True)
    return [validation.check(schema, copy.deepcopy(obj), old) for obj, old in pairs]


@pytest.mark.parametrize(("name", "schema"), SCHEMAS, ids=[name for name, _ in SCHEMAS])
def test_fast_path_gives_the_same_result_as_jsonschema_alone(
    name: str, schema: Json, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = list(_objects(name, schema, seed=16))
    # every other write is an update of the object before it (status writes skip the spec)
    olds: list[Json | None] = [objects[n - 1] if n % 2 else None for n in range(len(objects))]
    verdicts: Counter[bool] = Counter()
    passes = fast_schema.passes

    def counted(check: fast_schema.Check | None, body: Any) -> bool:
        verdict = passes(check, body)
        verdicts[verdict] += 1
        return verdict

    with monkeypatch.context() as patched:
        patched.setattr(fast_schema, "passes", counted)
        fast = _results(schema, objects, olds)
    with monkeypatch.context() as patched:
        _without_fast_path(patched)
        slow = _results(schema, objects, olds)
    assert fast == slow
    # the compiled check both passed and refused many of them, for every schema
    assert verdicts[True] >= 10, verdicts
    assert verdicts[False] >= 15, verdicts


@pytest.mark.parametrize(("name", "schema"), SCHEMAS, ids=[name for name, _ in SCHEMAS])
def test_compiled_check_never_passes_what_jsonschema_refuses(name: str, schema: Json) -> None:
    validator, compiled = validation._validator(schema)
    assert compiled is not None, f"{name}: fastjsonschema could not compile the schema"
    kinds: Counter[str] = Counter()
    passed = 0
    for obj in _objects(name, schema, seed=61):
        body = {k: v for k, v in obj.items() if k != "metadata"}
        errors = list(validator.iter_errors(body))
        kinds.update(str(e.validator) for e in errors)
        if fast_schema.passes(compiled, body):
            passed += 1
            assert errors == [], f"{name}: the compiled check passed {body}"
    assert passed >= 5, f"{name}: only {passed} objects passed"
    assert kinds["type"] > 0, kinds


def test_the_mutations_reach_every_kind_of_schema_error() -> None:
    kinds: Counter[str] = Counter()
    for name, schema in SCHEMAS:
        validator, _ = validation._validator(schema)
        for obj in _objects(name, schema, seed=61):
            body = {k: v for k, v in obj.items() if k != "metadata"}
            kinds.update(str(e.validator) for e in validator.iter_errors(body))
    expected = {"type", "enum", "pattern", "required", "minimum", "maximum", "maxLength"}
    expected |= {"minLength", "maxItems", "oneOf", "anyOf"}
    assert expected <= set(kinds), kinds


ROLLOUTS = next(schema for name, schema in SCHEMAS if name.startswith("rollouts."))

EDGE_SCHEMA: Json = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z]+$"},
                "count": {"type": "integer", "minimum": 0},
                "ratio": {"type": "number", "nullable": True},
                "mode": {"type": "string", "enum": ["A", "B"], "nullable": True},
                "flag": {"enum": [0, 1]},
                "port": {"x-kubernetes-int-or-string": True},
                "when": {"type": "string", "format": "date-time"},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
    },
}


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "abc\n"},  # jsonschema's `$` allows a final newline, the compiled check does not
        {"name": "abc"},
        {"count": True},
        {"count": 1.0},
        {"count": -1},
        {"ratio": None},
        {"ratio": "1"},
        {"mode": None},
        {"mode": "C"},
        {"flag": True},
        {"flag": 1},
        {"flag": 1.0},
        {"port": 80},
        {"port": "http"},
        {"port": 8.5},
        {"port": None},
        {"when": "not a date"},
        {"free": {"x": [1, {"y": None}]}},
    ],
    ids=repr,
)
def test_edge_values_same_either_way(spec: Json, monkeypatch: pytest.MonkeyPatch) -> None:
    obj = {"metadata": {"name": "x"}, "spec": spec}
    fast = validation.check(EDGE_SCHEMA, copy.deepcopy(obj), None)
    with monkeypatch.context() as patched:
        _without_fast_path(patched)
        slow = validation.check(EDGE_SCHEMA, copy.deepcopy(obj), None)
    assert fast == slow


def test_a_schema_fastjsonschema_cannot_compile_falls_back_to_jsonschema() -> None:
    assert fast_schema.compile_check({"type": "string", "pattern": "("}) is None
    assert fast_schema.passes(None, "anything") is False
    schema: Json = {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"a": {"pattern": "("}}}},
    }
    with pytest.raises(re.error):  # jsonschema itself refuses the broken pattern, as before
        validation.check(schema, {"spec": {"a": "x"}}, None)


def test_one_compilation_per_distinct_schema() -> None:
    plain = validation.to_json_schema(ROLLOUTS)
    compiled = fast_schema.compile_check(plain)
    assert compiled is not None
    assert fast_schema.compile_check(copy.deepcopy(plain)) is compiled
    other = {**plain, "required": ["spec", "status"]}
    assert fast_schema.compile_check(other) is not compiled
    assert not fast_schema.passes(fast_schema.compile_check(other), {"spec": {}})
    assert fast_schema.passes(compiled, {"spec": {}}) is (
        list(Draft4Validator(plain).iter_errors({"spec": {}})) == []
    )


def test_a_valid_rollout_status_write_passes_the_compiled_check() -> None:
    validator, compiled = validation._validator(ROLLOUTS, frozenset({"spec"}))
    body = {"apiVersion": "canary.dev/v1alpha1", "kind": "Rollout", "spec": {}, "status": {}}
    assert fast_schema.passes(compiled, body)
    assert list(validator.iter_errors(body)) == []
