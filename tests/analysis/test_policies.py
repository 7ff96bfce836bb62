"""The shipped policies in policies/: valid resources, the checks every provider needs, queries
that render, and found where a source checkout or a wheel puts them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from canary.analysis import policies
from canary.analysis.analyse import query_variables
from canary.analysis.policies import (
    DEFAULT_POLICY,
    PolicyError,
    builtin_dir,
    builtin_policies,
    default_policy,
    expand,
)
from canary.analysis.prometheus import render_check
from canary.analysis.provider import Targets
from canary.model import CheckKind, ClusterAnalysisPolicy, ProviderName
from canary.model.loader import load_file

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "policies").glob("*.yaml"))


def test_the_five_policies_are_shipped() -> None:
    assert sorted(f.stem for f in FILES) == [
        "gateway-api-envoy",
        "haproxy",
        "istio",
        "istio-ambient",
        "linkerd",
    ]
    assert sorted(builtin_policies()) == sorted(f.stem for f in FILES)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_each_file_is_one_cluster_policy_with_error_rate_and_latency(path: Path) -> None:
    (document,) = load_file(path)
    policy = document.resource
    assert isinstance(policy, ClusterAnalysisPolicy)
    assert policy.metadata.name == path.stem
    assert policy.spec.description
    checks = {c.name: c for c in policy.spec.checks}
    assert sorted(checks) == ["error-rate", "latency"]
    errors, latency = checks["error-rate"], checks["latency"]
    assert errors.kind is CheckKind.ERROR_RATE
    assert (errors.max, errors.compare_to_primary, errors.margin) == (1.0, True, 0.2)
    assert latency.kind is CheckKind.LATENCY
    assert latency.max == 500.0
    assert latency.failures_query is not None
    assert "{{ objective_" in latency.failures_query  # slow = total - bucket{le=objective}
    assert latency.quantile_query is not None
    # The p99 shown: bucket counts by side and le (an estimate with its bucket), or, for the
    # seconds histograms of local mode, histogram_quantile's estimate in ms.
    assert (
        "histogram_quantile(0.99," in latency.quantile_query
        or f"sum by ({latency.side_label}, le)" in latency.quantile_query
    )
    # Every shipped count check is counted exactly, per series, by the side's label.
    assert errors.side_label
    assert errors.side_label == latency.side_label
    for query in (errors.requests_query, errors.failures_query, latency.requests_query):
        assert query is not None
        assert "increase(" not in query
        assert "sum" not in query


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_each_query_renders_for_a_tick(path: Path) -> None:
    targets = Targets(namespace="test", target="podinfo", canary="podinfo", primary="podinfo-p")
    for check in expand(builtin_policies()[path.stem]):
        query = render_check(check, query_variables(targets, 60, check))
        assert "{{" not in query
        # Exact checks read the series as they are (the provider adds the range); the
        # quantile they show is counted over the window.
        assert check.side_label or "[1m]" in query


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_the_docs_show_each_query_as_shipped(path: Path) -> None:
    docs = (ROOT / "docs" / "policies.md").read_text()
    policy = builtin_policies()[path.stem]
    assert f"### `{path.stem}`" in docs
    for check in policy.spec.checks:
        for query in (check.requests_query, check.failures_query, check.quantile_query):
            if query is None:
                continue
            assert f"```\n{query}```" in docs, f"{path.stem} {check.name}: docs differ"
    for name in policy.spec.variables:
        assert f"`{name}`" in docs


def test_canary_validate_accepts_them() -> None:
    script = Path(sys.executable).parent / "canary"
    command = [str(script) if script.exists() else shutil.which("canary") or "canary"]
    run = subprocess.run(
        [*command, "validate", *map(str, FILES)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.count(": ok (ClusterAnalysisPolicy/") == len(FILES)


def test_every_provider_has_a_default_policy() -> None:
    assert set(DEFAULT_POLICY) == set(ProviderName)
    for provider in ProviderName:
        assert default_policy(provider).metadata.name == DEFAULT_POLICY[provider]


def test_a_wheel_install_finds_them_under_the_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    share = tmp_path / "prefix" / "share" / "canary" / "policies"
    shutil.copytree(ROOT / "policies", share)
    no_source = tmp_path / "site-packages" / "policies"
    monkeypatch.setattr(policies, "policy_dirs", lambda: [no_source, share])
    assert builtin_dir() == share
    assert sorted(builtin_policies()) == sorted(f.stem for f in FILES)
    monkeypatch.setattr(policies, "policy_dirs", lambda: [no_source])
    with pytest.raises(PolicyError, match="not installed"):
        builtin_dir()


def test_the_prefix_and_the_wheel_agree_on_the_place() -> None:
    assert Path(sys.prefix) / "share" / "canary" / "policies" in policies.policy_dirs()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data_files = project["tool"]["setuptools"]["data-files"]
    assert data_files["share/canary/policies"] == ["policies/*.yaml"]


def test_the_docs_example_of_ones_own_policy_is_valid_and_counts_exactly(tmp_path: Path) -> None:
    docs = (ROOT / "docs" / "policies.md").read_text()
    section = docs[docs.index("## Writing your own policy") :]
    example = section[section.index("```yaml\n") + 8 : section.index("```\n", 8)]
    path = tmp_path / "policy.yaml"
    path.write_text(example)
    (document,) = load_file(path)
    checks = {c.name: c for c in document.resource.spec.checks}  # type: ignore[union-attr]
    assert checks["error-rate"].side_label == checks["latency"].side_label == "app"
