"""tests/data/mesh-crds and scripts/reduce_crds.py, which makes them from the meshes' own CRDs."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "reduce_crds.py"
DATA = ROOT / "tests" / "data" / "mesh-crds"
Json = dict[str, Any]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reduce_crds", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reduce_crds = _script()

UPSTREAM: Json = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {
        "name": "widgets.example.com",
        "labels": {"app": "x"},
        "annotations": {"api-approved.kubernetes.io": "unapproved"},
    },
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "conversion": {"strategy": "None"},
        "preserveUnknownFields": False,
        "names": {"kind": "Widget", "plural": "widgets"},
        "versions": [
            {
                "name": v,
                "served": True,
                "storage": v == "v1",
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {
                        "name": "Size",
                        "type": "integer",
                        "jsonPath": ".spec.size",
                        "description": "n",
                    }
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "description": "A widget.",
                        "type": "object",
                        "properties": {
                            "spec": {
                                "description": "What it wants.",
                                "type": "object",
                                "required": ["size"],
                                "x-kubernetes-validations": [
                                    {"rule": "self.size < 10", "message": "too big"}
                                ],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 0, "description": "n"},
                                    "description": {"type": "string", "maxLength": 5},
                                    "mode": {
                                        "anyOf": [{"description": "a", "enum": ["A"]}],
                                        "type": "string",
                                    },
                                    "tags": {
                                        "type": "array",
                                        "items": {"type": "string", "description": "t"},
                                    },
                                },
                            }
                        },
                    }
                },
            }
            for v in ("v1", "v1beta1")
        ],
    },
}


def test_the_reduction_drops_prose_and_keeps_what_validates() -> None:
    reduced = reduce_crds.reduce_crd(UPSTREAM)
    assert reduced["metadata"] == {
        "name": "widgets.example.com",
        "annotations": {"api-approved.kubernetes.io": "unapproved"},
    }
    assert list(reduced["spec"]) == ["group", "names", "scope", "versions"]
    v1 = reduced["spec"]["versions"][0]
    assert v1["additionalPrinterColumns"] == [
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"}
    ]
    assert v1["subresources"] == {"status": {}}
    spec = v1["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec == {
        "type": "object",
        "required": ["size"],
        "x-kubernetes-validations": [{"rule": "self.size < 10", "message": "too big"}],
        "properties": {
            "size": {"type": "integer", "minimum": 0},
            "description": {"type": "string", "maxLength": 5},  # a property, not prose
            "mode": {"anyOf": [{"enum": ["A"]}], "type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    # equal schemas of two versions are one object, written once with an alias
    assert reduced["spec"]["versions"][1]["schema"] is v1["schema"]
    text = reduce_crds.reduce_file(yaml.safe_dump(UPSTREAM), "example/widgets, crd.yaml, abc")
    assert text.startswith("# Reduced from example/widgets, crd.yaml, abc by ")
    assert "*id001" in text
    assert list(yaml.safe_load_all(text)) == [reduced]


def test_the_script_refuses_what_is_not_a_crd(tmp_path: Path) -> None:
    upstream = tmp_path / "deployment.yaml"
    upstream.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(upstream), str(tmp_path / "out.yaml"), "--source", "x"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "not a CustomResourceDefinition: kind 'Deployment'" in result.stderr
    assert not (tmp_path / "out.yaml").exists()


def _descriptions(node: Any, path: str = "") -> list[str]:
    """Paths of schema `description` keywords (a property named so is not one)."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and not path.endswith(".properties"):
                found.append(path)
            found += _descriptions(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found += _descriptions(item, f"{path}[{index}]")
    return found


@pytest.mark.parametrize("path", sorted(DATA.glob("*.yaml")), ids=lambda p: p.name)
def test_each_file_names_its_source_and_is_reduced(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0]
    assert first.startswith("# Reduced from "), first
    repo, file, commit = first.removeprefix("# Reduced from ").split(" by ")[0].split(", ")
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith(f"| `{path.name}` |"))
    assert f"{repo}, `{file}`, {commit}" in row
    crds = [doc for doc in yaml.safe_load_all(text) if doc]
    assert crds
    assert all(c["kind"] == "CustomResourceDefinition" for c in crds)
    assert _descriptions(crds) == []
    source = first.removeprefix("# Reduced from ").split(" by ")[0]
    assert reduce_crds.reduce_file(text, source) == text, "not what the script makes of it"


def test_the_data_holds_the_kinds_canary_writes() -> None:
    kinds = {
        (crd["spec"]["group"], v["name"], crd["spec"]["names"]["kind"])
        for path in DATA.glob("*.yaml")
        for crd in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if crd
        for v in crd["spec"]["versions"]
    }
    assert {
        ("networking.istio.io", "v1", "VirtualService"),
        ("networking.istio.io", "v1", "DestinationRule"),
        ("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        ("split.smi-spec.io", "v1alpha2", "TrafficSplit"),
    } <= kinds
