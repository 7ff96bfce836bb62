"""``--api-listen`` and ``--api-tokens``: canary's API served by `canary controller`, `canary
run` and `canary demo`, with one help text and one validation.

The address is read when the command line is (a bad one is a usage error naming the option)
and handed to the command as ``(host, port)``; ``:PORT`` means every interface (the chart's
``--api-listen=:8088``). The tokens go with the address: tokens without an address are refused,
and so is an address without tokens unless the command makes its own (the demo does).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from canary.cli.params import parsed_by
from canary.gates.api.address import parse_listen

F = TypeVar("F", bound=Callable[..., Any])

Address = tuple[str, int]

LISTEN_HELP = (
    "Serve canary's API (canary get/approve/.../wait, CI pipelines) on HOST:PORT (:PORT: every "
    "interface; port 0: any free port, printed)."
)
TOKENS_HELP = (
    "With --api-listen: the API's tokens, a file of lines 'NAME SCOPE TOKEN' or a directory of "
    "one file per token."
)


def api_options(*, own_tokens: str | None = None) -> Callable[[F], F]:
    """Adds ``--api-listen`` (passed as ``api_listen``, an `Address` or None) and
    ``--api-tokens`` (``api_tokens``, a Path or None), checked together before the command
    runs. ``own_tokens``: what the command does without --api-tokens (said in its help); None:
    --api-listen needs --api-tokens."""

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def checked(*args: Any, **kwargs: Any) -> Any:
            listen, tokens = kwargs.get("api_listen"), kwargs.get("api_tokens")
            if tokens is not None and listen is None:
                raise click.UsageError("--api-tokens needs --api-listen")
            if listen is not None and tokens is None and own_tokens is None:
                raise click.UsageError("--api-listen needs --api-tokens (who may call the API)")
            return command(*args, **kwargs)

        tokens_help = TOKENS_HELP + (f" Without it: {own_tokens}" if own_tokens else "")
        with_tokens = click.option(
            "--api-tokens",
            type=click.Path(exists=True, path_type=Path),
            default=None,
            metavar="PATH",
            help=tokens_help,
        )(checked)
        return cast(
            F,
            click.option(
                "--api-listen",
                default=None,
                metavar="HOST:PORT",
                callback=parsed_by(parse_listen),
                help=LISTEN_HELP,
            )(with_tokens),
        )

    return decorate
