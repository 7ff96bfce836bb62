"""The ConfigMaps and Secrets a pod template references, and rewriting those references.

Tracked: ``envFrom`` (configMapRef, secretRef), ``env[].valueFrom`` (configMapKeyRef,
secretKeyRef) of every container and init container, and volumes (configMap, secret, and the
configMap and secret sources of a projected volume). ``imagePullSecrets`` are not tracked: they
are credentials for the registry, not the application's configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from canary.workload.names import Json

CONFIGMAP = "ConfigMap"
SECRET = "Secret"

_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_ENV_FROM = (("configMapRef", CONFIGMAP), ("secretRef", SECRET))
_VALUE_FROM = (("configMapKeyRef", CONFIGMAP), ("secretKeyRef", SECRET))
_PROJECTED = (("configMap", CONFIGMAP), ("secret", SECRET))


@dataclass(frozen=True)
class ConfigRefs:
    """Referenced names by kind; the value says whether a reference is required (not optional)."""

    configmaps: dict[str, bool]
    secrets: dict[str, bool]

    def of_kind(self, kind: str) -> dict[str, bool]:
        return self.configmaps if kind == CONFIGMAP else self.secrets


@dataclass(frozen=True)
class _Site:
    kind: str
    holder: Json
    key: str

    @property
    def name(self) -> str:
        return str(self.holder.get(self.key) or "")

    @property
    def optional(self) -> bool:
        return bool(self.holder.get("optional"))


def _dicts(value: object) -> list[Json]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _sites(pod_spec: Json) -> Iterator[_Site]:
    for list_name in _CONTAINER_LISTS:
        for container in _dicts(pod_spec.get(list_name)):
            for source in _dicts(container.get("envFrom")):
                for key, kind in _ENV_FROM:
                    if isinstance(source.get(key), dict):
                        yield _Site(kind, source[key], "name")
            for env in _dicts(container.get("env")):
                value_from = env.get("valueFrom")
                if not isinstance(value_from, dict):
                    continue
                for key, kind in _VALUE_FROM:
                    if isinstance(value_from.get(key), dict):
                        yield _Site(kind, value_from[key], "name")
    for volume in _dicts(pod_spec.get("volumes")):
        if isinstance(volume.get("configMap"), dict):
            yield _Site(CONFIGMAP, volume["configMap"], "name")
        if isinstance(volume.get("secret"), dict):
            yield _Site(SECRET, volume["secret"], "secretName")
        projected = volume.get("projected")
        if isinstance(projected, dict):
            for source in _dicts(projected.get("sources")):
                for key, kind in _PROJECTED:
                    if isinstance(source.get(key), dict):
                        yield _Site(kind, source[key], "name")


def _pod_spec(template: Json) -> Json:
    spec = template.get("spec")
    return spec if isinstance(spec, dict) else {}


def template_of(deployment: Json) -> Json:
    template = (deployment.get("spec") or {}).get("template")
    return template if isinstance(template, dict) else {}


def config_refs(template: Json) -> ConfigRefs:
    """Every ConfigMap and Secret the pod template references; a name referenced once without
    ``optional: true`` is required."""
    found: dict[str, dict[str, bool]] = {CONFIGMAP: {}, SECRET: {}}
    for site in _sites(_pod_spec(template)):
        if site.name:
            names = found[site.kind]
            names[site.name] = names.get(site.name, False) or not site.optional
    return ConfigRefs(
        configmaps=dict(sorted(found[CONFIGMAP].items())),
        secrets=dict(sorted(found[SECRET].items())),
    )


def referenced_configs(deployment: Json) -> tuple[list[str], list[str]]:
    """(ConfigMap names, Secret names) the Deployment's pod template references: what to fetch
    before computing its revision."""
    refs = config_refs(template_of(deployment))
    return list(refs.configmaps), list(refs.secrets)


def rename_refs(template: Json, rename: Callable[[str, str], str]) -> None:
    """Rewrite, in place, every reference's name to ``rename(kind, name)``."""
    for site in _sites(_pod_spec(template)):
        if site.name:
            site.holder[site.key] = rename(site.kind, site.name)
