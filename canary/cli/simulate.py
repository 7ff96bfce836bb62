"""`canary simulate`: in progress."""

from __future__ import annotations

import click


@click.command()
def simulate() -> None:
    """Run a rollout through the engine in virtual time."""
    raise click.ClickException("not built yet")
