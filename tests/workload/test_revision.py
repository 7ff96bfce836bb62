"""Revisions: the pod template and the configuration it references, nothing else."""

from __future__ import annotations

import base64
import copy
import json
import random
from typing import Any

import pytest
from workload_support import configmap, secret

from canary.workload import (
    MissingConfigError,
    config_refs,
    normalise_template,
    referenced_configs,
    revision_of,
)

Json = dict[str, Any]


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same object with every mapping's keys in another order (lists keep theirs)."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


def test_referenced_configs_finds_every_kind_of_reference(target: Json) -> None:
    configmaps, secrets = referenced_configs(target)
    assert configmaps == ["ca-bundle", "extra", "log-settings", "podinfo-env", "podinfo-files"]
    # imagePullSecrets are registry credentials, not configuration: not tracked.
    assert secrets == ["api-token", "db-credentials", "podinfo-tls", "signing-key"]
    refs = config_refs(target["spec"]["template"])
    assert refs.configmaps["extra"] is False  # optional
    assert refs.secrets["api-token"] is False
    assert refs.configmaps["podinfo-env"] is True


def test_a_name_referenced_once_required_is_required(target: Json) -> None:
    target["spec"]["template"]["spec"]["volumes"].append(
        {"name": "extra", "configMap": {"name": "extra"}}
    )
    assert config_refs(target["spec"]["template"]).configmaps["extra"] is True


def test_the_revision_is_short_hex_and_stable_across_key_order(
    target: Json, configmaps: list[Json], secrets: list[Json]
) -> None:
    revision = revision_of(target, configmaps, secrets)
    assert len(revision) == 10
    int(revision, 16)
    rng = random.Random(7)
    for _ in range(20):
        again = revision_of(
            shuffled(target, rng),
            [shuffled(c, rng) for c in reversed(configmaps)],
            [shuffled(s, rng) for s in secrets],
        )
        assert again == revision


def test_the_revision_ignores_metadata_replicas_and_status(
    target: Json, configmaps: list[Json], secrets: list[Json]
) -> None:
    revision = revision_of(target, configmaps, secrets)
    target["metadata"]["labels"]["new"] = "label"
    target["metadata"]["generation"] = 9
    target["spec"]["replicas"] = 0
    target["status"] = {"replicas": 7}
    assert revision_of(target, configmaps, secrets) == revision


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t["spec"]["template"]["spec"]["containers"][0].update(image="podinfo:6.7.2"),
        lambda t: t["spec"]["template"]["metadata"]["labels"].update(version="v2"),
        lambda t: t["spec"]["template"]["spec"]["containers"][0]["env"].append(
            {"name": "NEW", "value": "1"}
        ),
        lambda t: t["spec"]["template"]["spec"]["containers"][0]["env"].reverse(),
    ],
    ids=["image", "pod-label", "env-added", "env-order"],
)
def test_a_template_change_is_a_new_revision(
    target: Json, configmaps: list[Json], secrets: list[Json], change: Any
) -> None:
    before = revision_of(target, configmaps, secrets)
    change(target)
    assert revision_of(target, configmaps, secrets) != before


def test_kubectl_rollout_restart_is_a_new_revision(
    target: Json, configmaps: list[Json], secrets: list[Json]
) -> None:
    before = revision_of(target, configmaps, secrets)
    annotations = target["spec"]["template"]["metadata"]["annotations"]
    annotations["kubectl.kubernetes.io/restartedAt"] = "2025-01-01T00:00:00Z"
    assert revision_of(target, configmaps, secrets) != before


def test_a_referenced_configmap_or_secret_data_change_is_a_new_revision(
    target: Json, configmaps: list[Json], secrets: list[Json]
) -> None:
    before = revision_of(target, configmaps, secrets)
    changed = [c for c in configmaps if c["metadata"]["name"] != "log-settings"]
    changed.append(configmap("log-settings", {"level": "debug"}))
    assert revision_of(target, changed, secrets) != before
    binary = copy.deepcopy(configmaps)
    binary[0]["binaryData"] = {"blob": "AAE="}
    assert revision_of(target, binary, secrets) != before
    rotated = [secret(s["metadata"]["name"], {"key": "bmV3"}) for s in secrets]
    assert revision_of(target, configmaps, rotated) != before


