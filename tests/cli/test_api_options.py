"""``--api-listen``/``--api-tokens`` are one definition in `canary controller`, `canary run` and
`canary demo`: the same help, the address read when the command line is, the tokens checked
with it, before anything starts."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from canary.cli.api_options import LISTEN_HELP, TOKENS_HELP
from canary.cli.main import cli
from canary.gates.api.address import parse_listen as parse_address

COMMANDS = {
    "controller": [],
    "run": ["rollout.yaml", "--revision", "v2"],
    "demo": [],
}


def help_of(command: str, option: str) -> str:
    found = cli.commands[command]
    params = [p for p in found.params if isinstance(p, click.Option) and option in p.opts]
    assert len(params) == 1, f"{command} has one {option}"
    return str(params[0].help)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_same_help_in_every_command(command: str) -> None:
    assert help_of(command, "--api-listen") == LISTEN_HELP
    assert help_of(command, "--api-tokens").startswith(TOKENS_HELP)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_bad_address_is_a_usage_error_naming_the_option(command: str) -> None:
    result = CliRunner().invoke(cli, [command, *COMMANDS[command], "--api-listen", "8088"])
    assert result.exit_code == 2
    assert "Invalid value for '--api-listen': address '8088': use HOST:PORT" in result.output


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_tokens_need_an_address(command: str, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("ci operate 0123456789abcdef0123456789abcdef\n")
    args = [command, *COMMANDS[command], "--api-tokens", str(tokens)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "--api-tokens needs --api-listen" in result.output


@pytest.mark.parametrize("command", ["controller", "run"])
def test_an_address_needs_tokens_unless_the_command_makes_its_own(command: str) -> None:
    args = [command, *COMMANDS[command], "--api-listen", "127.0.0.1:0"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "--api-listen needs --api-tokens" in result.output
    assert "Without it: a new operate token" in help_of("demo", "--api-tokens")


def test_addresses() -> None:
    assert parse_address("127.0.0.1:8088") == ("127.0.0.1", 8088)
    assert parse_address(":8088") == ("0.0.0.0", 8088), "every interface (the chart's form)"
    assert parse_address("[::1]:0") == ("::1", 0)
    for bad in ("8088", "host:", "host:70000", "host:http"):
        with pytest.raises(ValueError, match="use HOST:PORT or :PORT"):
            parse_address(bad)
