"""A revision: a short hash of the target's pod template and of the configuration it references.

The template is normalised before hashing so that the same intent gives the same hash whether
it was written by hand or read back from the API server: values the API server fills in with
a constant default are dropped (``restartPolicy: Always``, ``protocol: TCP``, probe timings, ...),
as are ``null``s, empty lists, empty ``resources``/``securityContext``/label maps and the
template's ``creationTimestamp``. Everything else counts, including the
``kubectl.kubernetes.io/restartedAt`` annotation: ``kubectl rollout restart`` is a new revision.

Referenced ConfigMaps count by ``data`` and ``binaryData``, Secrets by ``type`` and ``data``
(``stringData`` folded in as the API server would); their metadata does not. An optional
reference to a missing object counts as "missing", so creating it later is a new revision; a
required reference to a missing object is a MissingConfigError.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from canary.workload.names import Json, MissingConfigError, name_of
from canary.workload.refs import CONFIGMAP, SECRET, ConfigRefs, config_refs, template_of

REVISION_LENGTH = 10
"""Hex characters of the sha256 kept: short enough for names, ample for a few revisions."""

_POD_DEFAULTS: dict[str, object] = {
    "restartPolicy": "Always",
    "dnsPolicy": "ClusterFirst",
    "schedulerName": "default-scheduler",
    "terminationGracePeriodSeconds": 30,
    "enableServiceLinks": True,
}
_CONTAINER_DEFAULTS: dict[str, object] = {
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
}
_PROBE_DEFAULTS: dict[str, object] = {
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "successThreshold": 1,
    "failureThreshold": 3,
}
_EMPTY_MEANS_ABSENT = frozenset(
    {"securityContext", "resources", "labels", "annotations", "nodeSelector"}
)
_DEFAULT_MODE = 420  # 0644, the API server's default for configMap, secret, projected volumes


def _drop_defaults(obj: Json, defaults: Mapping[str, object]) -> None:
    for key, value in defaults.items():
        if obj.get(key) == value:
            del obj[key]


def _image_pull_policy_default(image: str) -> str:
    name = image.rsplit("/", 1)[-1]
    if "@" in name:
        return "IfNotPresent"
    tag = name.partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _normalise_container(container: Json) -> None:
    _drop_defaults(container, _CONTAINER_DEFAULTS)
    image = str(container.get("image", ""))
    if container.get("imagePullPolicy") == _image_pull_policy_default(image):
        del container["imagePullPolicy"]
    for port in container.get("ports") or []:
        if isinstance(port, dict) and port.get("protocol") == "TCP":
            del port["protocol"]
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_name)
        if isinstance(probe, dict):
            _drop_defaults(probe, _PROBE_DEFAULTS)
            http = probe.get("httpGet")
            if isinstance(http, dict) and http.get("scheme") == "HTTP":
                del http["scheme"]
    for env in container.get("env") or []:
        field_ref = (env.get("valueFrom") or {}).get("fieldRef") if isinstance(env, dict) else None
        if isinstance(field_ref, dict) and field_ref.get("apiVersion") == "v1":
            del field_ref["apiVersion"]


def _normalise_volume(volume: Json) -> None:
    for source in ("configMap", "secret", "projected", "downwardAPI"):
        value = volume.get(source)
        if isinstance(value, dict) and value.get("defaultMode") == _DEFAULT_MODE:
            del value["defaultMode"]


def _prune(value: Any, key: str = "") -> Any:
    """``value`` without nulls, empty lists, and empty maps where empty means absent."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            pruned = _prune(v, k)
            if pruned is None or pruned == []:
                continue
            if pruned == {} and k in _EMPTY_MEANS_ABSENT:
                continue
            out[k] = pruned
        return out
    if isinstance(value, list):
        return [_prune(item, key) for item in value]
    return value


def normalise_template(template: Json) -> Json:
    """The pod template as hashed (a copy; the argument is not changed)."""
    copy: Json = json.loads(json.dumps(template))
    metadata = copy.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("creationTimestamp", None)
    spec = copy.get("spec")
    if isinstance(spec, dict):
        _drop_defaults(spec, _POD_DEFAULTS)
        for list_name in ("initContainers", "containers", "ephemeralContainers"):
            for container in spec.get(list_name) or []:
                if isinstance(container, dict):
                    _normalise_container(container)
        for volume in spec.get("volumes") or []:
            if isinstance(volume, dict):
                _normalise_volume(volume)
    pruned: Json = _prune(copy)
    return pruned


def by_name(objects: Iterable[Json]) -> dict[str, Json]:
    return {name_of(obj): obj for obj in objects}


def config_payload(kind: str, obj: Json) -> Json:
    """What of a ConfigMap or Secret counts towards the revision (and is copied)."""
    if kind == CONFIGMAP:
        return {"data": obj.get("data") or {}, "binaryData": obj.get("binaryData") or {}}
    data = dict(obj.get("data") or {})
    for key, text in (obj.get("stringData") or {}).items():
        data[key] = base64.b64encode(str(text).encode()).decode()
    return {"type": obj.get("type") or "Opaque", "data": data}


def found_configs(
    refs: ConfigRefs, configmaps: Iterable[Json], secrets: Iterable[Json]
) -> dict[str, dict[str, Json | None]]:
    """The referenced objects by kind and name (None: optional and missing); raises
    MissingConfigError for a required one that is missing. Unrelated objects are left out."""
    given = {CONFIGMAP: by_name(configmaps), SECRET: by_name(secrets)}
    out: dict[str, dict[str, Json | None]] = {}
    for kind in (CONFIGMAP, SECRET):
        out[kind] = {}
        for name, required in refs.of_kind(kind).items():
            obj = given[kind].get(name)
            if obj is None and required:
                raise MissingConfigError(kind, name)
            out[kind][name] = obj
    return out


def revision_of(
    deployment: Json, configmaps: Iterable[Json] = (), secrets: Iterable[Json] = ()
) -> str:
    """The revision of ``deployment``'s pod template and of the ConfigMaps and Secrets it
    references (found among ``configmaps`` and ``secrets``; others are ignored)."""
    template = template_of(deployment)
    found = found_configs(config_refs(template), configmaps, secrets)
    payload = {
        "template": normalise_template(template),
        "configMaps": {
            name: None if obj is None else config_payload(CONFIGMAP, obj)
            for name, obj in found[CONFIGMAP].items()
        },
        "secrets": {
            name: None if obj is None else config_payload(SECRET, obj)
            for name, obj in found[SECRET].items()
        },
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:REVISION_LENGTH]
