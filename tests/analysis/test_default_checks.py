"""Which checks a rollout runs: its policies (the provider's built-in one by default), and how
its inline checks merge over them."""

from __future__ import annotations

from typing import Any

import pytest

from canary.analysis.checks import CheckResolutionError, resolve_checks
from canary.analysis.policies import PolicyError, builtin_policy, expand
from canary.model import AnalysisPolicy, CheckKind, ClusterAnalysisPolicy, JudgeName, Rollout

PROVIDERS: dict[str, dict[str, Any]] = {
    "istio": {"name": "istio"},
    "linkerd": {"name": "linkerd"},
    "gateway-api-envoy": {"name": "gateway-api", "gatewayApi": {"parentRefs": [{"name": "gw"}]}},
    "haproxy": {"name": "haproxy", "haproxy": {"backend": "podinfo"}},
}


def rollout(provider: dict[str, Any] | None = None, **analysis: Any) -> Rollout:
    return Rollout.model_validate(
        {
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"name": "podinfo"},
                "service": {"port": 9898},
                "provider": provider or {"name": "istio"},
                "analysis": analysis,
            },
        }
    )


def policy(name: str, *checks: dict[str, Any], kind: str = "ClusterAnalysisPolicy") -> Any:
    model = ClusterAnalysisPolicy if kind == "ClusterAnalysisPolicy" else AnalysisPolicy
    return model.model_validate(
        {
            "apiVersion": "canary.dev/v1alpha1",
            "kind": kind,
            "metadata": {"name": name, "namespace": "test"},
            "spec": {"checks": list(checks)},
        }
    )


def custom(name: str) -> dict[str, Any]:
    return {"name": name, "kind": "custom", "query": "sum by (deployment) (up)", "max": 1}


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_each_provider_defaults_to_its_shipped_policy(name: str) -> None:
    checks = resolve_checks(rollout(PROVIDERS[name]))
    assert checks == expand(builtin_policy(name))
    assert [c.name for c in checks] == ["error-rate", "latency"]
    errors, latency = checks
    assert (errors.kind, errors.max, errors.compare_to_primary, errors.margin) == (
        CheckKind.ERROR_RATE,
        1.0,
        True,
        0.2,
    )
    assert (latency.kind, latency.max) == (CheckKind.LATENCY, 500.0)
    assert latency.quantile_query
    assert latency.side_label is not None
    assert f"sum by ({latency.side_label}, le)" in latency.quantile_query


def test_policy_variables_are_written_into_the_queries() -> None:
    errors = resolve_checks(rollout())[0]
    assert errors.requests_query is not None
    assert "{{ workloads }}" not in errors.requests_query
    assert 'destination_workload_namespace="{{ namespace }}"' in errors.requests_query


def test_inline_fields_override_the_policy_check_of_the_same_name() -> None:
    checks = resolve_checks(
        rollout(checks=[{"name": "error-rate", "max": 0.5, "judge": "threshold"}])
    )
    errors = next(c for c in checks if c.name == "error-rate")
    assert errors.max == 0.5
    assert errors.judge is JudgeName.THRESHOLD
    assert errors.kind is CheckKind.ERROR_RATE
    assert errors.margin == 0.2
    assert errors.requests_query is not None
    assert builtin_policy("istio").spec.checks[0].max == 1.0  # the policy is not changed


def test_inline_check_of_its_own_is_added_after_the_policy_checks() -> None:
    checks = resolve_checks(rollout(checks=[{"name": "p95", "kind": "latency", "max": 300}]))
    assert [c.name for c in checks] == ["error-rate", "latency", "p95"]


def test_complete_inline_checks_without_a_policy_replace_the_defaults() -> None:
    own = {
        "name": "errors",
        "kind": "error-rate",
        "requestsQuery": "sum(rate(requests[1m]))",
        "failuresQuery": "sum(rate(errors[1m]))",
        "max": 2,
    }
    assert [c.name for c in resolve_checks(rollout(checks=[own]))] == ["errors"]
    with_policy = rollout(checks=[own], policies=[{"name": "istio"}])
    assert [c.name for c in resolve_checks(with_policy)] == ["error-rate", "latency", "errors"]


def test_a_named_policy_replaces_the_providers_default() -> None:
    checks = resolve_checks(rollout(policies=[{"name": "linkerd"}]))
    assert checks == expand(builtin_policy("linkerd"))


def test_policies_from_the_cluster_are_found_by_kind_and_name() -> None:
    mine = policy("mine", custom("saturation"), kind="AnalysisPolicy")
    checks = resolve_checks(
        rollout(policies=[{"name": "istio"}, {"name": "mine", "kind": "AnalysisPolicy"}]),
        extra_policies=[mine],
    )
    assert [c.name for c in checks] == ["error-rate", "latency", "saturation"]


def test_a_cluster_policy_of_a_built_in_name_replaces_the_built_in() -> None:
    replacement = policy("istio", custom("saturation"))
    assert [c.name for c in resolve_checks(rollout(), [replacement])] == ["saturation"]


def test_an_unknown_policy_names_the_field() -> None:
    with pytest.raises(PolicyError) as caught:
        resolve_checks(rollout(policies=[{"name": "istio"}, {"name": "istoi"}]))
    assert caught.value.path == "spec.analysis.policies[1].name"
    assert "istoi" in caught.value.message
    assert "gateway-api-envoy, haproxy, istio, istio-ambient, linkerd" in caught.value.message
    assert isinstance(caught.value, CheckResolutionError)  # the CLI reports it like any other


def test_an_analysis_policy_of_another_namespace_is_not_found() -> None:
    theirs = policy("mine", custom("saturation"), kind="AnalysisPolicy")
    theirs.metadata.namespace = "elsewhere"
    with pytest.raises(PolicyError, match="no AnalysisPolicy 'mine' in namespace 'test'"):
        resolve_checks(
            rollout(policies=[{"name": "mine", "kind": "AnalysisPolicy"}]), extra_policies=[theirs]
        )


def test_two_policies_with_a_check_of_the_same_name_clash() -> None:
    other = policy("other", custom("latency"))
    with pytest.raises(PolicyError) as caught:
        resolve_checks(rollout(policies=[{"name": "istio"}, {"name": "other"}]), [other])
    assert caught.value.path == "spec.analysis.policies[1]"
    assert "'latency'" in caught.value.message


def test_a_policy_cannot_set_a_variable_given_at_every_tick() -> None:
    bad = policy("bad", custom("saturation"))
    bad.spec.variables["namespace"] = "prod"
    with pytest.raises(PolicyError) as caught:
        resolve_checks(rollout(policies=[{"name": "bad"}]), [bad])
    assert caught.value.path == "spec.analysis.policies[0].spec.variables.namespace"


def test_override_of_an_unknown_check_names_the_field() -> None:
    with pytest.raises(CheckResolutionError) as caught:
        resolve_checks(rollout(checks=[{"name": "latncy", "max": 300}]))
    assert caught.value.path == "spec.analysis.checks[0].name"
    assert "latncy" in caught.value.message
    assert "error-rate, latency" in caught.value.message


def test_merged_check_is_validated_again() -> None:
    with pytest.raises(CheckResolutionError) as caught:
        resolve_checks(rollout(checks=[{"name": "latency", "min": 900}]))
    assert caught.value.path == "spec.analysis.checks[0]"
    assert "min 900" in caught.value.message
