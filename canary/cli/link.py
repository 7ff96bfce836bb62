"""``--rollout-link``: the page a person opens from a message that waits for them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from canary.cli.params import parsed_by
from canary.notify.config import EXAMPLE_LINK, check_rollout_link

F = TypeVar("F", bound=Callable[..., Any])

_API_URL_GONE = (
    "--api-url is no longer linked from messages: canary's API answers JSON to a token, and a "
    "browser gets 401. Give --rollout-link a page a person can open (a Grafana dashboard, a CD "
    "tool's page) with {namespace} and {name} in it; messages without one show no button."
)


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
        callback=parsed_by(check_rollout_link),  # (a RolloutLinkError is a ValueError)
        metavar="URL",
        help="A page a person can open for a rollout, {namespace} and {name} filled in (e.g. "
        f"{EXAMPLE_LINK}): messages that wait for a person show it as a button.",
    )(command)
