"""``--rollout-link``: the page a person opens from a message that waits for them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from canary.notify.config import EXAMPLE_LINK, RolloutLinkError, check_rollout_link

F = TypeVar("F", bound=Callable[..., Any])

_API_URL_GONE = (
    "--api-url is no longer linked from messages: canary's API answers JSON to a token, and a "
    "browser gets 401. Give --rollout-link a page a person can open (a Grafana dashboard, a CD "
    "tool's page) with {namespace} and {name} in it; messages without one show no button."
)


def _check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_rollout_link(value)
    except RolloutLinkError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def _api_url_gone(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        click.echo(f"warning: {_API_URL_GONE}", err=True)


def rollout_link_option(command: F) -> F:
    """Adds ``--rollout-link`` (passed as ``rollout_link``) and the retired ``--api-url``,
    accepted with a warning so that an older chart's flags still start the controller."""
    command = click.option(
        "--api-url", hidden=True, expose_value=False, callback=_api_url_gone, default=None
    )(command)
    return click.option(
        "--rollout-link",
        default=None,
        callback=_check,
        metavar="URL",
        help="A page a person can open for a rollout, {namespace} and {name} filled in (e.g. "
        f"{EXAMPLE_LINK}): messages that wait for a person show it as a button.",
    )(command)
