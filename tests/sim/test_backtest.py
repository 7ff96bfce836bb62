"""`canary backtest`: its options, its table and plot, and the decision it draws, on a short
realistic history in a real Prometheus (the counts themselves: tests/telemetry)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from mesh_support import NAMESPACE, replica_set, rollout_file
from prometheus_backfill import history_start, start_backfilled_prometheus

from canary.cli.backtest import parse_time
from canary.cli.main import cli
from canary.model.status import Verdict
from canary.sim.backtest import MAX_LOOKS, Decision, Look, LookCheck, decide
from canary.testing.telemetry_backfill import mesh_targets, openmetrics
from canary.testing.telemetry_history import BAD, HEALTHY, History, Workload

SECONDS = 120


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Path]]:
    """Two minutes: a primary since the start, a bad canary from 20 s."""
    workdir = tmp_path_factory.mktemp("backtest")
    workloads = (
        Workload(
            NAMESPACE,
            "podinfo-primary",
            30.0,
            HEALTHY,
            replica_set("podinfo-primary", 2, 0, 1),
            "primary",
        ),
        Workload(NAMESPACE, "podinfo", 10.0, BAD, replica_set("podinfo", 1, 20, 2), "canary"),
    )
    history = History(history_start(), SECONDS, workloads, seed=3)
    source = workdir / "mesh.om"
    with source.open("w") as out:
        out.writelines(openmetrics(history, mesh_targets(history)))
    url, process = start_backfilled_prometheus(workdir, source)
    try:
        yield url, history.start, workdir
    finally:
        process.stop()


def run(*args: str) -> tuple[int, str]:
    """The exit code, and stdout (with stderr after it when the command failed)."""
    result = CliRunner().invoke(cli, ["backtest", *args], catch_exceptions=False)
    return result.exit_code, result.stdout + (result.stderr if result.exit_code else "")


def test_times_are_rfc3339_or_unix_seconds() -> None:
    when = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)
    assert parse_time("2026-12-05T21:00:00Z", "--from") == when
    assert parse_time("2026-12-05T23:00:00+02:00", "--from") == when
    assert parse_time(str(int(when.timestamp())), "--from") == when
    assert parse_time(f"{when.timestamp():.3f}", "--from") == when


@pytest.mark.parametrize(
    ("text", "says"),
    [("2026-12-05T21:00:00", "no time zone"), ("yesterday", "RFC 3339")],
)
def test_a_bad_time_names_the_option_and_the_forms(text: str, says: str) -> None:
    with pytest.raises(click.BadParameter, match=says) as caught:
        parse_time(text, "--to")
    assert caught.value.param_hint == "--to"


def test_the_table_shows_each_look_and_the_decision(prometheus: tuple[str, int, Path]) -> None:
    url, start, workdir = prometheus
    path = rollout_file(workdir, "linkerd")
    code, out = run(
        str(path),
        "--prometheus",
        url,
        "--from",
        str(start + 20),
        "--to",
        str(start + SECONDS),
        "--look-interval",
        "20s",
    )
    assert code == 0, out
    assert out.count("fail ") + out.count("pass ") + out.count("inconclusive ") >= 5 * 2
    assert "decision: fail" in out
    assert "p99 ~" in out or "p99 >" in out  # the quantile shown as an estimate


def test_json_and_a_plot(prometheus: tuple[str, int, Path], tmp_path: Path) -> None:
    url, start, workdir = prometheus
    path = rollout_file(workdir, "istio")
    picture = tmp_path / "looks.png"
    code, out = run(
        str(path),
        "--prometheus",
        url,
        "--from",
        str(start + 20),
        "--to",
        str(start + 80),
        "--look-interval",
        "20s",
        "-o",
        "json",
        "--plot",
        str(picture),
    )
    assert code == 0, out
    data = json.loads(out)
    assert [look["end"] for look in data["looks"]] == [
        datetime.fromtimestamp(start + s, UTC).isoformat().replace("+00:00", "Z")
        for s in (40, 60, 80)
    ]
    assert data["decision"]["verdict"] in ("fail", "pass", "inconclusive")
    assert picture.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--from", "200", "--to", "100"], "must be after --from"),
        (["--from", "0", "--to", str(20 * MAX_LOOKS + 20)], "shorten the period"),
        (["--from", "0", "--to", "100", "--look-interval", "soon"], "--look-interval"),
        (["--from", "0", "--to", "10"], "shorter than one --look-interval"),
    ],
)
def test_a_period_that_cannot_be_replayed_is_refused(
    tmp_path: Path, extra: list[str], says: str
) -> None:
    path = rollout_file(tmp_path, "istio")
    args = [str(path), "--prometheus", "http://127.0.0.1:9", "--look-interval", "20s", *extra]
    code, out = run(*args)
    assert code != 0
    assert says in out


def _look(*verdicts: Verdict, decisive: bool = False) -> Look:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    checks = [LookCheck(name=f"c{i}", verdict=v, decisive=decisive) for i, v in enumerate(verdicts)]
    return Look(start=at, end=at, checks=checks)


def test_the_decision_follows_the_rollouts_rules() -> None:
    fail, ok, unsure = Verdict.FAIL, Verdict.PASS, Verdict.INCONCLUSIVE
    decisive = decide([_look(ok, unsure), _look(fail, ok, decisive=True)], failure_limit=3)
    assert (decisive.verdict, decisive.look) == (fail, 1)
    counted = decide([_look(fail, unsure), _look(unsure), _look(fail), _look(ok, ok)], 2)
    assert (counted.verdict, counted.look) == (fail, 2)
    passed = decide([_look(unsure, ok), _look(ok, ok)], 3)
    assert (passed.verdict, passed.look) == (ok, 1)
    assert decide([_look(unsure, unsure)], 3) == Decision(
        verdict=unsure, reason="no look settled it (0 failed, failureLimit 3)"
    )
