"""The chart's monitoring: the Grafana dashboard's and the alerts' queries name only series the
controller exports (canary/controller/metrics.py) and parse as PromQL (promtool), and each
alert fires on series that should set it off and stays quiet on series that should not
(`promtool test rules`, the real Prometheus rule engine)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from chart_support import CHART, NAMESPACE, ROOT, VARIANTS, render, rendered, schema
from prometheus_client.parser import text_string_to_metric_families

from canary.controller.metrics import ControllerMetrics
from canary.model.status import CheckResult, Phase, Verdict

Json = dict[str, Any]

# Prometheus' own series, not the controller's: whether a scrape of a replica succeeded.
PROMETHEUS_SERIES = {"up"}


def exported_series() -> set[str]:
    """The sample names the controller's /metrics serves, every series touched once."""
    metrics = ControllerMetrics()
    metrics.rollout("shop", "web", Phase.PROGRESSING, 10)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    metrics.check_results(
        "shop", "web", [CheckResult(name="error-rate", verdict=Verdict.PASS, time=now)]
    )
    metrics.late("scheduled", 0.01)
    metrics.reconcile_error("shop", "web", "KubeError")
    metrics.reconcile_duration.labels("ok").observe(0.1)
    metrics.status_conflicts.inc()
    metrics.watch_relists.labels("rollouts").inc()
    metrics.leader.set(1)
    metrics.workers_busy.set(1)
    text = metrics.exposition().decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


_NOT_SERIES = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "Inf", "NaN",
}  # fmt: skip


def series_named(expr: str) -> set[str]:
    """The series names a PromQL expression selects (functions, keywords, label names,
    matchers, ranges and strings left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[m.end() :].lstrip().startswith("(") or m.group(0) in _NOT_SERIES:
            continue
        names.add(m.group(0))
    return names


def test_series_named_finds_what_a_query_selects() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, kind) (rate(canary_tick_lateness_seconds_bucket"
        '{job=~"$job", kind="x"}[$__rate_interval]))) > 0 unless on (name) up == bool 1'
    )
    assert series_named(expr) == {"canary_tick_lateness_seconds_bucket", "up"}


# --- the dashboard ---------------------------------------------------------------------------


def dashboard() -> Json:
    config_map = rendered("monitoring").one("ConfigMap", "canary-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Delivery"}
    loaded: Json = json.loads(config_map["data"]["canary.json"])
    return loaded


def _panels(panels: list[Json]) -> list[Json]:
    return [p for panel in panels for p in [panel, *_panels(panel.get("panels") or [])]]


def dashboard_queries() -> list[str]:
    board = dashboard()
    exprs = [t["expr"] for p in _panels(board["panels"]) for t in p.get("targets") or []]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            m = re.fullmatch(r"label_values\((.+), *\w+\)", variable["query"]["query"])
            assert m, variable
            exprs.append(m.group(1))
    return exprs


def test_the_dashboard_is_the_shipped_file() -> None:
    shipped = json.loads((CHART / "files" / "dashboards" / "canary.json").read_text())
    assert dashboard() == shipped
    assert shipped["uid"] == "canary-rollouts"


def documented_rollout_link() -> str:
    """The example of notifications.rolloutLink in values.yaml's comment."""
    text = (CHART / "values.yaml").read_text(encoding="utf-8")
    found = re.findall(r"^ *# (https://grafana\.example\.com/\S+)$", text, re.MULTILINE)
    assert len(found) == 1, found
    link: str = found[0]
    return link


