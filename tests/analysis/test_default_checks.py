"""The default checks and how a rollout's inline checks merge over them."""

from __future__ import annotations

from typing import Any

import pytest

from canary.analysis.checks import DEFAULT_CHECKS, CheckResolutionError, resolve_checks
from canary.model import CheckKind, JudgeName, Rollout


def rollout(**analysis: Any) -> Rollout:
    return Rollout.model_validate(
        {
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {
                "targetRef": {"name": "podinfo"},
                "service": {"port": 9898},
                "provider": {"name": "istio"},
                "analysis": analysis,
            },
        }
    )


def test_defaults_are_error_rate_and_latency() -> None:
    checks = resolve_checks(rollout())
    assert [c.name for c in checks] == ["error-rate", "latency"]
    errors, latency = checks
    assert (errors.kind, errors.max, errors.compare_to_primary, errors.margin) == (
        CheckKind.ERROR_RATE,
        1.0,
        True,
        0.2,
    )
    assert (latency.kind, latency.max) == (CheckKind.LATENCY, 500.0)
    assert checks == list(DEFAULT_CHECKS)


def test_inline_fields_override_the_default_of_the_same_name() -> None:
    checks = resolve_checks(
        rollout(checks=[{"name": "error-rate", "max": 0.5, "judge": "threshold"}])
    )
    errors = next(c for c in checks if c.name == "error-rate")
    assert errors.max == 0.5
    assert errors.judge is JudgeName.THRESHOLD
    assert errors.kind is CheckKind.ERROR_RATE
    assert errors.margin == 0.2
    assert DEFAULT_CHECKS[0].max == 1.0  # the defaults are not changed


def test_inline_check_of_its_own_is_added_after_the_defaults() -> None:
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
