"""The models: durations, weight schedules, provider capabilities, and the wire round trip."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from canary.model import (
    AnalysisPolicy,
    AnalysisPolicySpec,
    AnalysisSpec,
    DurationError,
    NotificationChannel,
    Rollout,
    RolloutSpec,
    RolloutStatus,
    format_duration,
    parse_duration,
)
from canary.model.loader import load_rollout, problems_of
from canary.model.notification import NotificationChannelSpec
from canary.model.route import ConnectionPool
from canary.model.strategy import CanaryStrategy, Strategy

ROOT = Path(__file__).resolve().parents[2]


def errors_of(exc: pytest.ExceptionInfo[ValidationError]) -> dict[str, str]:
    """{'a.b[0]': message} of a ValidationError, as the loader would print them."""
    return {p.path: p.message for p in problems_of("test", exc.value)}


def minimal_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "targetRef": {"name": "podinfo"},
        "service": {"port": 9898},
        "provider": {"name": "istio"},
    }
    spec.update(overrides)
    return spec


def rollout(**spec_overrides: Any) -> Rollout:
    return Rollout.model_validate(
        {
            "apiVersion": "canary.dev/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "podinfo"},
            "spec": minimal_spec(**spec_overrides),
        }
    )


# -- durations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("1m30s", 90.0),
        ("1.5m", 90.0),
        ("0s", 0.0),
        (" 10s ", 10.0),
        ("2h0m5s", 7205.0),
    ],
)
def test_duration_parses(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["abc", "5", "-1s", "", "1d", "s", "5 m", "1h-30m", "1.s"])
def test_duration_refuses(text: str) -> None:
    with pytest.raises(DurationError) as exc:
        parse_duration(text)
    message = str(exc.value)
    assert f"{text!r} is not a duration" in message
    assert "use a number and a unit (ms, s, m, h)" in message
    assert "'30s'" in message


@pytest.mark.parametrize("value", [5, 2.5])
def test_duration_number_says_add_a_unit(value: float) -> None:
    with pytest.raises(ValidationError) as exc:
        AnalysisSpec.model_validate({"interval": value})
    assert errors_of(exc) == {
        "interval": f"a duration is a string such as '30s', '5m' or '1h', not the number "
        f"{value}: write '{value}s' for seconds"
    }


def test_duration_not_a_string() -> None:
    with pytest.raises(DurationError, match="not list"):
        parse_duration([1])  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as exc:
        AnalysisSpec.model_validate({"interval": True})
    assert "a duration is a string" in errors_of(exc)["interval"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.25, "250ms"),
        (30, "30s"),
        (60, "1m"),
        (90, "1m30s"),
        (3600, "1h"),
        (5400, "1h30m"),
        (3661, "1h1m1s"),
        (1.5, "1.5s"),
    ],
)
def test_duration_formats_shortest(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["30s", "5m", "1h", "1h30m", "250ms", "1m30s", "2h0m5s", "1.5m"])
def test_duration_round_trips_through_the_wire(text: str) -> None:
    seconds = parse_duration(text)
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)
    pool = ConnectionPool.model_validate({"connectTimeout": text})
    wire = pool.to_wire()
    assert wire == {"connectTimeout": format_duration(seconds)}
    assert ConnectionPool.model_validate(wire) == pool


def test_duration_defaults_on_the_wire() -> None:
    wire = AnalysisSpec().to_wire()
    assert wire["interval"] == "1m"
    assert wire["inconclusiveDeadline"] == "10m"


def test_interval_below_a_second_is_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        AnalysisSpec.model_validate({"interval": "500ms"})
    assert errors_of(exc) == {"": "interval must be at least 1s"}


def test_inconclusive_deadline_shorter_than_interval() -> None:
    with pytest.raises(ValidationError) as exc:
        AnalysisSpec.model_validate({"interval": "5m", "inconclusiveDeadline": "1m"})
    assert "make it at least one interval" in errors_of(exc)[""]


def test_look_interval_is_optional_and_round_trips() -> None:
    assert AnalysisSpec().look_interval is None
    assert "lookInterval" not in AnalysisSpec().to_wire()
    spec = AnalysisSpec.model_validate({"interval": "1m", "lookInterval": "20s"})
    assert spec.look_interval == 20.0
    assert spec.to_wire()["lookInterval"] == "20s"


@pytest.mark.parametrize("look", ["2m", "500ms"])
def test_look_interval_lies_between_a_second_and_the_interval(look: str) -> None:
    with pytest.raises(ValidationError) as exc:
        AnalysisSpec.model_validate({"interval": "1m", "lookInterval": look})
    assert "lookInterval must be at least 1s and at most interval" in errors_of(exc)[""]


# -- weight schedules --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("canary", "schedule"),
    [
        ({}, [10, 20, 30, 40, 50]),
        ({"weights": [5, 10, 20, 50]}, [5, 10, 20, 50]),
        ({"weights": [100]}, [100]),
        ({"stepWeight": 20}, [20, 40, 50]),
        ({"stepWeight": 20, "maxWeight": 60}, [20, 40, 60]),
        ({"stepWeight": 15, "maxWeight": 50}, [15, 30, 45, 50]),
        ({"stepWeight": 30, "maxWeight": 100}, [30, 60, 90, 100]),
        ({"stepWeight": 60}, [60]),
        ({"stepWeight": 50, "maxWeight": 50}, [50]),
        ({"maxWeight": 25}, [10, 20, 25]),
        ({"maxWeight": 5}, [5]),
        ({"maxWeight": 100}, [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]),
    ],
)
def test_schedule(canary: dict[str, Any], schedule: list[int]) -> None:
    assert CanaryStrategy.model_validate(canary).schedule() == schedule


def test_default_strategy_is_canary_steps() -> None:
    assert Strategy().canary_or_default().schedule() == [10, 20, 30, 40, 50]


@pytest.mark.parametrize(
    ("canary", "path", "words"),
    [
        ({"weights": [10, 150]}, "weights[1]", "less than or equal to 100 (got 150)"),
        ({"weights": [0, 10]}, "weights[0]", "greater than or equal to 1 (got 0)"),
        ({"weights": [10, 50, 20]}, "weights", "20 follows 50"),
        ({"weights": [10, 10]}, "weights", "10 follows 10"),
        ({"weights": []}, "weights", "at least 1 item"),
        ({"stepWeight": 0}, "stepWeight", "greater than or equal to 1 (got 0)"),
        ({"maxWeight": 101}, "maxWeight", "less than or equal to 100 (got 101)"),
        ({"stepWeight": 60, "maxWeight": 50}, "", "lower stepWeight or raise maxWeight"),
        ({"weights": [10, 20], "stepWeight": 10}, "", "not both"),
        ({"weights": [10, 20], "maxWeight": 50}, "", "not both"),
        ({"stepWieght": 10}, "stepWieght", "unknown field"),
    ],
)
def test_schedule_refused(canary: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(ValidationError) as exc:
        CanaryStrategy.model_validate(canary)
    errors = errors_of(exc)
    assert list(errors) == [path]
    assert words in errors[path]


def test_strategy_one_kind_only() -> None:
    with pytest.raises(ValidationError) as exc:
        Strategy.model_validate({"canary": {}, "blueGreen": {}})
    assert errors_of(exc) == {"": "choose one strategy, not canary and blueGreen"}


def test_mirror_to_canary_needs_blue_green() -> None:
    with pytest.raises(ValidationError) as exc:
        Strategy.model_validate({"canary": {"stepWeight": 10}, "mirror": {"percentage": 50}})
    assert list(errors_of(exc)) == ["mirror"]
    with pytest.raises(ValidationError) as exc:
        Strategy.model_validate({"mirror": {}})
    assert list(errors_of(exc)) == ["mirror"]
    assert Strategy.model_validate({"blueGreen": {}, "mirror": {}}).mirror is not None


def test_mirror_error_not_repeated_when_blue_green_itself_is_wrong() -> None:
    with pytest.raises(ValidationError) as exc:
        Strategy.model_validate({"blueGreen": {"iterations": 0}, "mirror": {}})
    assert list(errors_of(exc)) == ["blueGreen.iterations"]


def test_ab_test_rules() -> None:
    with pytest.raises(ValidationError) as exc:
        Strategy.model_validate({"abTest": {"match": [{}]}})
    assert "an empty rule matches everything" in errors_of(exc)["abTest.match[0]"]
    with pytest.raises(ValidationError) as exc:
        Strategy.model_validate(
            {"abTest": {"match": [{"headers": {"x-user": {"exact": "a", "regex": "b"}}}]}}
        )
    assert (
        "exactly one of exact, prefix or regex" in errors_of(exc)["abTest.match[0].headers.x-user"]
    )


# -- providers and what they can honour --------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "route", "path"),
    [
        (
            {"name": "gateway-api", "gatewayApi": {"parentRefs": [{"name": "gw"}]}},
            {"circuitBreaker": {"connectionPool": {"maxConnections": 10}}},
            "spec.service.route.circuitBreaker.connectionPool",
        ),
        (
            {"name": "gateway-api", "gatewayApi": {"parentRefs": [{"name": "gw"}]}},
            {"retries": {"attempts": 2}},
            "spec.service.route.retries",
        ),
        ({"name": "linkerd"}, {"mtlsMode": "ISTIO_MUTUAL"}, "spec.service.route.mtlsMode"),
        ({"name": "linkerd"}, {"cors": {"allowOrigins": ["*"]}}, "spec.service.route.cors"),
        (
            {"name": "linkerd", "linkerd": {"api": "smi"}},
            {"timeout": "5s"},
            "spec.service.route.timeout",
        ),
        ({"name": "haproxy"}, {"mirror": {"host": "shadow"}}, "spec.service.route.mirror"),
    ],
)
def test_route_setting_the_provider_cannot_honour(
    provider: dict[str, Any], route: dict[str, Any], path: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        rollout(provider=provider, service={"port": 9898, "route": route})
    errors = errors_of(exc)
    assert list(errors) == [path]
    assert f"provider '{_flavour(provider)}' cannot honour" in errors[path]
    assert "remove it or choose another provider" in errors[path]


def _flavour(provider: dict[str, Any]) -> str:
    if provider.get("linkerd", {}).get("api") == "smi":
        return "linkerd-smi"
    return str(provider["name"])


def test_every_unsupported_setting_is_named() -> None:
    route = {
        "timeout": "5s",
        "retries": {"attempts": 1},
        "circuitBreaker": {"outlierDetection": {}},
    }
    with pytest.raises(ValidationError) as exc:
        rollout(
            provider={"name": "linkerd", "linkerd": {"api": "smi"}},
            service={"port": 9898, "route": route},
        )
    assert list(errors_of(exc)) == [
        "spec.service.route.timeout",
        "spec.service.route.retries",
        "spec.service.route.circuitBreaker.outlierDetection",
    ]


def test_istio_honours_every_route_setting() -> None:
    route = {
        "timeout": "10s",
        "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": ["5xx"]},
        "cors": {"allowOrigins": ["https://example.com"]},
        "headers": {"request": {"set": {"x-a": "1"}}},
        "mirror": {"host": "shadow", "percentage": 5},
        "circuitBreaker": {"connectionPool": {"maxConnections": 100}, "outlierDetection": {}},
        "mtlsMode": "ISTIO_MUTUAL",
    }
    ro = rollout(service={"port": 9898, "route": route})
    assert len(ro.spec.service.route.settings_in_use()) == 8


def test_ab_test_on_smi_is_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        rollout(
            provider={"name": "linkerd", "linkerd": {"api": "smi"}},
            strategy={"abTest": {"match": [{"headers": {"x-canary": {"exact": "1"}}}]}},
        )
    errors = errors_of(exc)
    assert list(errors) == ["spec.strategy.abTest"]
    assert "cannot route by header or cookie" in errors["spec.strategy.abTest"]


@pytest.mark.parametrize(
    "provider",
    [{"name": "linkerd"}, {"name": "gateway-api", "gatewayApi": {"parentRefs": [{"name": "gw"}]}}],
)
def test_cookie_match_where_unsupported_names_the_rule(provider: dict[str, Any]) -> None:
    match = [
        {"headers": {"x-canary": {"exact": "1"}}},
        {"cookie": {"name": "canary", "value": "always"}},
    ]
    with pytest.raises(ValidationError) as exc:
        rollout(provider=provider, strategy={"abTest": {"match": match}})
    errors = errors_of(exc)
    assert list(errors) == ["spec.strategy.abTest.match[1].cookie"]
    assert "match on headers instead" in errors["spec.strategy.abTest.match[1].cookie"]


@pytest.mark.parametrize("provider", [{"name": "linkerd"}, {"name": "haproxy"}])
def test_mirror_to_canary_where_unsupported(provider: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as exc:
        rollout(provider=provider, strategy={"blueGreen": {}, "mirror": {}})
    errors = errors_of(exc)
    assert list(errors) == ["spec.strategy.mirror"]
    assert "cannot mirror traffic to the canary" in errors["spec.strategy.mirror"]


def test_provider_settings_must_match_the_provider() -> None:
    with pytest.raises(ValidationError) as exc:
        rollout(provider={"name": "istio", "haproxy": {}})
    assert "remove 'haproxy' or change 'name'" in errors_of(exc)["spec.provider"]
    with pytest.raises(ValidationError) as exc:
        rollout(provider={"name": "gateway-api"})
    assert "needs 'gatewayApi.parentRefs'" in errors_of(exc)["spec.provider"]


def test_unknown_provider() -> None:
    with pytest.raises(ValidationError) as exc:
        rollout(provider={"name": "nginx"})
    assert errors_of(exc) == {
        "spec.provider.name": "Input should be 'istio', 'linkerd', 'gateway-api' or 'haproxy' "
        "(got 'nginx')"
    }


def test_per_try_timeout_longer_than_timeout() -> None:
    with pytest.raises(ValidationError) as exc:
        rollout(
            service={
                "port": 9898,
                "route": {"timeout": "2s", "retries": {"attempts": 1, "perTryTimeout": "5s"}},
            }
        )
    assert "lower perTryTimeout or raise timeout" in errors_of(exc)["spec.service.route"]


# -- defaults ----------------------------------------------------------------------------


def test_shortest_rollout_gets_defaults() -> None:
    ro = rollout()
    spec = ro.spec
    assert spec.strategy.canary_or_default().schedule() == [10, 20, 30, 40, 50]
    assert spec.analysis.interval == 60
    assert spec.analysis.failure_limit == 3
    assert spec.analysis.inconclusive_deadline == 600
    assert spec.progress_deadline_seconds == 600
    assert spec.service.port_name == "http"
    assert spec.target_ref.kind == "Deployment"
    assert not spec.suspend
    assert not spec.skip_analysis
    assert ro.key == "default/podinfo"


def test_istio_example_steps_through_its_weights() -> None:
    ro = load_rollout(ROOT / "examples" / "podinfo-istio.yaml")
    assert ro.spec.strategy.canary_or_default().schedule() == [5, 10, 20, 50]
    assert ro.spec.analysis.interval == 60


# -- the wire round trip -----------------------------------------------------------------


def full_rollout_wire() -> dict[str, Any]:
    """A Rollout with every section set, as it would sit in the API server."""
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {
            "name": "podinfo",
            "namespace": "test",
            "labels": {"app": "podinfo"},
            "annotations": {"team": "web"},
            "generation": 7,
            "uid": "0b5c3e0e-1111-2222-3333-444455556666",
            "resourceVersion": "12345",
            "creationTimestamp": "2024-05-01T12:00:00Z",
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {
                "port": 80,
                "targetPort": 9898,
                "portName": "http-web",
                "route": {
                    "timeout": "15s",
                    "retries": {"attempts": 3, "perTryTimeout": "5s", "retryOn": ["5xx"]},
                    "cors": {
                        "allowOrigins": ["https://example.com"],
                        "allowMethods": ["GET"],
                        "maxAge": "1h",
                        "allowCredentials": True,
                    },
                    "headers": {
                        "request": {"set": {"x-env": "prod"}, "remove": ["x-debug"]},
                        "response": {"add": {"x-served-by": "podinfo"}},
                    },
                    "mirror": {"host": "shadow.test", "port": 9898, "percentage": 2.5},
                    "circuitBreaker": {
                        "connectionPool": {"maxConnections": 100, "connectTimeout": "250ms"},
                        "outlierDetection": {
                            "consecutiveErrors": 7,
                            "interval": "30s",
                            "baseEjectionTime": "1m30s",
                            "maxEjectionPercent": 50,
                        },
                    },
                    "mtlsMode": "ISTIO_MUTUAL",
                },
            },
            "provider": {
                "name": "istio",
                "istio": {"gateways": ["istio-system/public"], "hosts": ["podinfo.example.com"]},
            },
            "strategy": {
                "abTest": {
                    "iterations": 20,
                    "match": [
                        {"headers": {"x-canary": {"exact": "insider"}}},
                        {"cookie": {"name": "canary", "value": "always"}},
                    ],
                }
            },
            "analysis": {
                "interval": "30s",
                "failureLimit": 2,
                "minRequests": 50,
                "judge": "mann-whitney",
                "inconclusiveDeadline": "15m",
                "policies": [{"name": "istio"}, {"name": "mine", "kind": "AnalysisPolicy"}],
                "checks": [
                    {"name": "error-rate", "max": 0.5, "margin": 0.2},
                    {"name": "saturation", "kind": "custom", "query": "up", "min": 1},
                ],
            },
            "gates": {
                "webhooks": [
                    {
                        "name": "load-test",
                        "type": "pre-rollout",
                        "url": "http://loadtester.test/",
                        "timeout": "1m",
                        "metadata": {"cmd": "hey -z 1m http://podinfo-canary.test/"},
                    },
                    {
                        "name": "ci",
                        "type": "confirm-promotion",
                        "url": "https://ci.example.com/gate",
                        "retries": 5,
                        "secretRef": {"name": "ci-hmac", "key": "key"},
                    },
                ],
                "approvals": ["traffic-increase", "promotion"],
            },
            "notifications": {
                "channels": [{"name": "deploys"}],
                "events": ["promoted", "rolled-back", "failed"],
            },
            "skipAnalysis": False,
            "progressDeadlineSeconds": 900,
            "suspend": True,
        },
        "status": {
            "phase": "Progressing",
            "observedGeneration": 7,
            "canaryWeight": 0,
            "stepIndex": 0,
            "iteration": 4,
            "failedChecks": 1,
            "inconclusiveSince": "2024-05-01T12:25:00Z",
            "canaryRevision": "7d9f8c6b5",
            "stableRevision": "5c4b3a291",
            "preRolloutPassed": True,
            "waitingFor": "promotion",
            "approvals": ["traffic-increase"],
            "promoteRequested": True,
            "checks": [
                {
                    "name": "error-rate",
                    "verdict": "pass",
                    "time": "2024-05-01T12:29:30Z",
                    "judge": "mann-whitney",
                    "canary": {"requests": 1200, "failures": 3, "value": 0.25},
                    "primary": {"requests": 24000, "failures": 50, "value": 0.2083},
                    "statistic": 0.031,
                    "message": "canary 0.25% vs primary 0.21%",
                },
                {
                    "name": "latency",
                    "verdict": "inconclusive",
                    "time": "2024-05-01T12:29:30Z",
                    "noData": True,
                },
            ],
            "analysis": [
                {
                    "name": "error-rate",
                    "ticks": 4,
                    "canaryRequests": 4800,
                    "canaryFailures": 9,
                    "primaryRequests": 96000,
                    "primaryFailures": 190,
                    "judgeState": [0.5, -1.25],
                }
            ],
            "conditions": [
                {
                    "type": "Promoted",
                    "status": "Unknown",
                    "reason": "Progressing",
                    "message": "iteration 4",
                    "lastTransitionTime": "2024-05-01T12:10:00Z",
                }
            ],
            "message": "checks passed; iteration 4 done",
            "startedAt": "2024-05-01T12:10:00Z",
            "lastTickAt": "2024-05-01T12:29:30Z",
            "lastTransitionTime": "2024-05-01T12:10:00Z",
        },
    }


def test_full_rollout_round_trips() -> None:
    ro = Rollout.model_validate(full_rollout_wire())
    wire = ro.to_wire()
    assert Rollout.model_validate(wire) == ro
    # Through JSON text too, as the API server stores it.
    assert Rollout.model_validate(json.loads(json.dumps(wire))) == ro
    assert Rollout.model_validate_json(ro.model_dump_json(by_alias=True)) == ro


def test_wire_form_keeps_what_was_written() -> None:
    written = full_rollout_wire()
    wire = Rollout.model_validate(written).to_wire()
    # Everything written is kept as written (defaults are added beside it).
    assert _within(written["spec"], wire["spec"])
    assert _within(written["metadata"], wire["metadata"])
    assert wire["metadata"]["managedFields"] == [{"manager": "kubectl"}]
    assert wire["status"]["inconclusiveSince"].startswith("2024-05-01T12:25:00")
    assert wire["spec"]["analysis"]["interval"] == "30s"


def _within(part: Any, whole: Any) -> bool:
    """``part`` is ``whole`` with some mapping keys left out (at any depth)."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            k in whole and _within(v, whole[k]) for k, v in part.items()
        )
    if isinstance(part, list):
        return (
            isinstance(whole, list)
            and len(part) == len(whole)
            and all(_within(p, w) for p, w in zip(part, whole, strict=True))
        )
    return bool(part == whole)