def test_the_documented_rollout_link_opens_the_dashboard_on_the_rollout() -> None:
    """The rollout link's example (values.yaml, the schema, docs/helm.md) names this dashboard's
    uid and sets the variables that select one rollout: {namespace} the variable over the
    series' namespace label, {name} the one over their name label."""
    link = urlsplit(documented_rollout_link())
    board = dashboard()
    assert link.path == f"/d/{board['uid']}"
    label_of = {}
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            m = re.fullmatch(r"label_values\(.+, *(\w+)\)", variable["query"]["query"])
            assert m, variable
            label_of[variable["name"]] = m.group(1)
    query = parse_qs(link.query)
    filled = {key.removeprefix("var-"): value for key, [value] in query.items()}
    assert {label_of[variable] for variable in filled} == {"namespace", "name"}
    assert all(value == f"{{{label_of[variable]}}}" for variable, value in filled.items())
    description = schema()["properties"]["notifications"]["properties"]["rolloutLink"]
    assert documented_rollout_link() in description["description"]
    assert documented_rollout_link() in (ROOT / "docs" / "helm.md").read_text(encoding="utf-8")


def test_every_dashboard_query_names_series_the_controller_exports() -> None:
    exported = exported_series()
    queries = dashboard_queries()
    named = set().union(*(series_named(q) for q in queries))
    assert named - exported - PROMETHEUS_SERIES == set()
    # what the dashboard is for: health, ticks and lateness, phases, weights, verdicts
    assert {
        "up",
        "canary_leader",
        "canary_reconcile_duration_seconds_count",
        "canary_tick_lateness_seconds_bucket",
        "canary_rollouts",
        "canary_rollout_phase",
        "canary_rollout_canary_weight",
        "canary_check_results_total",
    } <= named


