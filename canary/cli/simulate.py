"""`canary simulate FILE`: run a rollout through the engine in virtual time with synthetic
traffic from a scenario, and show what happened tick by tick."""

from __future__ import annotations

from pathlib import Path

import click
from rich.text import Text

from canary.analysis.checks import CheckResolutionError
from canary.analysis.judges.base import JudgeError
from canary.cli.output import OUTPUT_OPTION, console, print_json
from canary.cli.timeline import fail, print_timeline
from canary.model.analysis import JudgeName
from canary.model.loader import LoadError, load_rollout
from canary.model.status import Phase, Verdict
from canary.sim import SCENARIOS, get_scenario
from canary.sim import simulate as run_simulation

_VERDICT_STYLE = {Verdict.PASS: "green", Verdict.FAIL: "red", Verdict.INCONCLUSIVE: "yellow"}
_PHASE_STYLE = {Phase.SUCCEEDED: "bold green", Phase.FAILED: "bold red"}
_PIPED_WIDTH = 160


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--scenario",
    type=click.Choice(list(SCENARIOS)),
    default="healthy",
    show_default=True,
    help="The synthetic world: how the canary behaves against the primary.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the randomness.")
@click.option(
    "--judge",
    type=click.Choice([j.value for j in JudgeName]),
    default=None,
    help="Judge every check with this judge, whatever the spec says (default: the spec's "
    "judges, per check then per rollout).",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also draw the rollout into this PNG file.",
)
@OUTPUT_OPTION
def simulate(
    file: Path,
    scenario: str,
    seed: int,
    judge: str | None,
    plot_path: Path | None,
    output: str,
) -> None:
    """Run the Rollout in FILE through the engine in virtual time, with synthetic traffic.

    The exit code is 0 whatever the rollout's outcome (it is in the output); 1 when the file
    is not a valid Rollout.
    """
    try:
        rollout = load_rollout(file)
    except LoadError as exc:
        fail([str(p) for p in exc.problems])
    try:
        override = JudgeName(judge) if judge is not None else None
        result = run_simulation(rollout, get_scenario(scenario), seed, judge=override)
    except CheckResolutionError as exc:
        fail([f"{file}: {exc.path}: {exc.message}"])
    except JudgeError as exc:
        fail([f"{file}: spec.analysis.judge: {exc}"])
    if output == "json":
        print_json(result.to_json_data())
    else:
        title = f"{file} --scenario {scenario} --seed {seed}"
        print_timeline(result, "canary simulate " + title + (f" --judge {judge}" if judge else ""))
    if plot_path is not None:
        from canary.sim.plot import plot_result

        try:
            written = plot_result(result, plot_path)
        except OSError as exc:
            fail([f"{plot_path}: cannot write the plot: {exc.strerror or exc}"])
        console(stderr=output == "json").print(Text(f"plot written to {written}"))