def test_round_trip_is_a_fixed_point() -> None:
    once = Rollout.model_validate(full_rollout_wire()).to_wire()
    twice = Rollout.model_validate(once).to_wire()
    assert once == twice


@pytest.mark.parametrize(
    "example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_examples_round_trip(example: Path) -> None:
    ro = load_rollout(example)
    assert Rollout.model_validate(ro.to_wire()) == ro


def test_python_names_and_wire_names_agree() -> None:
    by_name = RolloutSpec(
        target_ref={"name": "podinfo"},  # type: ignore[arg-type]
        service={"port": 9898},  # type: ignore[arg-type]
        provider={"name": "istio"},  # type: ignore[arg-type]
    )
    assert RolloutSpec.model_validate(minimal_spec()) == by_name


def test_policy_and_channel_round_trip() -> None:
    policy = AnalysisPolicy.model_validate(
        {
            "apiVersion": "canary.dev/v1alpha1",
            "kind": "AnalysisPolicy",
            "metadata": {"name": "web", "namespace": "test"},
            "spec": {
                "variables": {"namespace": "test"},
                "checks": [
                    {
                        "name": "error-rate",
                        "kind": "error-rate",
                        "requestsQuery": "sum(rate(requests[{{ interval }}]))",
                        "failuresQuery": "sum(rate(errors[{{ interval }}]))",
                        "max": 1,
                        "compareToPrimary": True,
                    }
                ],
            },
        }
    )
    assert AnalysisPolicy.model_validate(policy.to_wire()) == policy
    channel = NotificationChannel.model_validate(
        {
            "apiVersion": "canary.dev/v1alpha1",
            "kind": "NotificationChannel",
            "metadata": {"name": "deploys"},
            "spec": {
                "slack": {"channel": "#deploys", "tokenSecretRef": {"name": "slack", "key": "t"}}
            },
        }
    )
    assert NotificationChannel.model_validate(channel.to_wire()) == channel


def test_incomplete_policy_check_is_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        AnalysisPolicy.model_validate(
            {
                "metadata": {"name": "web"},
                "spec": {"checks": [{"name": "error-rate", "kind": "error-rate"}]},
            }
        )
    assert "check 'error-rate' is incomplete" in errors_of(exc)["spec"]


# -- the reference stays complete --------------------------------------------------------


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    found = [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found.append(annotation)
    return found


def _field_names(model: type[BaseModel], seen: set[type[BaseModel]]) -> list[str]:
    if model in seen:
        return []
    seen.add(model)
    names = []
    for name, info in model.model_fields.items():
        names.append(f"{model.__name__}.{info.alias or name}")
        for sub in _models_in(info.annotation):
            names.extend(_field_names(sub, seen))
    return names


def test_rollout_reference_documents_every_spec_field() -> None:
    doc = (ROOT / "docs" / "rollout.md").read_text()
    seen: set[type[BaseModel]] = set()
    fields = [
        *_field_names(RolloutSpec, seen),
        *_field_names(AnalysisPolicySpec, seen),
        *_field_names(NotificationChannelSpec, seen),
        *(f"RolloutStatus.{info.alias}" for info in RolloutStatus.model_fields.values()),
    ]
    # A field appears as `name` or at the end of a dotted path such as `service.route.timeout`.
    missing = [f for f in fields if not any(f"{c}{f.split('.')[-1]}" in doc for c in ("`", "."))]
    assert not missing, f"docs/rollout.md does not mention: {', '.join(missing)}"
