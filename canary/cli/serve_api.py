"""`canary api`: serve the API over local mode's state files (uvicorn, in the foreground)."""

from __future__ import annotations

import logging
from pathlib import Path

import click
from rich.text import Text

from canary.cli.output import console
from canary.cli.timeline import fail
from canary.model.duration import DurationError, parse_duration


@click.command("api")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".canary"),
    show_default=True,
    help="Folder of the state files `canary run` writes (NAME.state.json).",
)
@click.option(
    "--tokens",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="Tokens file (lines 'NAME SCOPE TOKEN') or directory (one file per token).",
)
@click.option(
    "--listen",
    default="127.0.0.1:8088",
    show_default=True,
    help="HOST:PORT, or :PORT for every interface.",
)
@click.option(
    "--audit-log",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSON lines of every write (default: STATE_DIR/audit.jsonl).",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PEM certificate chain: serve HTTPS (with --tls-key). Without it, serve on loopback "
    "or behind a TLS proxy (docs/security.md).",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PEM private key of --tls-cert.",
)
@click.option(
    "--poll-interval",
    default="1s",
    show_default=True,
    help="How often a `wait` re-reads the state.",
)
def api(
    state_dir: Path,
    tokens: Path,
    listen: str,
    audit_log: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    poll_interval: str,
) -> None:
    """Serve the canary API for local mode: `canary get/list/approve/promote/abort/retry/wait`
    and CI pipelines talk to it."""
    from canary.gates.api.address import parse_listen
    from canary.gates.api.auth import TokenError
    from canary.gates.api.serve import Tls, local_app, serve

    tls = None
    try:
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        if tls_cert is not None and tls_key is not None:
            tls = Tls(tls_cert, tls_key)
            tls.check()
        interval = parse_duration(poll_interval)
        parse_listen(listen)
        app = local_app(state_dir, tokens, audit_log=audit_log, poll_interval=interval)
    except (DurationError, ValueError, TokenError) as exc:
        fail([str(exc)])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    console().print(
        Text(
            f"canary API for {state_dir.resolve()} on {'https' if tls else 'http'}://{listen} "
            "(OpenAPI: /openapi.json)"
        )
    )
    serve(app, listen, tls)
