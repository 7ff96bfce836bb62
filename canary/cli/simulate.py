"""`canary simulate FILE`: run a rollout through the engine in virtual time with synthetic
traffic from a scenario (named, from a file, or described by options), and show what happened
tick by tick — or, with --runs, how often it is promoted or rolled back over many seeds."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import ValidationError
from rich.table import Table
from rich.text import Text

from canary.analysis.checks import CheckResolutionError
from canary.analysis.judges import minimum_time
from canary.analysis.judges.base import JudgeError
from canary.cli.output import OUTPUT_OPTION, console, plot_option, print_json
from canary.cli.timeline import fail, print_timeline, write_plot
from canary.model.analysis import JudgeName
from canary.model.loader import LoadError, load_rollout
from canary.model.rollout import Rollout
from canary.model.status import Phase, Verdict
from canary.sim import SCENARIOS, Scenario, get_scenario
from canary.sim import simulate as run_simulation
from canary.sim.summary import Interval, Summary, summarise
from canary.sim.traffic import side_models

_VERDICT_STYLE = {Verdict.PASS: "green", Verdict.FAIL: "red", Verdict.INCONCLUSIVE: "yellow"}
_PHASE_STYLE = {Phase.SUCCEEDED: "bold green", Phase.FAILED: "bold red"}
_PIPED_WIDTH = 160
_MAX_RUNS = 100_000


def _number(suffix: str) -> Any:
    """A click callback reading '0.5%' / '3x' (or a bare number) as a float."""

    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
        if value is None:
            return None
        text = value.strip().lower().removesuffix(suffix)
        try:
            number = float(text)
        except ValueError:
            raise click.BadParameter(
                f"expected a number such as 3{suffix}, not {value!r}"
            ) from None
        if number < 0:
            raise click.BadParameter("must not be negative")
        return number

    return parse


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--scenario",
    type=click.Choice(list(SCENARIOS)),
    default="healthy",
    show_default=True,
    help="The synthetic world: how the canary behaves against the primary.",
)
@click.option(
    "--world",
    "world_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A YAML file describing the world (the fields of a scenario, e.g. requestsPerMinute, "
    "primaryErrorPercent, canaryErrorMultiplier, canaryLatencyMultiplier); replaces --scenario.",
)
@click.option("--rpm", type=float, default=None, help="Requests a minute, both versions.")
@click.option(
    "--primary-errors", callback=_number("%"), default=None, help="The primary's errors, e.g. 0.5%."
)
@click.option(
    "--canary-errors",
    callback=_number("x"),
    default=None,
    help="The canary's error rate as a multiple of the primary's, e.g. 3x.",
)
@click.option(
    "--canary-latency",
    callback=_number("x"),
    default=None,
    help="The canary's latency as a multiple of the primary's, e.g. 2.5x.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the randomness.")
@click.option(
    "--runs",
    type=click.IntRange(1, _MAX_RUNS),
    default=None,
    help="Run this many seeds from --seed and print a summary instead of one timeline.",
)
@click.option(
    "--judge",
    type=click.Choice([j.value for j in JudgeName]),
    default=None,
    help="Judge every check with this judge, whatever the spec says (default: the spec's "
    "judges, per check then per rollout).",
)
@plot_option("Also draw the rollout into this PNG file (single runs).")
@OUTPUT_OPTION
def simulate(
    file: Path,
    scenario: str,
    world_file: Path | None,
    rpm: float | None,
    primary_errors: float | None,
    canary_errors: float | None,
    canary_latency: float | None,
    seed: int,
    runs: int | None,
    judge: str | None,
    plot_path: Path | None,
    output: str,
) -> None:
    """Run the Rollout in FILE through the engine in virtual time, with synthetic traffic.

    The exit code is 0 whatever the rollout's outcome (it is in the output); 1 when the file
    is not a valid Rollout or the world is not valid.
    """
    try:
        rollout = load_rollout(file)
    except LoadError as exc:
        fail([str(p) for p in exc.problems])
    overrides = {
        "requestsPerMinute": rpm,
        "primaryErrorPercent": primary_errors,
        "canaryErrorMultiplier": canary_errors,
        "canaryLatencyMultiplier": canary_latency,
    }
    world = _world(scenario, world_file, {k: v for k, v in overrides.items() if v is not None})
    override = JudgeName(judge) if judge is not None else None
    if runs is not None:
        _many(rollout, file, world, seed, runs, override, output)
        return
    try:
        result = run_simulation(rollout, world, seed, judge=override)
    except CheckResolutionError as exc:
        fail([f"{file}: {exc.path}: {exc.message}"])
    except JudgeError as exc:
        fail([f"{file}: spec.analysis.judge: {exc}"])
    if output == "json":
        print_json(result.to_json_data())
    else:
        title = f"{file} --scenario {world.name} --seed {seed}"
        print_timeline(result, "canary simulate " + title + (f" --judge {judge}" if judge else ""))
    summary = summarise([result], seed)
    if summary.undecided:
        console(stderr=True).print(Text(_undecided_warning(summary, rollout), style="yellow"))
    if plot_path is not None:
        from canary.sim.plot import plot_result

        write_plot(lambda path: plot_result(result, path), plot_path, stderr=output == "json")


def _world(name: str, world_file: Path | None, overrides: dict[str, float]) -> Scenario:
    """The named scenario (or the file's world) with the command line's numbers over it."""
    base: dict[str, Any] = get_scenario(name).model_dump(by_alias=True)
    if world_file is not None:
        try:
            loaded = yaml.safe_load(world_file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            fail([f"{world_file}: cannot read the world: {exc}"])
        if not isinstance(loaded, dict):
            fail(
                [f"{world_file}: a world is a mapping of scenario fields (requestsPerMinute: 600)"]
            )
        base = {"name": world_file.stem, "description": "", **loaded}
    if overrides:
        base.update(overrides)
        base["name"] = "custom" if world_file is None else base["name"]
        base["description"] = ""
    try:
        return Scenario.model_validate(base)
    except ValidationError as exc:
        where = world_file or "the command line"
        fail(
            [
                f"{where}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_url=False)
            ]
        )


def _many(
    rollout: Rollout,
    file: Path,
    world: Scenario,
    seed: int,
    runs: int,
    judge: JudgeName | None,
    output: str,
) -> None:
    results = []
    try:
        for s in range(seed, seed + runs):
            results.append(run_simulation(rollout, world, s, judge=judge, record_timeline=False))
    except CheckResolutionError as exc:
        fail([f"{file}: {exc.path}: {exc.message}"])
    except JudgeError as exc:
        fail([f"{file}: spec.analysis.judge: {exc}"])
    summary = summarise(results, seed)
    warning = _undecided_warning(summary, rollout) if summary.undecided else ""
    fastest = fastest_promotion(rollout, world)
    if output == "json":
        data = summary.to_json_data()
        data["world"] = world.model_dump(mode="json", by_alias=True)
        data["fastestPromotion"] = fastest
        data["warnings"] = [warning] if warning else []
        print_json(data)
        return
    _print_summary(summary, world, file, fastest)
    if warning:
        console(stderr=True).print(Text(warning, style="yellow"))


def fastest_promotion(rollout: Rollout, world: Scenario) -> dict[str, float | None] | None:
    """The fastest any test holding the Rollout's alpha and beta could promote a canary like
    its primary at this traffic (canary.analysis.judges.minimum_time), in minutes from the
    new revision as the summary counts them (readiness and the promotion included): the best
    fixed-sample test, and Wald's floor on any sequential test's average. None when the
    Rollout has no count checks."""
    stable, _ = side_models(world)
    error_rate = world.primary_error_percent / 100.0
    try:
        figures = minimum_time.for_rollout(
            rollout,
            world.requests_per_minute,
            error_rate,
            lambda ms: 1.0 - stable.share_within(ms),
        )
    except minimum_time.MinimumTimeError:
        return None
    if not figures.checks:
        return None
    overhead = (world.canary_ready_seconds + world.promotion_seconds) / 60.0

    def shown(minutes: float) -> float | None:
        return round(minutes + overhead, 1) if math.isfinite(minutes) else None

    return {
        "fixedSampleMinutes": shown(figures.fixed_minutes),
        "waldMinutes": shown(figures.wald_minutes),
    }


def _fastest_text(fastest: dict[str, float | None] | None) -> str:
    if fastest is None:
        return "n/a (no count checks)"
    fixed, wald = fastest["fixedSampleMinutes"], fastest["waldMinutes"]
    if fixed is None or wald is None:
        return "never at this traffic (no failures to compare and no objective to be within)"
    return (
        f"about {fixed:.1f} min for the best test that looks once; no test that looks as "
        f"often as it likes under {wald:.1f} min on average (Wald); for steady traffic"
    )


def _undecided_warning(summary: Summary, rollout: Rollout) -> str:
    analysis = rollout.spec.analysis
    needs = f" (e.g. {summary.undecided_needs[0]})" if summary.undecided_needs else ""
    return (
        f"warning: {summary.undecided} of {summary.runs} runs reached inconclusiveDeadline "
        f"({analysis.inconclusive_deadline:g}s) undecided and were handled by onUndecided: "
        f"{analysis.on_undecided.value}: this traffic cannot reach a decision within the "
        f"deadline{needs}"
    )


def _share(count: int, runs: int, interval: Interval) -> str:
    low, high = 100 * interval.low, 100 * interval.high
    return f"{count} ({100 * count / runs:.1f}%, 95% {low:.1f}-{high:.1f}%)"


def _median(value: float | None, interval: Interval | None, unit: str) -> str:
    if value is None or interval is None:
        return "n/a"
    return f"{value:.1f}{unit} (95% {interval.low:.1f}-{interval.high:.1f})"


def _print_summary(
    summary: Summary, world: Scenario, file: Path, fastest: dict[str, float | None] | None
) -> None:
    runs = summary.runs
    table = Table(
        title=f"canary simulate {file}: {runs} runs from seed {summary.first_seed}",
        caption=(
            f"{world.requests_per_minute:g} requests/min, primary errors "
            f"{world.primary_error_percent:g}%, canary errors {world.canary_error_multiplier:g}x, "
            f"latency {world.canary_latency_multiplier:g}x"
        ),
    )
    table.add_column("outcome")
    table.add_column("value")
    table.add_row("promoted", _share(summary.promoted, runs, summary.promoted_share))
    table.add_row("rolled back", _share(summary.rolled_back, runs, summary.rolled_back_share))
    table.add_row("  by a judgement", str(summary.rolled_back_by_judgement))
    table.add_row("undecided at the deadline", str(summary.undecided))
    minutes = _median(summary.median_minutes_to_decision, summary.median_minutes_interval, " min")
    table.add_row("median time to decision", minutes)
    bad = _median(
        summary.median_canary_bad_requests, summary.median_canary_bad_requests_interval, ""
    )
    table.add_row("canary bad requests (median)", bad)
    table.add_row("canary bad requests (mean)", f"{summary.mean_canary_bad_requests:.1f}")
    table.add_row("fastest possible promotion", _fastest_text(fastest))
    console().print(table)