def test_unrelated_configs_and_config_metadata_do_not_count(
    target: Json, configmaps: list[Json], secrets: list[Json]
) -> None:
    before = revision_of(target, configmaps, secrets)
    others = [c for c in configmaps if c["metadata"]["name"] != "unrelated"]
    others.append(configmap("unrelated", {"changed": "yes"}))
    for obj in others:
        obj["metadata"]["labels"] = {"touched": "by someone"}
        obj["metadata"]["resourceVersion"] = "99"
    assert revision_of(target, others, [*secrets, secret("another")]) == before


def test_string_data_counts_as_the_data_the_api_server_would_store(
    target: Json, configmaps: list[Json], secrets: list[Json]
) -> None:
    before = revision_of(target, configmaps, secrets)
    written = []
    for obj in secrets:
        plain = {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}
        written.append({**{k: v for k, v in obj.items() if k != "data"}, "stringData": plain})
    assert revision_of(target, configmaps, written) == before


def test_optional_references_may_be_missing_and_their_arrival_is_a_new_revision(
    target: Json, configmaps: list[Json], secrets: list[Json]
) -> None:
    before = revision_of(target, configmaps, secrets)  # 'extra' and 'api-token' are missing
    assert revision_of(target, [*configmaps, configmap("extra")], secrets) != before
    assert revision_of(target, configmaps, [*secrets, secret("api-token")]) != before


@pytest.mark.parametrize(
    ("kind", "name"), [("ConfigMap", "podinfo-env"), ("Secret", "podinfo-tls")]
)
def test_a_missing_required_reference_is_an_error_naming_it(
    target: Json, configmaps: list[Json], secrets: list[Json], kind: str, name: str
) -> None:
    configmaps = [c for c in configmaps if c["metadata"]["name"] != name]
    secrets = [s for s in secrets if s["metadata"]["name"] != name]
    with pytest.raises(MissingConfigError, match=f"{kind} '{name}'") as caught:
        revision_of(target, configmaps, secrets)
    assert (caught.value.kind, caught.value.name) == (kind, name)


def test_values_the_api_server_defaults_do_not_change_the_revision(
    target: Json, configmaps: list[Json], secrets: list[Json]
) -> None:
    """The same Deployment as written and as read back from a real API server."""
    before = revision_of(target, configmaps, secrets)
    spec = target["spec"]["template"]["spec"]
    spec.update(
        restartPolicy="Always",
        dnsPolicy="ClusterFirst",
        schedulerName="default-scheduler",
        terminationGracePeriodSeconds=30,
        securityContext={},
    )
    for container in spec["containers"] + spec["initContainers"]:
        container.update(
            terminationMessagePath="/dev/termination-log",
            terminationMessagePolicy="File",
            imagePullPolicy="IfNotPresent",
            resources={},
        )
    spec["containers"][0]["ports"][0]["protocol"] = "TCP"
    spec["volumes"][0]["configMap"]["defaultMode"] = 420
    spec["volumes"][1]["secret"]["defaultMode"] = 420
    assert revision_of(target, configmaps, secrets) == before
    spec["terminationGracePeriodSeconds"] = 60
    assert revision_of(target, configmaps, secrets) != before


def test_normalising_keeps_meaningful_empties_and_leaves_the_argument_alone(target: Json) -> None:
    template = target["spec"]["template"]
    original = json.dumps(template, sort_keys=True)
    normal = normalise_template(template)
    assert json.dumps(template, sort_keys=True) == original
    assert "creationTimestamp" not in normal["metadata"]
    assert {"name": "cache", "emptyDir": {}} in normal["spec"]["volumes"]


@pytest.mark.parametrize(
    ("image", "default"),
    [
        ("podinfo", "Always"),
        ("podinfo:latest", "Always"),
        ("registry:5000/podinfo", "Always"),
        ("registry:5000/podinfo:1.0", "IfNotPresent"),
        ("podinfo@sha256:abc", "IfNotPresent"),
    ],
)
def test_the_image_pull_policy_default_follows_the_tag(image: str, default: str) -> None:
    template = {"spec": {"containers": [{"name": "a", "image": image}]}}
    explicit = copy.deepcopy(template)
    explicit["spec"]["containers"][0]["imagePullPolicy"] = default
    assert normalise_template(explicit) == normalise_template(template)
    other = "Never"
    explicit["spec"]["containers"][0]["imagePullPolicy"] = other
    assert normalise_template(explicit) != normalise_template(template)
