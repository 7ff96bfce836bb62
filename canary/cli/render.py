"""`canary render ROLLOUT.yaml --weight 20`: the routing objects of one moment, for GitOps and
debugging.

Prints, as multi-document YAML, what the controller would apply to hold that traffic split
(Istio VirtualService and DestinationRules, HTTPRoute, GRPCRoute, TrafficSplit). For the local
HAProxy provider it prints the haproxy.cfg, followed by the runtime API commands that set the
state.
"""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from canary.engine.actions import Route
from canary.model.loader import LoadError, load_rollout
from canary.model.provider import ProviderName
from canary.model.rollout import Rollout
from canary.traffic import linkerd, mesh
from canary.traffic.haproxy import config
from canary.traffic.haproxy.runtime import escape_argument
from canary.traffic.router import RouterError

_LAYOUT = config.Layout("127.0.0.1:8080", "127.0.0.1:8405", Path(".canary/maps"))


def _fail(lines: list[str]) -> None:
    for line in lines:
        click.echo(line, err=True)
    raise SystemExit(1)


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--weight",
    type=click.IntRange(0, 100),
    default=0,
    show_default=True,
    help="The canary's share of traffic in percent.",
)
@click.option(
    "--match",
    "use_match",
    is_flag=True,
    help="Add the A/B route: requests matching spec.strategy.abTest.match go to the canary.",
)
@click.option(
    "--mirror",
    type=click.FloatRange(0, 100, min_open=True),
    default=None,
    help="Copy this percentage of live traffic to the canary (blue/green).",
)
def render(file: Path, weight: int, use_match: bool, mirror: float | None) -> None:
    """Print the routing objects of the Rollout in FILE for one traffic split."""
    try:
        rollout = load_rollout(file)
    except LoadError as exc:
        _fail([str(p) for p in exc.problems])
        return
    ab = rollout.spec.strategy.ab_test
    if use_match and ab is None:
        _fail([f"{file}: spec.strategy.abTest: --match needs the A/B strategy and its rules"])
        return
    route = Route(
        canary_weight=weight,
        match=tuple(ab.match) if use_match and ab is not None else (),
        mirror_percentage=mirror,
    )
    try:
        if rollout.spec.provider.name is ProviderName.HAPROXY:
            text = _haproxy(rollout, route)
        else:
            text = _service_note(rollout) + yaml.safe_dump_all(
                mesh.desired_objects(rollout, route), sort_keys=False, explicit_start=True
            )
    except RouterError as exc:
        _fail([f"{file}: {exc}"])
        return
    click.echo(text, nl=not text.endswith("\n"))


def _service_note(rollout: Rollout) -> str:
    """Linkerd's circuit breaker lives on the Service the workload part writes: say so."""
    if rollout.spec.provider.name is not ProviderName.LINKERD:
        return ""
    annotations = linkerd.service_annotations(rollout)
    if not annotations:
        return ""
    lines = [
        f"# Linkerd reads the circuit breaker from Service {rollout.spec.target_ref.name}, "
        "which carries these annotations:",
        *(f"#   {key}: {value!r}" for key, value in annotations.items()),
    ]
    return "\n".join(lines) + "\n"


def _haproxy(rollout: Rollout, route: Route) -> str:
    """The config, then (as comments) the runtime API commands that put HAProxy in ``route``."""
    if route.mirror_percentage is not None:
        raise RouterError("HAProxy cannot mirror traffic to the canary")
    settings = rollout.spec.provider.haproxy
    assert settings is not None  # render() raises first without primary/canary addresses
    text = config.render(rollout, _LAYOUT)
    backend = settings.backend
    commands = [
        f"set weight {backend}/{settings.primary_server} {100 - route.canary_weight}",
        f"set weight {backend}/{settings.canary_server} {route.canary_weight}",
    ]
    for condition in config.rollout_conditions(rollout, _LAYOUT.map_dir):
        commands.append(f"clear map {condition.map_file}")
        if route.match:
            commands.append(f"add map {condition.map_file} {escape_argument(condition.key)} 1")
    state = [
        f"# State for canary weight {route.canary_weight}%"
        f"{' with the A/B route' if route.match else ''}: runtime API commands",
        *(f"#   {command}" for command in commands),
    ]
    return text.rstrip("\n") + "\n\n" + "\n".join(state) + "\n"
