"""Reduces an upstream CustomResourceDefinition file to what validating objects needs.

The tests validate the routes canary writes against the meshes' own CRDs (tests/data/mesh-crds,
README there). An upstream CRD file is mostly prose: this keeps every CRD's names, scope and
served versions with their schemas (types, formats, enums, patterns, bounds, required fields,
defaults, the structural `x-kubernetes-*` markers and the CEL `x-kubernetes-validations`
rules with their messages), their subresources and printer columns, and drops the rest: every
`description`, labels, and what only an installer reads (`conversion`, `preserveUnknownFields`).

Usage: python scripts/reduce_crds.py UPSTREAM.yaml OUTPUT.yaml --source "repo, path, commit"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

Json = dict[str, Any]

# Schema keywords whose values are schemas, maps of schemas or lists of schemas.
_SCHEMA = ("items", "additionalProperties", "not")
_SCHEMA_MAPS = ("properties", "patternProperties")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_KEPT_SPEC = ("group", "names", "scope", "versions")
_KEPT_VERSION = ("name", "served", "storage", "deprecated", "schema", "subresources")


def reduce_schema(node: Any) -> Any:
    """The schema without its descriptions. Property names are not keywords: a property
    called `description` stays."""
    if not isinstance(node, dict):
        return node
    reduced: Json = {}
    for key, value in node.items():
        if key == "description":
            continue
        if key in _SCHEMA:
            reduced[key] = reduce_schema(value)
        elif key in _SCHEMA_MAPS:
            reduced[key] = {name: reduce_schema(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS:
            reduced[key] = [reduce_schema(sub) for sub in value]
        else:
            reduced[key] = value
    return reduced


def reduce_version(version: Json) -> Json:
    reduced = {k: version[k] for k in _KEPT_VERSION if k in version}
    schema = (version.get("schema") or {}).get("openAPIV3Schema")
    if schema is not None:
        reduced["schema"] = {"openAPIV3Schema": reduce_schema(schema)}
    columns = version.get("additionalPrinterColumns")
    if columns:
        reduced["additionalPrinterColumns"] = [
            {k: v for k, v in column.items() if k != "description"} for column in columns
        ]
    return reduced


def _share_equal_schemas(versions: list[Json]) -> list[Json]:
    """Versions with equal schemas (Istio serves one schema as v1, v1beta1 and v1alpha3) get
    the same object, which YAML writes once and refers to (an anchor and its aliases)."""
    seen: list[Json] = []
    for version in versions:
        schema = version.get("schema")
        same = next((s for s in seen if s == schema), None)
        if same is not None:
            version["schema"] = same
        elif schema is not None:
            seen.append(schema)
    return versions


def reduce_crd(crd: Json) -> Json:
    if crd.get("kind") != "CustomResourceDefinition":
        raise ValueError(f"not a CustomResourceDefinition: kind {crd.get('kind')!r}")
    meta = crd["metadata"]
    metadata: Json = {"name": meta["name"]}
    if meta.get("annotations"):
        metadata["annotations"] = meta["annotations"]
    spec = {k: crd["spec"][k] for k in _KEPT_SPEC if k in crd["spec"]}
    spec["versions"] = _share_equal_schemas([reduce_version(v) for v in crd["spec"]["versions"]])
    return {
        "apiVersion": crd["apiVersion"],
        "kind": crd["kind"],
        "metadata": metadata,
        "spec": spec,
    }


def reduce_file(text: str, source: str) -> str:
    """The reduced CRDs of an upstream file, with a header naming where they come from."""
    crds = [reduce_crd(doc) for doc in yaml.safe_load_all(text) if doc]
    if not crds:
        raise ValueError("no CustomResourceDefinition in the file")
    header = (
        f"# Reduced from {source} by scripts/reduce_crds.py (descriptions dropped).\n"
        "# Apache-2.0, see README.md beside this file. Regenerate, do not edit.\n"
    )
    body = yaml.safe_dump_all(crds, sort_keys=False, width=1000, explicit_start=True)
    return header + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("upstream", type=Path, help="the upstream CRD file (YAML)")
    parser.add_argument("output", type=Path, help="where to write the reduced CRDs")
    parser.add_argument(
        "--source", required=True, help='where the upstream file is from: "repo, path, commit"'
    )
    args = parser.parse_args(argv)
    try:
        reduced = reduce_file(args.upstream.read_text(encoding="utf-8"), args.source)
    except (OSError, ValueError, KeyError, yaml.YAMLError) as exc:
        print(f"reduce_crds: {args.upstream}: {exc}", file=sys.stderr)
        return 1
    args.output.write_text(reduced, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
