"""The rollout plot (`canary demo`, `canary simulate --plot`) draws what the judges judge: a
latency check's share of requests slower than the objective against its 1% limit, with the
p99 only as an estimate on its own axis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sim_support import write_rollout

from canary.cli.main import cli
from canary.model.analysis import CheckKind
from canary.sim.plot import panel, plot_result
from canary.sim.result import SimulationResult


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    path = write_rollout(tmp_path_factory.mktemp("plot"))
    args = ["simulate", str(path), "--scenario", "latency-regression", "-o", "json", "--seed", "4"]
    run = CliRunner().invoke(cli, args)
    assert run.exit_code == 0, run.output
    return SimulationResult.model_validate(json.loads(run.stdout))


def test_the_latency_panel_is_the_slow_share_of_each_look(result: SimulationResult) -> None:
    data = panel(result, CheckKind.LATENCY)
    outcomes = [c for e in result.timeline for c in e.checks if c.kind is CheckKind.LATENCY]
    assert len(data.canary) == len(outcomes) >= 3
    for drawn_canary, drawn_primary, check in zip(data.canary, data.primary, outcomes, strict=True):
        if check.canary_requests:
            assert check.canary_failures is not None
            assert drawn_canary == pytest.approx(
                100 * check.canary_failures / check.canary_requests
            )
        else:
            assert drawn_canary is None  # no requests: nothing drawn, never a zero
        if check.primary_requests and check.primary_failures is not None:
            assert drawn_primary == pytest.approx(
                100 * check.primary_failures / check.primary_requests
            )
    # the judged share is not the p99: the p99 (ms) is kept apart, as an estimate
    assert data.canary_p99 == [c.canary_value for c in outcomes]
    assert any(v is not None and v > 100 for v in data.canary_p99)
    assert data.limit == 1.0
    assert data.ylabel == "requests slower than 500 ms (%)"
    assert "p99 within the objective" in data.limit_label


def test_the_error_panel_is_the_failed_share_against_max(result: SimulationResult) -> None:
    data = panel(result, CheckKind.ERROR_RATE)
    outcomes = [c for e in result.timeline for c in e.checks if c.kind is CheckKind.ERROR_RATE]
    for drawn, check in zip(data.canary, outcomes, strict=True):
        if check.canary_requests:
            assert drawn == pytest.approx(
                100 * (check.canary_failures or 0) / check.canary_requests
            )
    assert data.limit == 1.0
    assert data.canary_p99 == []


def test_the_png_labels_the_p99_as_an_estimate(
    result: SimulationResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.figure

    labels: list[str] = []
    original = matplotlib.figure.Figure.savefig

    def spy(self: matplotlib.figure.Figure, *args: object, **kwargs: object) -> None:
        labels.extend(ax.get_ylabel() for ax in self.axes)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    written = plot_result(result, tmp_path / "rollout.png")
    assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "requests slower than 500 ms (%)" in labels
    assert "p99 estimate (ms, within a bucket)" in labels
    assert not any(label.startswith("latency p99") for label in labels)
