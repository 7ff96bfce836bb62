"""`canary simulate --runs` shows the fastest any test could promote a healthy canary at the
world's traffic (canary.analysis.judges.minimum_time) beside what the judge did."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from canary.analysis.judges import minimum_time
from canary.cli.main import cli
from canary.model.loader import load_rollout

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "podinfo-istio.yaml"


def summary(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(cli, ["simulate", str(EXAMPLE), *args, "-o", "json"])
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_the_json_summary_carries_both_figures_in_minutes_from_the_new_revision() -> None:
    data = summary("--rpm", "3000", "--primary-errors", "1%", "--runs", "20")
    fastest = data["fastestPromotion"]
    assert isinstance(fastest, dict)
    figures = minimum_time.for_rollout(
        load_rollout(EXAMPLE),
        3000,
        0.01,
        lambda ms: 0.0,  # the latency check is not the slower
    )
    overhead = (30 + 45) / 60  # the simulator's readiness and promotion
    assert fastest["fixedSampleMinutes"] == round(figures.fixed_minutes + overhead, 1)
    assert fastest["waldMinutes"] == round(figures.wald_minutes + overhead, 1)
    assert overhead < fastest["waldMinutes"] < fastest["fixedSampleMinutes"]


def test_less_traffic_needs_more_time_and_none_means_never() -> None:
    busy = summary("--rpm", "3000", "--primary-errors", "1%", "--runs", "2")["fastestPromotion"]
    quiet = summary("--rpm", "600", "--primary-errors", "1%", "--runs", "2")["fastestPromotion"]
    assert isinstance(busy, dict)
    assert isinstance(quiet, dict)
    assert quiet["fixedSampleMinutes"] > 3 * busy["fixedSampleMinutes"]
    never = summary("--rpm", "600", "--primary-errors", "0%", "--runs", "2")["fastestPromotion"]
    assert isinstance(never, dict)
    # no failures: the comparison is out of reach, but the objective route still promotes
    assert never["fixedSampleMinutes"] is not None


def test_the_table_says_it_in_words() -> None:
    args = ["simulate", str(EXAMPLE), "--rpm", "3000", "--primary-errors", "1%", "--runs", "5"]
    result = CliRunner().invoke(cli, args, terminal_width=200)
    assert result.exit_code == 0
    assert "fastest possible promotion" in result.stdout
    words = " ".join(result.stdout.replace("│", " ").split())
    assert "for the best test that" in words
    assert "(Wald)" in words
