"""`canary demo`: the local demo, from two versions of a service to a verdict, on one machine."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from tempfile import mkdtemp

import click
from rich.text import Text

from canary.analysis.prometheus import PrometheusProvider, PrometheusSettings
from canary.cli.api_options import Address, api_options
from canary.cli.output import console, plot_option
from canary.cli.run import serve_state_api
from canary.cli.timeline import fail, print_timeline
from canary.gates.api.serve import ApiServer
from canary.local.demo import DEMO_NAME, DEMO_NAMESPACE, DemoScenario, DemoTiming, run_demo
from canary.local.processes import ProcessError
from canary.model.gates import ApprovalPoint
from canary.model.status import Verdict
from canary.sim.result import TimelineEntry

_EXPECTED = {
    DemoScenario.HEALTHY: "promoted",
    DemoScenario.ERRORS: "rolled back (v2 answers 8% errors)",
    DemoScenario.LATENCY: "rolled back (v2 is ten times slower)",
    DemoScenario.AB: "promoted after an A/B test on the header x-canary: insider",
}

LINGER = 4.0
"""Seconds the demo's API outlives the rollout, for `canary get --watch` to see its end."""


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
@plot_option("Where to draw the rollout (default: out/demo-SCENARIO.png).")
@click.option("--interval", default="10s", show_default=True, help="Analysis interval.")
@click.option("--rate", type=float, default=40.0, show_default=True, help="Requests a second.")
@api_options(
    own_tokens="a new operate token in WORKDIR/tokens.txt (the commands to follow the "
    "demo with `canary get --watch` and approve it are printed)."
)
@click.option(
    "--approve",
    "approvals",
    multiple=True,
    type=click.Choice([p.value for p in ApprovalPoint]),
    help="Make the rollout wait at this point until `canary approve demo -n local` "
    "(repeatable; needs --api-listen).",
)
def demo(
    scenario: str,
    workdir: Path | None,
    plot_path: Path | None,
    interval: str,
    rate: float,
    api_listen: Address | None,
    api_tokens: Path | None,
    approvals: tuple[str, ...],
) -> None:
    """Run a real rollout locally: v1 and v2 of a small HTTP service, HAProxy splitting a
    steady load between them, Prometheus scraping both, the engine judging v2 with the
    shipped `haproxy` policy. Every process it starts is stopped at the end, also on Ctrl-C."""
    if api_listen is None and approvals:
        fail(["--approve needs --api-listen: approvals reach the demo by its API"])
    chosen = DemoScenario(scenario)
    folder = workdir or Path(mkdtemp(prefix=f"canary-demo-{chosen.value}-"))
    plot = plot_path or Path("out") / f"demo-{chosen.value}.png"
    out = console()
    out.print(
        Text(f"canary demo --scenario {chosen.value}: expect v2 to be {_EXPECTED[chosen]}", "bold")
    )
    out.print(Text(f"work folder (configs, state, logs): {folder}", style="dim"))
    timing = DemoTiming(interval=interval, rate=rate)
    points = [ApprovalPoint(a) for a in approvals]
    api = None
    finished = False
    if api_listen is not None:
        api = serve_state_api(folder, api_listen, api_tokens or _new_token(folder))
        _show_how_to_follow(api.url, api_tokens, folder, points)
    try:
        report, stack = run_demo(
            chosen,
            folder,
            lambda url: PrometheusProvider(PrometheusSettings(url=url)),
            timing=timing,
            on_tick=_show_progress,
            log=lambda line: out.print(Text(f"  {line}", style="dim")),
            approvals=points,
        )
        finished = True
    except ProcessError as exc:
        fail([str(exc), f"logs are in {folder / 'logs'}"])
    except KeyboardInterrupt:
        fail(["interrupted: every process the demo started is stopped"])
    finally:
        if api is not None and finished:
            _linger(api)
        elif api is not None:
            api.stop()
    print_timeline(report, f"canary demo --scenario {chosen.value}", virtual=False)
    if stack.generator is not None and chosen is DemoScenario.AB:
        tagged = dict(stack.generator.tagged)
        out.print(Text(f"requests with x-canary: insider were answered by: {tagged}"))
    from canary.sim.plot import plot_result

    plot.parent.mkdir(parents=True, exist_ok=True)
    out.print(Text(f"plot written to {plot_result(report, plot)}"))


def _linger(api: ApiServer) -> None:
    """Stop the API once its watchers had a chance to read the end: a `canary get --watch`
    asks again within its --interval (2 s by default), and the API reads the state file every
    second, so LINGER seconds let the default watch print the final phase."""
    console().print(Text(f"the API stops in {LINGER:g}s", style="dim"))
    try:
        time.sleep(LINGER)
    finally:
        api.stop()


def _new_token(folder: Path) -> Path:
    """A tokens file with one new operate token, readable by its owner only."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tokens.txt"
    path.touch(mode=0o600)
    path.write_text(f"demo operate {secrets.token_hex(16)}\n")
    return path


def _show_how_to_follow(
    url: str, given: Path | None, folder: Path, points: list[ApprovalPoint]
) -> None:
    """The commands that follow and approve the demo from another terminal."""
    token = "<a token of --api-tokens>"
    if given is None:
        token = (folder / "tokens.txt").read_text().split()[2]
    lines = [
        "follow it from another terminal:",
        f"  export CANARY_API={url} CANARY_TOKEN={token}",
        f"  canary get {DEMO_NAME} -n {DEMO_NAMESPACE} --watch",
    ]
    lines += [f"  canary approve {DEMO_NAME} -n {DEMO_NAMESPACE} --point {p.value}" for p in points]
    for line in lines:
        console().print(Text(line), soft_wrap=True)


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
