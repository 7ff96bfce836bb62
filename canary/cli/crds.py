"""`canary crds`: to be generated from the models (in progress)."""

from __future__ import annotations

import click


@click.command()
def crds() -> None:
    """Print the CustomResourceDefinitions generated from the models."""
    raise click.ClickException("not built yet")
