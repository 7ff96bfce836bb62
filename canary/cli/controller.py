"""`canary controller`: run the Kubernetes controller in the foreground until SIGTERM/SIGINT.

In a Pod it uses the in-cluster configuration (the ServiceAccount's token); elsewhere the
kubeconfig (``--kubeconfig``, $KUBECONFIG or ~/.kube/config). docs/controller.md has the
flags, what it watches and writes, and the RBAC it needs.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType

import click

from canary.cli.api_options import Address, api_options
from canary.cli.collector import freeze_startup_heap, limit_malloc_arenas, tune_collector
from canary.cli.link import rollout_link_option
from canary.cli.timeline import fail
from canary.gates.api.address import parse_listen
from canary.model.duration import DurationError, parse_duration

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_lease_namespace() -> str:
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return IN_CLUSTER_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


REQUEST_LOGGERS = ("httpx", "httpcore")
"""Libraries that log every request at INFO (httpx: a line per Prometheus query, ~100 a second
at 1,000 Rollouts): shown only with ``--log-level debug``."""


def quiet_request_logs(log_level: str) -> None:
    """Keep the HTTP libraries' per-request lines out of the controller's log unless debugging."""
    if log_level.lower() == "debug":
        return
    for name in REQUEST_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@click.command("controller")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Kubeconfig file (default: in-cluster config in a Pod, else $KUBECONFIG or "
    "~/.kube/config).",
)
@click.option("--context", default=None, help="Kubeconfig context (default: the current one).")
@click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    help="Run the Rollouts of this namespace (repeat for several; default: all namespaces).",
)
@click.option(
    "--prometheus",
    default="http://prometheus:9090",
    show_default=True,
    help="Prometheus that holds the mesh's metrics.",
)
@click.option(
    "--prometheus-bearer-token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Bearer token for Prometheus, read at every query.",
)
@click.option(
    "--prometheus-ca-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CA bundle (PEM) to verify an https Prometheus (default: the system's CAs).",
)
@click.option(
    "--metrics-addr",
    default=":8080",
    show_default=True,
    help="Where /metrics, /healthz and /readyz are served (HOST:PORT; 0 for no server).",
)
@click.option(
    "--leader-elect/--no-leader-elect",
    default=True,
    show_default=True,
    help="Elect a leader on a Lease (run more than one replica only with it).",
)
@click.option("--lease-name", default="canary-controller", show_default=True)
@click.option(
    "--shards",
    type=int,
    default=1,
    show_default=True,
    help="Split the Rollouts into this many shards, each held by a Lease of its own, shared "
    "by the replicas (all act); 1: one leader acts, the others stand by.",
)
@click.option(
    "--lease-namespace",
    default=None,
    help="Namespace of the Lease (default: $POD_NAMESPACE, the Pod's namespace, or default).",
)
@click.option("--lease-duration", default="15s", show_default=True)
@click.option("--renew-deadline", default="10s", show_default=True)
@click.option("--retry-period", default="2s", show_default=True)
@click.option(
    "--identity",
    default=None,
    help="This replica's name in the Lease (default: $POD_NAME, else host name and a suffix).",
)
@click.option(
    "--secrets-from-cluster/--no-secrets-from-cluster",
    default=True,
    show_default=True,
    help="Read webhook signing keys and notification secrets from the Rollout's namespace.",
)
@click.option(
    "--secrets-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="With --no-secrets-from-cluster: a folder of SECRET/KEY files (a mounted Secret).",
)
@click.option(
    "--restore-on-delete/--no-restore-on-delete",
    default=False,
    show_default=True,
    help="Put a finalizer on Rollouts: deleting one scales the target back up and leaves its "
    "Service selecting it (else everything canary made is deleted with the Rollout).",
)
@click.option(
    "--workers",
    default=64,  # canary.controller.settings.DEFAULT_WORKERS (not imported at startup)
    show_default=True,
    help="Ticks run at once (they mostly wait on the API server and Prometheus).",
)
@click.option(
    "--route-resync",
    default="5m",
    show_default=True,
    help="How often every route object of a Rollout is applied again whatever happened: the "
    "backstop for a hand edit the route watch missed (between, only an object whose content "
    "changed is sent).",
)
@click.option(
    "--route-watch",
    "route_watch",
    multiple=True,
    type=click.Choice(["istio", "gateway-api", "smi", "none"]),
    default=("istio", "gateway-api", "smi"),
    show_default=True,
    help="Watch these APIs' route objects, so that a hand edit of one is put back at once "
    "(repeatable; 'none': only at the resync). Drop an API the controller may not list.",
)
@click.option(
    "--notifications/--no-notifications",
    default=True,
    show_default=True,
    help="Send Slack and webhook notifications of the Rollouts' NotificationChannels.",
)
@api_options()
@rollout_link_option
@click.option(
    "--forbid-inline-queries",
    is_flag=True,
    default=False,
    help="Rollouts may use only their policies' queries, overriding what the policy allows.",
)
@click.option(
    "--webhook-allow",
    "webhook_allow",
    multiple=True,
    metavar="CIDR",
    help="Let webhooks reach this range although the destination policy refuses it "
    "(loopback, link-local, the API server); repeatable. docs/security.md.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def controller(
    kubeconfig: Path | None,
    context: str | None,
    namespaces: tuple[str, ...],
    prometheus: str,
    prometheus_bearer_token_file: Path | None,
    prometheus_ca_file: Path | None,
    metrics_addr: str,
    leader_elect: bool,
    lease_name: str,
    shards: int,
    lease_namespace: str | None,
    lease_duration: str,
    renew_deadline: str,
    retry_period: str,
    identity: str | None,
    secrets_from_cluster: bool,
    secrets_dir: Path | None,
    restore_on_delete: bool,
    workers: int,
    route_resync: str,
    route_watch: tuple[str, ...],
    notifications: bool,
    api_listen: Address | None,
    api_tokens: Path | None,
    rollout_link: str | None,
    forbid_inline_queries: bool,
    webhook_allow: tuple[str, ...],
    log_level: str,
) -> None:
    """Run the canary controller: watch Rollouts and their Deployments, roll canaries out
    through the mesh, judge them with Prometheus, promote or roll back."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException
    from pydantic import ValidationError

    from canary.analysis.prometheus import PrometheusProvider, PrometheusSettings, TlsSettings
    from canary.controller import Controller, ControllerSettings, LeaseSettings
    from canary.controller.settings import default_identity
    from canary.controller.shard_math import validate_shards
    from canary.gates.api.auth import TokenError
    from canary.gates.destinations import DestinationPolicy
    from canary.notify import NotifyConfig

    tune_collector()
    limit_malloc_arenas()
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    quiet_request_logs(log_level)
    if not secrets_from_cluster and secrets_dir is None:
        fail(["--no-secrets-from-cluster needs --secrets-dir DIR"])
    try:
        lease = LeaseSettings(
            namespace=lease_namespace or default_lease_namespace(),
            name=lease_name,
            lease_duration=parse_duration(lease_duration),
            renew_deadline=parse_duration(renew_deadline),
            retry_period=parse_duration(retry_period),
        )
        resync = parse_duration(route_resync)
        validate_shards(shards)
        if shards > 1 and not leader_elect:
            raise ValueError("--shards above 1 needs --leader-elect (each shard is a Lease)")
        address = None if metrics_addr in ("0", "") else parse_listen(metrics_addr)
        DestinationPolicy.of(allow=webhook_allow)  # a bad CIDR is named here, not in a thread
        settings = PrometheusSettings(
            url=prometheus,
            bearer_token_file=prometheus_bearer_token_file,
            tls=TlsSettings(ca_file=prometheus_ca_file),
        )
    except (DurationError, ValueError, ValidationError) as exc:
        fail([str(exc)])
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            api_client = client.ApiClient()
        else:
            path = str(kubeconfig) if kubeconfig else None
            api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=path, context=context
            )
    except (ConfigException, OSError) as exc:
        fail([f"no Kubernetes configuration: {exc}"])
    me = identity or os.environ.get("POD_NAME") or default_identity()
    api_client.user_agent = f"canary-controller/{me}"  # which replica made a request: audit logs
    # (Controller turns the client's per-request credential refresh off for a static
    # kubeconfig credential, and keeps it in-cluster: canary.controller.kube.
    # drop_static_token_refresh)
    run = Controller(
        api_client,
        ControllerSettings(
            namespaces=namespaces,
            identity=me,
            lease=lease if leader_elect else None,
            shards=shards,
            metrics_address=address,
            workers=workers,
            route_resync=resync,
            route_watch=tuple(api for api in route_watch if api != "none"),
            secrets_dir=None if secrets_from_cluster else secrets_dir,
            notify=NotifyConfig(rollout_link=rollout_link, webhook_allow=webhook_allow)
            if notifications
            else None,
            forbid_inline_queries=forbid_inline_queries,
            webhook_allow=webhook_allow,
            restore_on_delete=restore_on_delete,
            api_address=api_listen,
            api_tokens=api_tokens,
        ),
        provider=PrometheusProvider(settings),
    )
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    where = ", ".join(namespaces) or "all namespaces"
    logging.getLogger("canary.controller").info(
        "canary controller %s starting for %s", run.settings.identity, where
    )
    try:
        run.start()
    except TokenError as exc:
        fail([f"--api-tokens: {exc}"])
    frozen = False
    while not stopping.wait(1.0):
        if not frozen and run.ready()[0]:
            frozen = True
            count = freeze_startup_heap()
            logging.getLogger("canary.controller").info("caches synced: %d objects frozen", count)
    logging.getLogger("canary.controller").info("stopping")
    run.stop()
