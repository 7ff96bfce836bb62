"""Entry point: one group, a module per command."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from canary import __version__
from canary.cli.backtest import backtest_command
from canary.cli.controller import controller
from canary.cli.crds import crds
from canary.cli.demo import demo
from canary.cli.ops import abort, approve, get, list_, promote, retry, wait
from canary.cli.render import render
from canary.cli.run import haproxy_config, run
from canary.cli.serve_api import api
from canary.cli.simulate import simulate
from canary.cli.validate import validate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="canary")
def cli() -> None:
    """Progressive delivery: roll out a new version on a growing share of traffic, judge it
    against the primary, promote or roll back."""


cli.add_command(validate)
cli.add_command(crds)
cli.add_command(simulate)
cli.add_command(backtest_command, name="backtest")
cli.add_command(demo)
cli.add_command(run)
cli.add_command(haproxy_config)
cli.add_command(get)
cli.add_command(list_)
cli.add_command(approve)
cli.add_command(promote)
cli.add_command(abort)
cli.add_command(retry)
cli.add_command(wait)
cli.add_command(api)
cli.add_command(render)
cli.add_command(controller)


def main() -> None:
    # As a kubectl plugin (kubectl-canary on the PATH), help and errors say `kubectl canary`.
    plugin = Path(sys.argv[0]).name.startswith("kubectl-canary")
    cli(prog_name="kubectl canary" if plugin else "canary")


if __name__ == "__main__":
    main()
