"""The chart's values: values.yaml and every documented set of values against
values.schema.json (draft-07, as helm checks them), bad values refused with a message naming
the value, every value in the schema, commented in values.yaml and in docs/helm.md's table."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
import yaml
from chart_support import (
    CHART,
    DOCS,
    ROOT,
    VARIANTS,
    default_values,
    rendered,
    schema,
    schema_errors,
    values_of,
)

Json = dict[str, Any]


# --- values.yaml and values.schema.json -------------------------------------------------------


def test_the_schema_is_draft_07_and_accepts_values_yaml() -> None:
    assert schema()["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema_errors(default_values()) == []


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_schema_accepts_each_variant_the_tests_render(variant: str) -> None:
    assert schema_errors(values_of(variant)) == []


BAD_VALUES = [
    pytest.param(
        {"replicaCount": "two"}, "replicaCount: 'two' is not of type 'integer'", id="type"
    ),
    pytest.param(
        {"replicas": 2},
        "(root): Additional properties are not allowed ('replicas' was unexpected)",
        id="unknown-key",
    ),
    pytest.param(
        {"image": {"tag": "1.0", "sha": "00"}},
        "image: Additional properties are not allowed ('sha' was unexpected)",
        id="unknown-nested-key",
    ),
    pytest.param(
        {"leaderElection": {"enabled": False}},
        "replicaCount: 2 is greater than the maximum of 1",
        id="two-replicas-without-election",
    ),
    pytest.param(
        {"replicaCount": 1, "shards": 2, "leaderElection": {"enabled": False}},
        "shards: 2 is greater than the maximum of 1",
        id="shards-without-election",
    ),
    pytest.param({"shards": 0}, "shards: 0 is less than the minimum of 1", id="no-shards"),
    pytest.param(
        {"api": {"enabled": True}},
        "api.tokens.existingSecret: '' should be non-empty",
        id="api-without-tokens",
    ),
    pytest.param(
        {"api": {"tokens": {"entries": {"ci": "admin abcdefabcdefabcdef"}}}},
        "api.tokens.entries.ci: 'admin abcdefabcdefabcdef' does not match",
        id="token-scope",
    ),
    pytest.param(
        {"watchNamespaces": ["Shop"]}, "watchNamespaces.0: 'Shop' does not match", id="namespace"
    ),
    pytest.param(
        {"leaderElection": {"leaseDuration": "15"}},
        "leaderElection.leaseDuration: '15' does not match",
        id="duration",
    ),
    pytest.param({"logLevel": "trace"}, "logLevel: 'trace' is not one of", id="enum"),
    pytest.param(
        {"notifications": {"rolloutLink": "https://grafana.example.com/d/x?var-rollout={rollout}"}},
        "notifications.rolloutLink: 'https://grafana.example.com/d/x?var-rollout={rollout}' "
        "does not match",
        id="rollout-link-placeholder",
    ),
    pytest.param(
        {"notifications": {"rolloutLink": "grafana.example.com/d/x"}},
        "notifications.rolloutLink: 'grafana.example.com/d/x' does not match",
        id="rollout-link-not-http",
    ),
    pytest.param(
        {"prometheus": {"url": "prometheus:9090"}},
        "prometheus.url: 'prometheus:9090' does not match",
        id="url",
    ),
]


@pytest.mark.parametrize(("change", "message"), BAD_VALUES)
def test_the_schema_rejects_a_bad_value_with_a_clear_message(change: Json, message: str) -> None:
    values = default_values()
    for key, value in change.items():
        values[key] = {**values[key], **value} if isinstance(value, dict) else value
    errors = schema_errors(values)
    assert any(e.startswith(message) for e in errors), errors


def _leaf_paths(node: Json, prefix: str = "") -> list[str]:
    """Paths of the schema's values: a property with properties of its own is a group. A
    retired value (``deprecated``) stays in the schema only, for the template to refuse it
    naming its successor."""
    paths = []
    for name, sub in node.get("properties", {}).items():
        if sub.get("deprecated"):
            continue
        if "properties" in sub:
            paths += _leaf_paths(sub, f"{prefix}{name}.")
        else:
            paths.append(prefix + name)
    return paths


def _values_yaml_keys() -> dict[str, bool]:
    """Each key path of values.yaml -> whether a comment stands right above it."""
    found, stack = {}, []
    previous = ""
    for line in (CHART / "values.yaml").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^( *)([A-Za-z][\w]*):", line)
        if m:
            depth = len(m.group(1)) // 2
            stack = [*stack[:depth], m.group(2)]
            found[".".join(stack)] = previous.strip().startswith("#")
        if line.strip():
            previous = line
    return found


def _section(heading: str) -> str:
    """A section of docs/helm.md, up to the next heading of its level."""
    text = (DOCS / "helm.md").read_text(encoding="utf-8")
    level = heading.split(" ", 1)[0]
    body = text.split(f"\n{heading}\n", 1)[1]
    return re.split(rf"\n{level} ", body, maxsplit=1)[0]


def test_the_docs_list_the_sets_of_values_the_tests_render() -> None:
    docs = _section("## How the chart is tested")
    assert set(re.findall(r"^\| `([\w-]+)` \|", docs, re.MULTILINE)) == set(VARIANTS)
    for command in ("helm lint --strict", "helm template", "kubectl apply --dry-run=server"):
        assert command in docs


def test_the_docs_upgrade_the_crds_as_the_notes_say() -> None:
    upgrading = _section("## Upgrading")
    command = "kubectl apply --server-side --force-conflicts -f charts/canary/crds"
    assert command in upgrading
    assert command in rendered().notes


def test_every_value_is_in_the_schema_commented_and_in_the_docs() -> None:
    leaves = set(_leaf_paths(schema())) - {"global"}
    keys = _values_yaml_keys()
    in_values = {k for k in keys if k in leaves}
    assert in_values == leaves, f"in the schema only: {leaves - in_values}"
    groups = {k for k in keys if not any(k.startswith(leaf + ".") for leaf in leaves)} - leaves
    assert all(any(leaf.startswith(g + ".") for leaf in leaves) for g in groups), groups
    assert not [k for k in in_values if not keys[k]], "values without a comment above them"
    docs = _section("## Values")
    table = set(re.findall(r"^\| `([\w.]+)` \|", docs, re.MULTILINE))
    assert table == leaves | {"global"}, (
        f"docs/helm.md lacks {sorted(leaves - table)}, has extra {sorted(table - leaves)}"
    )


def test_every_schema_property_has_a_description() -> None:
    def walk(node: Json, path: str) -> list[str]:
        missing = [] if "description" in node or not path else [path]
        for name, sub in node.get("properties", {}).items():
            missing += walk(sub, f"{path}.{name}".lstrip("."))
        return missing

    assert walk(schema(), "") == []


def test_the_chart_runs_the_version_of_canary_in_pyproject() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "canary"
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])
    assert chart["appVersion"] == project["version"]
    assert project["scripts"]["canary"], "the image runs the `canary` command"
