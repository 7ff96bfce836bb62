"""Platform policies tenants cannot rewrite: a Rollout overrides only what its policy lists in
``overridable``, never a query; --forbid-inline-queries refuses every query in a Rollout."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canary.analysis.checks import CheckResolutionError, resolve_checks
from canary.analysis.scope import ScopeError, check_scoped
from canary.model.policy import ClusterAnalysisPolicy
from canary.model.rollout import Rollout

QUERIES = {
    "requestsQuery": 'sum by (w) (increase(req{ns="{{ namespace }}"}[{{ interval }}]))',
    "failuresQuery": 'sum by (w) (increase(req{ns="{{ namespace }}",code=~"5.."}[{{ interval }}]))',
}


def policy(**spec: Any) -> ClusterAnalysisPolicy:
    check = {"name": "error-rate", "kind": "error-rate", "max": 1, **QUERIES}
    return ClusterAnalysisPolicy.model_validate(
        {"metadata": {"name": "platform"}, "spec": {"checks": [check], **spec}}
    )


def rollout(*checks: dict[str, Any]) -> Rollout:
    return Rollout.model_validate(
        {
            "metadata": {"name": "podinfo", "namespace": "shop"},
            "spec": {
                "targetRef": {"name": "podinfo"},
                "service": {"port": 9898},
                "provider": {"name": "istio"},
                "analysis": {
                    "policies": [{"name": "platform"}],
                    "checks": list(checks),
                },
            },
        }
    )


def test_a_threshold_may_be_overridden_by_default() -> None:
    [check] = resolve_checks(rollout({"name": "error-rate", "max": 0.5}), [policy()])
    assert check.max == 0.5
    assert check.failures_query == QUERIES["failuresQuery"]


@pytest.mark.parametrize(
    "override",
    [
        {"failuresQuery": "0 * sum(req)"},
        {"requestsQuery": 'sum(req{ns="other"})'},
        {"kind": "custom", "query": "vector(0)"},
    ],
)
def test_queries_and_kind_are_never_overridable(override: dict[str, str]) -> None:
    with pytest.raises(CheckResolutionError) as raised:
        resolve_checks(rollout({"name": "error-rate", **override}), [policy()])
    field = next(iter(override))
    assert raised.value.path == f"spec.analysis.checks[0].{field}"
    assert "does not let a Rollout override" in raised.value.message


def test_a_policy_narrows_what_may_be_overridden() -> None:
    strict = policy(overridable=["margin"])
    resolve_checks(rollout({"name": "error-rate", "margin": 0.1}), [strict])
    with pytest.raises(CheckResolutionError, match=r"override 'max' \(overridable: margin\)"):
        resolve_checks(rollout({"name": "error-rate", "max": 100}), [strict])
    closed = policy(overridable=[])
    with pytest.raises(CheckResolutionError, match="overridable: none"):
        resolve_checks(rollout({"name": "error-rate", "margin": 0.1}), [closed])


def test_forbidding_inline_queries_refuses_a_check_of_its_own() -> None:
    own = {"name": "stolen", "kind": "custom", "query": 'sum(req{ns="payments"})'}
    assert len(resolve_checks(rollout(own), [policy()])) == 2
    with pytest.raises(CheckResolutionError) as raised:
        resolve_checks(rollout(own), [policy()], inline_queries=False)
    assert raised.value.path == "spec.analysis.checks[0].query"
    assert "--forbid-inline-queries" in raised.value.message
    # thresholds stay overridable with the flag
    [check] = resolve_checks(
        rollout({"name": "error-rate", "max": 0.5}), [policy()], inline_queries=False
    )
    assert check.max == 0.5


SCOPED = "ns"


def scoped_policy(**query: str) -> ClusterAnalysisPolicy:
    check = {"name": "error-rate", "kind": "error-rate", "max": 1, **QUERIES, **query}
    return ClusterAnalysisPolicy.model_validate(
        {"metadata": {"name": "platform"}, "spec": {"checks": [check], "namespaceLabel": SCOPED}}
    )


def test_a_scoped_policy_keeps_inline_queries_in_the_namespace() -> None:
    fine = {"name": "mine", "kind": "custom", "query": 'max(up{ns="{{ namespace }}"})'}
    assert len(resolve_checks(rollout(fine), [scoped_policy()])) == 2
    for query, why in [
        ('sum(req{ns="payments"})', "lacks ns="),
        ("sum(req)", "reads every namespace"),
        ('label_replace(req{ns="{{ namespace }}"}, "ns", "x", "", "")', "writes the label"),
    ]:
        stolen = {"name": "stolen", "kind": "custom", "query": query}
        with pytest.raises(CheckResolutionError) as raised:
            resolve_checks(rollout(stolen), [scoped_policy()])
        assert raised.value.path == "spec.analysis.checks[0].query"
        assert why in raised.value.message


def test_a_scoped_policy_refuses_its_own_unscoped_query() -> None:
    with pytest.raises(CheckResolutionError) as raised:
        resolve_checks(rollout(), [scoped_policy(failuresQuery="sum(req)")])
    assert raised.value.path == "spec.analysis.policies[0].spec.checks[0].failuresQuery"


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.lists(
        st.sampled_from(
            [
                "sum",
                "(",
                ")",
                "{",
                "}",
                "by",
                "req",
                ",",
                'ns="{{ namespace }}"',
                'ns="x"',
                "label_replace",
                '"ns"',
                "[5m]",
                "offset",
                "1",
                "or",
                "=",
                "#c\n",
                "'q'",
            ]
        ),
        max_size=25,
    ).map(" ".join)
)
def test_the_scope_check_answers_any_text(query: str) -> None:
    """Any text is judged: scoped, or a ScopeError saying why (nothing else escapes)."""
    problem = ""
    try:
        check_scoped(query, SCOPED)
    except ScopeError as exc:
        problem = str(exc) or "empty"
    assert problem != "empty"