def test_the_series_check_has_teeth() -> None:
    """A misspelt series (the singular the client does not export) is caught."""
    assert "canary_check_result_total" not in exported_series()
    assert series_named("sum(canary_check_result_total)") == {"canary_check_result_total"}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: it comes with Debian's prometheus package (bootstrap)")
    return found


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_every_dashboard_query_parses_as_promql(tmp_path: Path) -> None:
    """Prometheus' parser (through `promtool check rules`, each query a recording rule), with
    Grafana's variables given values."""
    variables = {"$__rate_interval": "5m", "$job": "canary", "$namespace": ".*", "$rollout": ".*"}
    rules = []
    for index, query in enumerate(dashboard_queries()):
        for name, value in variables.items():
            query = query.replace(name, value)
        assert "$" not in query, query
        rules.append({"record": f"dashboard:query_{index}", "expr": query})
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = _promtool("check", "rules", path.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


# --- the alerts ------------------------------------------------------------------------------


def alert_groups(values: Json | None = None) -> list[Json]:
    rule = render(values or VARIANTS["monitoring"]).one("PrometheusRule")
    assert rule["metadata"]["namespace"] == NAMESPACE
    groups: list[Json] = rule["spec"]["groups"]
    return groups


ALERTS = {
    "CanaryControllerDown",
    "CanaryNoLeader",
    "CanaryTicksFailing",
    "CanaryRolloutFailed",
    "CanaryRolloutStuck",
    "CanaryChecksInconclusive",
}


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    groups = alert_groups()
    assert {r["alert"] for g in groups for r in g["rules"]} == ALERTS
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    result = _promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    """The check above has teeth: one expression broken, promtool says so."""
    groups = alert_groups()
    groups[0]["rules"][0]["expr"] = "sum by (namespace (up)"
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    result = _promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_every_alert_names_series_the_controller_exports() -> None:
    exported = exported_series()
    for group in alert_groups():
        for rule in group["rules"]:
            named = series_named(rule["expr"])
            assert named, rule["alert"]
            assert named - exported - PROMETHEUS_SERIES == set(), rule["alert"]
            assert 'job="canary"' in rule["expr"], rule["alert"]


def test_the_selector_value_replaces_the_job() -> None:
    groups = alert_groups({"prometheusRule": {"enabled": True, "selector": 'service="cd"'}})
    exprs = [r["expr"] for g in groups for r in g["rules"]]
    assert all('service="cd"' in e and "job=" not in e for e in exprs)


def _steps(*runs: tuple[float, int]) -> str:
    """promtool's series notation: (value, minutes) runs, one sample a minute."""
    return " ".join(" ".join([f"{value:g}"] * minutes) for value, minutes in runs)


def _moving_weight(minutes: int, every: int) -> str:
    return " ".join(str(5 + 5 * (m // every)) for m in range(minutes))


def _series(metric: str, values: str, **labels: str) -> Json:
    matchers = ", ".join(f'{k}="{v}"' for k, v in {"job": "canary", **labels}.items())
    return {"series": f"{metric}{{{matchers}}}", "values": values}


def _alert(alertname: str, severity: str, **labels: str) -> Json:
    return {"exp_labels": {"severity": severity, **labels}}


def rule_tests() -> list[Json]:
    """Each alert: a case that sets it off (at the time the `for` allows) and one that must
    not (the same series, healthy). monitoring's stuckAfter is 30m."""
    web = {"namespace": "shop", "name": "web"}
    api = {"namespace": "shop", "name": "api"}
    return [
        {  # down: up 1 for 10 minutes, then 0 (fires 5m after); a leader all along
            "interval": "1m",
            "input_series": [
                _series("up", _steps((1, 10), (0, 20)), instance="a"),
                _series("canary_leader", _steps((1, 10), (0, 20)), instance="a"),
            ],
            "alert_rule_test": [
                {"eval_time": "9m", "alertname": "CanaryControllerDown", "exp_alerts": []},
                {"eval_time": "14m", "alertname": "CanaryControllerDown", "exp_alerts": []},
                {
                    "eval_time": "17m",
                    "alertname": "CanaryControllerDown",
                    "exp_alerts": [_alert("CanaryControllerDown", "critical")],
                },
            ],
        },
        {  # no leader: up all along, the leader gives up at minute 10
            "interval": "1m",
            "input_series": [
                _series("up", _steps((1, 40)), instance="a"),
                _series("canary_leader", _steps((1, 10), (0, 30)), instance="a"),
            ],
            "alert_rule_test": [
                {"eval_time": "14m", "alertname": "CanaryNoLeader", "exp_alerts": []},
                {
                    "eval_time": "17m",
                    "alertname": "CanaryNoLeader",
                    "exp_alerts": [_alert("CanaryNoLeader", "critical")],
                },
                {"eval_time": "17m", "alertname": "CanaryControllerDown", "exp_alerts": []},
            ],
        },
        {  # rollouts: web fails at minute 5; api stuck at 20% from minute 2; moving keeps
            # moving every 5 minutes; errors grow for web only; api's check is inconclusive
            # while moving's has pass verdicts among its inconclusive ones
            "interval": "1m",
            "input_series": [
                _series(
                    "canary_rollout_phase", _steps((1, 5), (0, 55)), **web, phase="Progressing"
                ),
                _series("canary_rollout_phase", _steps((0, 5), (1, 55)), **web, phase="Failed"),
                _series("canary_rollout_phase", _steps((1, 60)), **api, phase="Progressing"),
                _series("canary_rollout_canary_weight", "5 10 " + _steps((20, 58)), **api),
                _series(
                    "canary_rollout_phase",
                    _steps((1, 60)),
                    namespace="shop",
                    name="moving",
                    phase="Progressing",
                ),
                _series(
                    "canary_rollout_canary_weight",
                    _moving_weight(60, 5),
                    namespace="shop",
                    name="moving",
                ),
                _series("canary_reconcile_errors_total", "0+1x59", **web, reason="KubeError"),
                _series("canary_reconcile_errors_total", _steps((3, 60)), **api, reason="Conflict"),
                _series(
                    "canary_check_results_total",
                    "0+1x59",
                    **api,
                    check="error-rate",
                    verdict="inconclusive",
                ),
                *(
                    _series(
                        "canary_check_results_total",
                        "0+1x59",
                        namespace="shop",
                        name="moving",
                        check="error-rate",
                        verdict=verdict,
                    )
                    for verdict in ("inconclusive", "pass")
                ),
            ],
            "alert_rule_test": [
                {"eval_time": "4m", "alertname": "CanaryRolloutFailed", "exp_alerts": []},
                {
                    "eval_time": "6m",
                    "alertname": "CanaryRolloutFailed",
                    "exp_alerts": [_alert("CanaryRolloutFailed", "warning", **web)],
                },
                # api's weight last moved at minute 2: unchanged over 10m from minute 12,
                # for 30m: fires from minute 42, and never for `moving`
                {"eval_time": "40m", "alertname": "CanaryRolloutStuck", "exp_alerts": []},
                {
                    "eval_time": "43m",
                    "alertname": "CanaryRolloutStuck",
                    "exp_alerts": [_alert("CanaryRolloutStuck", "warning", **api)],
                },
                {
                    "eval_time": "59m",
                    "alertname": "CanaryRolloutStuck",
                    "exp_alerts": [_alert("CanaryRolloutStuck", "warning", **api)],
                },
                {"eval_time": "10m", "alertname": "CanaryTicksFailing", "exp_alerts": []},
                {
                    "eval_time": "20m",
                    "alertname": "CanaryTicksFailing",
                    "exp_alerts": [_alert("CanaryTicksFailing", "warning", **web)],
                },
                {"eval_time": "3m", "alertname": "CanaryChecksInconclusive", "exp_alerts": []},
                {
                    "eval_time": "20m",
                    "alertname": "CanaryChecksInconclusive",
                    "exp_alerts": [
                        _alert("CanaryChecksInconclusive", "warning", **api, check="error-rate")
                    ],
                },
            ],
        },
    ]


def test_each_alert_fires_when_it_should_and_only_then(tmp_path: Path) -> None:
    """`promtool test rules` with the rendered rules (annotations left out: they are text
    for people, checked by `promtool check rules` above)."""
    groups = alert_groups()
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": rule_tests()}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = _promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    tested = {t["alertname"] for case in tests["tests"] for t in case["alert_rule_test"]}
    assert tested == ALERTS


def test_a_wrong_expectation_fails_the_rule_tests(tmp_path: Path) -> None:
    """The rule tests have teeth: expecting the stuck alert for the moving rollout fails."""
    groups = alert_groups()
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    cases = rule_tests()
    moving = {"namespace": "shop", "name": "moving"}
    cases[2]["alert_rule_test"] = [
        {
            "eval_time": "59m",
            "alertname": "CanaryRolloutStuck",
            "exp_alerts": [
                _alert("CanaryRolloutStuck", "warning", namespace="shop", name="api"),
                _alert("CanaryRolloutStuck", "warning", **moving),
            ],
        }
    ]
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": cases}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = _promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert "CanaryRolloutStuck" in result.stdout + result.stderr


def test_a_shard_nobody_holds_sets_off_its_alert(tmp_path: Path) -> None:
    """With shards, `CanaryShardsUnheld` fires once fewer shards than there are have been held
    for 5 minutes (a replica gives one up at minute 10 and nobody takes it), not before."""
    groups = alert_groups({**VARIANTS["monitoring"], **VARIANTS["sharded"]})
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    assert "CanaryShardsUnheld" not in {
        r.get("alert") for g in alert_groups() for r in g["rules"]
    }, "no shard alert without shards"
    case = {
        "interval": "1m",
        "input_series": [
            _series("up", _steps((1, 40)), instance="a"),
            _series("up", _steps((1, 40)), instance="b"),
            _series("canary_shards_held", _steps((2, 40)), instance="a"),
            _series("canary_shards_held", _steps((1, 10), (0, 30)), instance="b"),
        ],
        "alert_rule_test": [
            {"eval_time": "9m", "alertname": "CanaryShardsUnheld", "exp_alerts": []},
            {"eval_time": "14m", "alertname": "CanaryShardsUnheld", "exp_alerts": []},
            {
                "eval_time": "17m",
                "alertname": "CanaryShardsUnheld",
                "exp_alerts": [_alert("CanaryShardsUnheld", "critical")],
            },
        ],
    }
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [case]}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = _promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
