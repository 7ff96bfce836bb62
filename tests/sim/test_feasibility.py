"""Whether a Rollout's traffic can reach a decision before its deadline: the estimate behind
`canary validate --rpm` and the simulator's warnings, checked against the simulator."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from click.testing import CliRunner

from canary.analysis.checks import resolve_checks
from canary.analysis.judges import minimum_time
from canary.analysis.judges.feasibility import promotion_minutes, traffic_warnings
from canary.cli.main import cli
from canary.model.analysis import CheckKind, CheckSpec, JudgeName
from canary.model.loader import load_rollout
from canary.model.rollout import Rollout
from canary.sim import simulate
from canary.sim.scenario import Scenario
from canary.sim.summary import summarise

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "podinfo-istio.yaml"


def _errors_check() -> tuple[Rollout, CheckSpec]:
    rollout = load_rollout(EXAMPLE)
    check = next(c for c in resolve_checks(rollout) if c.kind is CheckKind.ERROR_RATE)
    return rollout, check


def test_more_traffic_needs_fewer_minutes() -> None:
    rollout, check = _errors_check()
    minutes = [promotion_minutes(rollout, check, rpm, 1.0) for rpm in (100, 600, 3000)]
    assert minutes[0] > minutes[1] > minutes[2] > 0
    without = check.model_copy(update={"max": None})
    assert math.isinf(promotion_minutes(rollout, without, 600, 0.0))


def test_the_warning_names_a_deadline_that_would_do() -> None:
    """At 100 requests a minute the warning proposes an inconclusiveDeadline; with it the
    estimate no longer warns about the error-rate check."""
    rollout = load_rollout(EXAMPLE)
    (warning,) = [w for w in traffic_warnings(rollout, 100, 1.0) if "'error-rate'" in w]
    found = re.search(r"inconclusiveDeadline: (\d+)m\)", warning)
    assert found is not None
    rollout.spec.analysis.inconclusive_deadline = 60 * int(found.group(1))
    assert not [w for w in traffic_warnings(rollout, 100, 1.0) if "'error-rate'" in w]


def test_the_estimate_agrees_with_the_simulator() -> None:
    """Where the estimate is far past the deadline, simulated healthy canaries end undecided;
    where it is well inside, they are promoted."""
    rollout = load_rollout(EXAMPLE)
    assert traffic_warnings(rollout, 100, 1.0)
    assert not traffic_warnings(rollout, 3000, 1.0)
    for rpm, undecided in ((100, True), (3000, False)):
        world = Scenario(name="w", requests_per_minute=rpm, primary_error_percent=1.0)
        runs = [simulate(rollout, world, s, record_timeline=False) for s in range(60)]
        summary = summarise(runs, 0)
        if undecided:
            assert summary.undecided >= 45
        else:
            assert summary.promoted >= 55


def test_a_judge_that_cannot_see_the_canary_is_named() -> None:
    rollout = load_rollout(EXAMPLE)
    rollout.spec.analysis.judge = JudgeName.MANN_WHITNEY
    warnings = traffic_warnings(rollout, 100, 0.5)
    assert any("mann-whitney" in w and "minRequests (20)" in w for w in warnings)
    assert not traffic_warnings(rollout, 6000, 0.5)


def test_validate_warns_with_rpm_and_keeps_its_exit_code() -> None:
    runner = CliRunner()
    quiet = runner.invoke(cli, ["validate", str(EXAMPLE), "--rpm", "100", "--primary-errors", "1"])
    assert quiet.exit_code == 0
    assert "warning: Rollout/podinfo: check 'error-rate'" in quiet.stderr
    assert "more than inconclusiveDeadline (10m)" in quiet.stderr
    data = json.loads(
        runner.invoke(cli, ["validate", str(EXAMPLE), "--rpm", "100", "-o", "json"]).stdout
    )
    assert data["valid"] is True
    assert data["files"][0]["warnings"]
    plain = runner.invoke(cli, ["validate", str(EXAMPLE)])
    assert plain.exit_code == 0
    assert "warning" not in plain.stderr


def test_the_warning_quotes_the_exact_minimum() -> None:
    """The warning names the exact fixed-sample minimum and Wald's floor of
    canary.analysis.judges.minimum_time for the check at this traffic."""
    rollout = load_rollout(EXAMPLE)
    (warning,) = [w for w in traffic_warnings(rollout, 100, 1.0) if "'error-rate'" in w]
    found = minimum_time.for_rollout(rollout, 100, 0.01, lambda _ms: 0.0)
    errors = next(c for c in found.checks if c.name == "error-rate")
    assert f"looks once needs {errors.fixed_minutes:.1f} analysis minutes" in warning
    assert f"no test fewer than {errors.wald_minutes:.1f} on average" in warning
    assert errors.fixed_minutes > rollout.spec.analysis.inconclusive_deadline / 60.0
