"""The operator's commands: `get` (and `--watch`), `list`, `approve`, `promote`, `abort`,
`retry` and `wait`, through the canary API (`--api URL` or CANARY_API) or straight to the
cluster with a kubeconfig (`canary.cli.client` chooses).

`wait` is for CI pipelines: exit 0 when the rollout succeeded, 1 when it failed or was rolled
back, 2 when the timeout passed first, 3 when the API could not be asked (no URL or token,
unreachable, refused); the reason is printed in every case.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.live import Live
from rich.text import Text

from canary.cli.client import ApiClientError, Backend, backend_options
from canary.cli.interrupt import exit_at_once_on_ctrl_c
from canary.cli.output import OUTPUT_OPTION, console, print_json
from canary.cli.show import OUTCOME_STYLE, rollout_table, rollout_tree, watch_frame
from canary.engine.observations import CommandKind
from canary.gates.api.models import RolloutView, WaitOutcome, WaitResult
from canary.model.duration import DurationError, format_duration, parse_duration
from canary.model.gates import ApprovalPoint

WAIT_EXIT = {WaitOutcome.SUCCEEDED: 0, WaitOutcome.FAILED: 1, WaitOutcome.TIMEOUT: 2}
CANNOT_ASK = 3
PIPED_WIDTH = 160
LONG_POLL = 60.0
"""Seconds of one long-poll request: a long wait is a series of them (proxies cut idle
connections), each sure to end well before any usual idle timeout."""

_NAMESPACE = click.option(
    "--namespace",
    "-n",
    default=None,
    envvar="CANARY_NAMESPACE",
    help="The rollout's namespace (env CANARY_NAMESPACE; default: the kubeconfig context's "
    "namespace with a kubeconfig, else default).",
)


def _wide() -> Console:
    """The console for tables: piped output is not cut at 80 columns."""
    out = console()
    if not out.is_terminal:
        out.width = PIPED_WIDTH
    return out


def _fail(message: str, code: int = 1) -> NoReturn:
    console(stderr=True).print(Text(message, style="red"))
    raise SystemExit(code)


def _seconds(value: str, option: str) -> float:
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


class _WaitUsageError(click.UsageError):
    exit_code = CANNOT_ASK


class _WaitCommand(click.Command):
    """Usage mistakes exit 3 (cannot ask), not click's 2, which means a timeout here."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _WaitUsageError(exc.message, exc.ctx) from None


@click.command("get")
@click.argument("name")
@_NAMESPACE
@click.option("--watch", "-w", is_flag=True, help="Refresh until the rollout ends (or Ctrl-C).")
@click.option("--interval", default="2s", show_default=True, help="Refresh period of --watch.")
@OUTPUT_OPTION
@backend_options()
def get(
    client: Backend, name: str, namespace: str | None, watch: bool, interval: str, output: str
) -> None:
    """Show one rollout: phase, weight, step, what it waits for, each check's latest numbers."""
    namespace = namespace or client.default_namespace
    if watch:
        _watch(client, namespace, name, _seconds(interval, "--interval"))
        return
    try:
        view = client.get(namespace, name)
    except ApiClientError as exc:
        _fail(str(exc))
    if output == "json":
        print_json(view.model_dump(mode="json", by_alias=True))
        return
    _wide().print(rollout_tree(view))


def _watch(client: Backend, namespace: str, name: str, interval: float) -> None:
    """Redraw the rollout in place on a terminal; elsewhere (a CI log, a pipe) print a frame
    each time it changed. Returns when the rollout ends."""
    out = _wide()
    try:
        with exit_at_once_on_ctrl_c(out):
            first = client.get(namespace, name)
            if out.is_terminal:
                result = _watch_live(client, out, first, interval)
            else:
                result = _watch_frames(client, out, first, interval)
    except ApiClientError as exc:
        _fail(str(exc))
    out.print(Text(result.reason, style=OUTCOME_STYLE[result.outcome]))


def _stamp(result: WaitResult) -> str:
    stamp = datetime.now().strftime("%H:%M:%S")
    return f"{stamp}  {result.reason}" if result.done else f"{stamp}  Ctrl-C to stop"


def _watch_live(client: Backend, out: Console, first: RolloutView, interval: float) -> WaitResult:
    with Live(watch_frame(first, "watching…"), console=out, auto_refresh=False) as live:
        while True:
            result = client.wait(first.namespace, first.name, timeout=interval, poll=interval)
            live.update(watch_frame(result.rollout, _stamp(result)), refresh=True)
            if result.done:
                return result


def _watch_frames(client: Backend, out: Console, first: RolloutView, interval: float) -> WaitResult:
    out.print(watch_frame(first, "watching…"))
    shown = first.model_dump_json()
    while True:
        result = client.wait(first.namespace, first.name, timeout=interval, poll=interval)
        current = result.rollout.model_dump_json()
        if current != shown or result.done:
            out.print()
            out.print(watch_frame(result.rollout, _stamp(result)))
            shown = current
        if result.done:
            return result


