"""`canary backtest FILE --prometheus URL --from T --to T`: what the judges would have decided,
look by look, on a past period of a real Prometheus (canary.sim.backtest)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from canary.analysis.checks import CheckResolutionError, resolve_checks
from canary.analysis.policies import PolicyError
from canary.analysis.prometheus import PrometheusProvider, PrometheusSettings
from canary.cli.output import OUTPUT_OPTION, console, plot_option, print_json
from canary.cli.timeline import fail, write_plot
from canary.engine.timing import look_interval
from canary.model.analysis import CheckKind
from canary.model.duration import DurationError, parse_duration
from canary.model.loader import LoadError, load_rollout
from canary.model.rollout import Rollout
from canary.model.status import Verdict
from canary.sim.backtest import BacktestError, BacktestResult, LookCheck, SideCounts, backtest

_VERDICT_STYLE = {Verdict.PASS: "green", Verdict.FAIL: "red", Verdict.INCONCLUSIVE: "yellow"}
_PIPED_WIDTH = 160


def parse_time(text: str, option: str) -> datetime:
    """RFC 3339 (``2026-12-05T21:00:00Z``) or unix seconds (``1796504400``), as UTC."""
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a time: give RFC 3339 (2026-12-05T21:00:00Z) or unix seconds",
            param_hint=option,
        ) from None
    if parsed.tzinfo is None:
        raise click.BadParameter(
            f"{text!r} has no time zone: add Z (UTC) or an offset such as +02:00",
            param_hint=option,
        )
    return parsed.astimezone(UTC)


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--prometheus", "url", required=True, help="Prometheus's base URL.")
@click.option("--from", "start", required=True, help="Start: RFC 3339 or unix seconds.")
@click.option("--to", "end", required=True, help="End: RFC 3339 or unix seconds.")
@click.option(
    "--look-interval",
    default=None,
    help="Time between looks, e.g. 20s (default: the rollout's, as the controller computes it).",
)
@click.option(
    "--weight",
    type=click.IntRange(0, 100),
    default=None,
    help="The canary weight the judges are told (default: the rollout's first step).",
)
@plot_option("Also draw the looks into this PNG file.")
@OUTPUT_OPTION
def backtest_command(
    file: Path,
    url: str,
    start: str,
    end: str,
    look_interval: str | None,
    weight: int | None,
    plot_path: Path | None,
    output: str,
) -> None:
    """Replay the Rollout in FILE's checks over a past period of a real Prometheus.

    Each look runs the analysis the controller runs (policies, exact counts, judges), at every
    look interval from --from to --to, and the table (or -o json) shows what each check saw
    and decided, and the decision the rollout's rules draw. Exit code 0 whatever the decision;
    1 on bad input.
    """
    try:
        rollout = load_rollout(file)
    except LoadError as exc:
        fail([str(p) for p in exc.problems])
    begin, finish = parse_time(start, "--from"), parse_time(end, "--to")
    try:
        provider = PrometheusProvider(PrometheusSettings(url=url))
    except ValueError as exc:
        fail([f"--prometheus: {url!r} is not an http(s) URL ({type(exc).__name__})"])
    try:
        seconds = _look_seconds(rollout, look_interval)
        result = backtest(rollout, provider, begin, finish, seconds, weight=weight)
    except (BacktestError, DurationError) as exc:
        fail([str(exc)])
    except CheckResolutionError as exc:
        fail([f"{file}: {exc.path}: {exc.message}"])
    except PolicyError as exc:
        fail([f"{file}: {exc}"])
    if output == "json":
        print_json(result.to_json_data())
    else:
        print_looks(result, f"canary backtest {file}")
    if plot_path is not None:
        from canary.sim.backtest_plot import plot_backtest

        write_plot(lambda path: plot_backtest(result, path), plot_path, stderr=output == "json")


def _look_seconds(rollout: Rollout, given: str | None) -> float:
    if given is not None:
        try:
            return parse_duration(given)
        except DurationError as exc:
            raise DurationError(f"--look-interval: {exc}") from None
    return look_interval(rollout, resolve_checks(rollout))


def print_looks(result: BacktestResult, title: str) -> None:
    out = console()
    if not out.is_terminal:
        out.width = _PIPED_WIDTH
    table = Table(title=Text(title), title_justify="left")
    table.add_column("look", justify="right", no_wrap=True)
    table.add_column("end (UTC)", no_wrap=True)
    names = [c.name for c in result.looks[0].checks] if result.looks else []
    for name in names:
        table.add_column(name, no_wrap=True)
    for index, look in enumerate(result.looks):
        by_name = {c.name: c for c in look.checks}
        cells = [_cell(by_name[n]) if n in by_name else Text("") for n in names]
        table.add_row(str(index), look.end.strftime("%Y-%m-%d %H:%M:%S"), *cells)
    out.print(table)
    decision = result.decision
    line = Text("decision: ")
    line.append(decision.verdict.value, style=_VERDICT_STYLE[decision.verdict])
    when = f" at look {decision.look} ({decision.at:%H:%M:%S})" if decision.at else ""
    line.append(f"{when}: {decision.reason} (judges told weight {result.weight}%)")
    out.print(line)


def _cell(check: LookCheck) -> Text:
    text = Text(check.verdict.value, style=_VERDICT_STYLE[check.verdict])
    text.append(f" {_counts(check.canary)} vs {_counts(check.primary)}")
    canary = check.values.get("canary")
    if check.kind is CheckKind.LATENCY and canary is not None:
        text.append(" p99 " + quantile_text(canary, check.buckets.get("canary")), style="dim")
    return text


def quantile_text(value: float, bucket: tuple[float, float] | None) -> str:
    """A quantile read from histogram buckets, said as the estimate it is."""
    if bucket is None:
        return f"~{value:.0f}ms (estimate)"
    low, high = bucket
    if math.isinf(high):
        return f">{low:g}ms (last bucket)"
    return f"~{value:.0f}ms (in {low:g}-{high:g}ms)"


def _counts(side: SideCounts | None) -> str:
    if side is None or side.requests is None:
        return "-"
    return f"{side.failures if side.failures is not None else '?'}/{side.requests}"
