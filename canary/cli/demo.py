"""`canary demo`: the local demo, from two versions of a service to a verdict, on one machine."""

from __future__ import annotations

from pathlib import Path
from tempfile import mkdtemp

import click
from rich.text import Text

from canary.analysis.prometheus import PrometheusProvider, PrometheusSettings
from canary.cli.output import console
from canary.cli.timeline import fail, print_timeline
from canary.local.demo import DemoScenario, DemoTiming, run_demo
from canary.local.processes import ProcessError
from canary.model.status import Verdict
from canary.sim.result import TimelineEntry

_EXPECTED = {
    DemoScenario.HEALTHY: "promoted",
    DemoScenario.ERRORS: "rolled back (v2 answers 8% errors)",
    DemoScenario.LATENCY: "rolled back (v2 is ten times slower)",
    DemoScenario.AB: "promoted after an A/B test on the header x-canary: insider",
}


@click.command()
@click.option(
    "--scenario",
    type=click.Choice([s.value for s in DemoScenario]),
    default=DemoScenario.ERRORS.value,
    show_default=True,
    help="How v2 behaves: healthy, errors, latency, or healthy behind an A/B test.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where configs, state and the processes' logs go (default: a new temporary folder).",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to draw the rollout (default: out/demo-SCENARIO.png).",
)
@click.option("--interval", default="10s", show_default=True, help="Analysis interval.")
@click.option("--rate", type=float, default=40.0, show_default=True, help="Requests a second.")
def demo(
    scenario: str, workdir: Path | None, plot_path: Path | None, interval: str, rate: float
) -> None:
    """Run a real rollout locally: v1 and v2 of a small HTTP service, HAProxy splitting a
    steady load between them, Prometheus scraping both, the engine judging v2 with the
    shipped `haproxy` policy. Every process it starts is stopped at the end, also on Ctrl-C."""
    chosen = DemoScenario(scenario)
    folder = workdir or Path(mkdtemp(prefix=f"canary-demo-{chosen.value}-"))
    plot = plot_path or Path("out") / f"demo-{chosen.value}.png"
    out = console()
    out.print(
        Text(f"canary demo --scenario {chosen.value}: expect v2 to be {_EXPECTED[chosen]}", "bold")
    )
    out.print(Text(f"work folder (configs, state, logs): {folder}", style="dim"))
    timing = DemoTiming(interval=interval, rate=rate)
    try:
        report, stack = run_demo(
            chosen,
            folder,
            lambda url: PrometheusProvider(PrometheusSettings(url=url)),
            timing=timing,
            on_tick=_show_progress,
            log=lambda line: out.print(Text(f"  {line}", style="dim")),
        )
    except ProcessError as exc:
        fail([str(exc), f"logs are in {folder / 'logs'}"])
    except KeyboardInterrupt:
        fail(["interrupted: every process the demo started is stopped"])
    print_timeline(report, f"canary demo --scenario {chosen.value}", virtual=False)
    if stack.generator is not None and chosen is DemoScenario.AB:
        tagged = dict(stack.generator.tagged)
        out.print(Text(f"requests with x-canary: insider were answered by: {tagged}"))
    from canary.sim.plot import plot_result

    plot.parent.mkdir(parents=True, exist_ok=True)
    out.print(Text(f"plot written to {plot_result(report, plot)}"))


def _show_progress(entry: TimelineEntry) -> None:
    line = Text(f"+{entry.time:5.0f}s {entry.phase.value:<12} {entry.weight:>3}%  ")
    for check in entry.checks:
        style = {Verdict.PASS: "green", Verdict.FAIL: "red"}.get(check.verdict, "yellow")
        line.append(f"{check.name} {check.verdict.value}", style=style)
        if check.canary_value is not None and check.primary_value is not None:
            line.append(f" ({check.canary_value:g} vs {check.primary_value:g}, ")
            line.append(f"n={check.canary_requests})  ")
        else:
            line.append("  ")
    if not entry.checks:
        line.append(entry.message, style="dim")
    console().print(line)
