"""Click parameters whose value is parsed when the command line is read: a bad one is a usage
error naming the option, before the command runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

T = TypeVar("T")

Callback = Callable[[click.Context, click.Parameter, str | None], T | None]


def parsed_by(parse: Callable[[str], T]) -> Callback[T]:
    """A click ``callback``: the value given through ``parse`` (None stays None); the
    ValueError it raises becomes click's BadParameter, worded by ``parse``."""

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> T | None:
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None

    return callback
