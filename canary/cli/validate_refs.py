"""`canary validate` across its files: a Rollout naming a policy that another file given with
it holds, and that the controller would refuse, is refused as the controller refuses it
(`spec.analysis.policies[0].name: AnalysisPolicy 'strict' is invalid, so it is not used: ...`).

A policy named but not among the files is left alone: the cluster may hold it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from canary.analysis.checks import CheckResolutionError
from canary.analysis.policies import AnyPolicy, check_usable, find_policy, refused_policy
from canary.analysis.resource_problems import judge_resource, summary
from canary.model.loader import Document, LoadError, Problem, raw_documents, read_text
from canary.model.policy import AnalysisPolicy, ClusterAnalysisPolicy
from canary.model.rollout import Rollout

_POLICY_MODELS = {"AnalysisPolicy": AnalysisPolicy, "ClusterAnalysisPolicy": ClusterAnalysisPolicy}


def refused_policies(paths: Iterable[Path]) -> list[AnyPolicy]:
    """The policies of ``paths`` the controller would refuse, as its stand-ins (a file that
    cannot be read holds none: its own problems say why)."""
    found: list[AnyPolicy] = []
    for path in paths:
        try:
            raws = raw_documents(str(path), read_text(path))
        except LoadError:
            continue
        found += [p for raw in raws if (p := _refused(raw)) is not None]
    return found


def _refused(raw: Any) -> AnyPolicy | None:
    if not isinstance(raw, dict):
        return None
    kind = raw.get("kind")
    model = _POLICY_MODELS.get(kind) if isinstance(kind, str) else None
    meta = raw.get("metadata")
    if model is None or not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        return None
    resource, problems = judge_resource(raw, model)
    if resource is not None:
        return None
    namespace = meta.get("namespace")
    namespace = namespace if isinstance(namespace, str) else None
    return refused_policy(model.__name__, namespace, meta["name"], summary(problems))


def reference_problems(documents: list[Document], refused: list[AnyPolicy]) -> list[Problem]:
    """The references of the Rollouts among ``documents`` to a policy in ``refused``."""
    problems: list[Problem] = []
    for document in documents:
        rollout = document.resource
        if not isinstance(rollout, Rollout) or not refused:
            continue
        for index, ref in enumerate(rollout.spec.analysis.policies):
            policy = find_policy(ref.name, ref.kind, rollout.metadata.namespace, refused)
            if policy is None:
                continue
            try:
                check_usable(policy, f"spec.analysis.policies[{index}].name")
            except CheckResolutionError as exc:
                problems.append(Problem(document.source, exc.path, exc.message))
    return problems