@click.command("list")
@click.option("--namespace", "-n", default=None, help="Only this namespace (default: all).")
@OUTPUT_OPTION
@backend_options()
def list_(client: Backend, namespace: str | None, output: str) -> None:
    """List the rollouts with their phase, weight and step."""
    try:
        rollouts = client.list(namespace)
    except ApiClientError as exc:
        _fail(str(exc))
    if output == "json":
        print_json(rollouts.model_dump(mode="json", by_alias=True))
        return
    _wide().print(rollout_table(rollouts.items))


def _send(
    client: Backend,
    namespace: str | None,
    name: str,
    kind: CommandKind,
    body: dict[str, Any] | None,
) -> None:
    try:
        accepted = client.command(namespace or client.default_namespace, name, kind.value, body)
    except ApiClientError as exc:
        _fail(str(exc))
    console().print(Text(f"{accepted.message} (asked by {accepted.command.by})"))


@click.command()
@click.argument("name")
@_NAMESPACE
@click.option(
    "--point",
    type=click.Choice([p.value for p in ApprovalPoint]),
    help="The point to approve; the one the rollout waits on when omitted.",
)
@backend_options()
def approve(client: Backend, name: str, namespace: str | None, point: str | None) -> None:
    """Open a manual gate (spec.gates.approvals): now, or ahead of time with --point."""
    _send(client, namespace, name, CommandKind.APPROVE, {"point": point} if point else None)


@click.command()
@click.argument("name")
@_NAMESPACE
@backend_options()
def promote(client: Backend, name: str, namespace: str | None) -> None:
    """Skip the remaining steps: promote at the next passing tick (never on a failing one)."""
    _send(client, namespace, name, CommandKind.PROMOTE, None)


@click.command()
@click.argument("name")
@_NAMESPACE
@backend_options()
def abort(client: Backend, name: str, namespace: str | None) -> None:
    """Roll the canary back now: all traffic to the primary, the canary scaled down."""
    _send(client, namespace, name, CommandKind.ABORT, None)


@click.command()
@click.argument("name")
@_NAMESPACE
@backend_options()
def retry(client: Backend, name: str, namespace: str | None) -> None:
    """Run a Failed revision again, from its first step."""
    _send(client, namespace, name, CommandKind.RETRY, None)


@click.command(cls=_WaitCommand)
@click.argument("name")
@_NAMESPACE
@click.option("--timeout", default="30m", show_default=True, help="How long to wait at most.")
@click.option("--revision", help="Wait for this revision's rollout (default: the target's).")
@click.option("--quiet", "-q", is_flag=True, help="Print only the final line.")
@click.option(
    "--poll-interval",
    default="2s",
    show_default=True,
    help="With a kubeconfig: how often the Rollout is read (the API long-polls instead).",
)
@backend_options(exit_code=CANNOT_ASK)
def wait(
    client: Backend,
    name: str,
    namespace: str | None,
    timeout: str,
    revision: str | None,
    quiet: bool,
    poll_interval: str,
) -> None:
    """Wait for the rollout to end, for CI: exit 0 Succeeded, 1 Failed or rolled back,
    2 timeout, 3 the API could not be asked."""
    namespace = namespace or client.default_namespace
    try:
        total = parse_duration(timeout)
        poll = parse_duration(poll_interval)
    except DurationError as exc:
        _fail(f"--timeout/--poll-interval: {exc}", CANNOT_ASK)
    with exit_at_once_on_ctrl_c():
        result = _wait(client, namespace, name, total, revision, quiet, poll)
    where = f"{namespace}/{name}"
    if result.outcome is WaitOutcome.TIMEOUT:
        line = f"{where}: timed out after {format_duration(total)}: {result.reason}"
    else:
        line = f"{where}: {result.outcome.value}: {result.reason}"
    console().print(Text(line, style=OUTCOME_STYLE[result.outcome]))
    raise SystemExit(WAIT_EXIT[result.outcome])


def _wait(
    client: Backend,
    namespace: str,
    name: str,
    total: float,
    revision: str | None,
    quiet: bool,
    poll: float,
) -> WaitResult:
    """Long-poll until the rollout ends or ``total`` seconds pass; a lost connection is asked
    again (within the time left), a refusal (401, 403, 404) ends the wait with exit 3."""
    deadline = time.monotonic() + total
    last_reason = ""
    while True:
        left = max(0.0, deadline - time.monotonic())
        try:
            result = client.wait(namespace, name, min(left, LONG_POLL), revision, poll)
        except ApiClientError as exc:
            if (exc.status is not None and exc.status < 500) or left <= 0:
                _fail(f"{namespace}/{name}: cannot wait: {exc}", CANNOT_ASK)
            if not quiet:
                console(stderr=True).print(Text(f"{exc}; asking again", style="yellow"))
            time.sleep(min(2.0, left))
            continue
        if result.done or deadline - time.monotonic() <= 0:
            return result
        if not quiet and result.reason != last_reason:
            console().print(Text(f"{namespace}/{name}: {result.reason}", style="dim"))
        last_reason = result.reason
