"""`canary run` and `canary haproxy-config`: local mode with your own two versions.

Render HAProxy's config from the Rollout, start HAProxy on it, then `canary run` rolls the
canary out: it drives HAProxy's runtime API, reads Prometheus, keeps its state in a file
(run it again after an interruption and it resumes) and on Ctrl-C leaves all traffic on the
primary.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.text import Text

from canary.analysis.checks import CheckResolutionError
from canary.analysis.prometheus import PrometheusProvider, PrometheusSettings
from canary.cli.api_options import Address, api_options
from canary.cli.link import rollout_link_option
from canary.cli.output import console
from canary.cli.timeline import fail
from canary.engine import StepResult
from canary.gates.api.auth import TokenError
from canary.gates.api.serve import ApiServer, local_app
from canary.gates.destinations import LOCAL_MODE
from canary.gates.webhooks import WebhookCaller
from canary.local.runner import LocalRunner
from canary.local.state import LocalRunError, load_state
from canary.local.workload import FixedBackends
from canary.model.loader import LoadError, load_file, load_rollout
from canary.model.notification import NotificationChannel
from canary.model.provider import ProviderName
from canary.model.rollout import Rollout
from canary.notify import DirectorySecretSource, Notifier, NotifyConfig
from canary.traffic.haproxy import config
from canary.traffic.haproxy.router import HaproxyRouter
from canary.traffic.router import RouterError

_MAP_DIR = click.option(
    "--map-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".canary/maps"),
    show_default=True,
    help="Folder of the A/B map files HAProxy reads (the same for both commands).",
)


def _local_rollout(file: Path) -> Rollout:
    try:
        rollout = load_rollout(file)
    except LoadError as exc:
        fail([str(p) for p in exc.problems])
    if rollout.spec.provider.name is not ProviderName.HAPROXY:
        fail([f"{file}: spec.provider.name: local mode needs provider 'haproxy'"])
    return rollout


@click.command("haproxy-config")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="Frontend address.")
@click.option("--metrics", default="127.0.0.1:8405", show_default=True, help="Exporter address.")
@_MAP_DIR
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True)
def haproxy_config(file: Path, listen: str, metrics: str, map_dir: Path, output: Path) -> None:
    """Write the haproxy.cfg (and empty A/B maps) for the local Rollout in FILE."""
    rollout = _local_rollout(file)
    try:
        config.write(rollout, config.Layout(listen, metrics, map_dir.resolve()), output)
    except RouterError as exc:
        fail([f"{file}: {exc}"])
    console().print(Text(f"wrote {output}; start HAProxy with: haproxy -f {output}"))


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--revision", required=True, help="The canary's revision (any label, e.g. v2).")
@click.option("--stable", default="stable", show_default=True, help="The primary's revision.")
@click.option("--prometheus", default="http://127.0.0.1:9090", show_default=True)
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="State file (default: .canary/NAME.state.json).",
)
@_MAP_DIR
@click.option(
    "--secrets-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of secrets (webhook signing keys, Slack tokens), one file per SECRET/KEY.",
)
@click.option(
    "--channels",
    "channels_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML with the NotificationChannels the Rollout's spec.notifications names.",
)
@api_options()
@rollout_link_option
def run(
    file: Path,
    revision: str,
    stable: str,
    prometheus: str,
    state: Path | None,
    map_dir: Path,
    secrets_dir: Path | None,
    channels_file: Path | None,
    api_listen: Address | None,
    api_tokens: Path | None,
    rollout_link: str | None,
) -> None:
    """Roll the canary of the local Rollout in FILE out through a running HAProxy."""
    rollout = _local_rollout(file)
    state_path = state or Path(".canary") / f"{rollout.metadata.name}.state.json"
    out = console()
    api = None
    if api_listen is not None and api_tokens is not None:
        api = serve_state_api(state_path.parent, api_listen, api_tokens)
    try:
        saved = load_state(state_path, rollout, stable)
        router = HaproxyRouter(rollout, map_dir.resolve())
        settings = rollout.spec.provider.haproxy
        assert settings is not None
        workload = FixedBackends(settings, router.runtime, revision, saved.workload)
        provider = PrometheusProvider(PrometheusSettings(url=prometheus))
        notifier = _notifier(
            channels_file,
            secrets_dir,
            NotifyConfig(
                state_dir=state_path.parent / "notify",
                rollout_link=rollout_link,
                webhook_allow=("127.0.0.0/8", "::1/128"),  # local mode: see LOCAL_MODE
            ),
        )
        with WebhookCaller.create(secrets_dir, destinations=LOCAL_MODE) as webhooks:
            runner = LocalRunner(
                rollout,
                state_path,
                saved,
                router,
                workload,
                provider,
                webhooks=webhooks,
                notifier=notifier,
                log=lambda line: out.print(Text(f"  {line}", style="dim")),
            )
            try:
                final = runner.run(on_tick=_show)
            finally:
                if notifier is not None:
                    notifier.flush(timeout=10.0)
                    notifier.close()
    except (LocalRunError, RouterError, CheckResolutionError, ValueError) as exc:
        fail([f"{file}: {exc}"])
    except KeyboardInterrupt:
        fail([f"interrupted; state kept in {state_path}: run the same command to resume"])
    finally:
        if api is not None:
            api.stop()
    out.print(Text(f"{final.status.phase.value}: {final.status.message}", style="bold"))
    raise SystemExit(0 if final.status.stable_revision == revision else 1)


def serve_state_api(state_dir: Path, listen: Address, tokens: Path) -> ApiServer:
    """The API over the state folder this run writes, in a thread (``canary api`` serves the
    same from another process)."""
    host, port = listen
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        server = ApiServer(local_app(state_dir, tokens), host, port).start()
    except (ValueError, TokenError, RuntimeError, OSError) as exc:
        fail([f"--api-listen {host}:{port}: {exc}"])
    console().print(Text(f"canary API on {server.url} (OpenAPI: {server.url}/openapi.json)"))
    return server


def _notifier(
    channels_file: Path | None, secrets_dir: Path | None, settings: NotifyConfig
) -> Notifier | None:
    if channels_file is None:
        return None
    try:
        documents = load_file(channels_file)
    except LoadError as exc:
        fail([str(p) for p in exc.problems])
    channels = [d.resource for d in documents if isinstance(d.resource, NotificationChannel)]
    if not channels:
        fail([f"{channels_file}: no NotificationChannel in the file"])
    secrets = DirectorySecretSource(secrets_dir or Path(".canary/secrets"))
    return Notifier(channels, secrets, settings)


def _show(result: StepResult, elapsed: float) -> None:
    status = result.status
    where = f"+{elapsed:5.0f}s {status.phase.value:<12} {status.canary_weight:>3}%"
    console().print(Text(f"{where}  {status.message}"))
