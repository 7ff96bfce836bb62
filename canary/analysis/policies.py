"""The shipped AnalysisPolicies (``policies/*.yaml``) and how a rollout's policies are found.

Built-in policies are ClusterAnalysisPolicies read from the ``policies`` folder: next to the
package in a source checkout or an editable install, else under ``<prefix>/share/canary/
policies`` where a wheel installs them. Each provider has a default policy, used when a
rollout names none. Policies from the cluster or from files (``extra_policies``) are looked up
first, so a cluster's own ``istio`` ClusterAnalysisPolicy replaces the built-in one.

A policy's ``variables`` are expanded into its queries when its checks are taken: a value is
PromQL text and may use the variables given at every tick (``{{ namespace }}``, ...) and the
policy's other variables. docs/policies.md has the details.
"""

from __future__ import annotations

import re
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from functools import cache, lru_cache
from pathlib import Path
from typing import cast

from pydantic.alias_generators import to_camel

from canary.analysis.checks import CheckResolutionError
from canary.analysis.scope import ScopeError, check_scoped
from canary.model.analysis import CheckSpec, PolicyKind
from canary.model.limits import MAX_EXPANDED_QUERY, MAX_EXPANSION_PASSES, MAX_VARIABLES
from canary.model.loader import LoadError, load_file
from canary.model.meta import ObjectMeta
from canary.model.policy import AnalysisPolicy, AnalysisPolicySpec, ClusterAnalysisPolicy
from canary.model.provider import ProviderName, RouteKind
from canary.model.rollout import Rollout

AnyPolicy = AnalysisPolicy | ClusterAnalysisPolicy


class RefusedAnalysisPolicy(AnalysisPolicy):
    """An AnalysisPolicy of the cluster the model refused: its name and why, no spec. Found
    by its name (`find_policy`) so that a Rollout naming it is told it is invalid, never used
    (`policy_checks_and_rules` raises first)."""

    refusal: str = ""


class RefusedClusterAnalysisPolicy(ClusterAnalysisPolicy):
    """`RefusedAnalysisPolicy` for a ClusterAnalysisPolicy (one of a built-in's name hides the
    built-in: the Rollouts using it are told it is invalid, not judged by the built-in)."""

    refusal: str = ""


def refused_policy(kind: str, namespace: str | None, name: str, refusal: str) -> AnyPolicy:
    """A stand-in for the refused policy (kind, namespace, name): the model refused it for
    ``refusal``."""
    metadata = ObjectMeta.model_construct(name=name, namespace=namespace or None)
    none = cast(AnalysisPolicySpec, None)  # never read: `check_usable` refuses it first
    if kind == PolicyKind.ANALYSIS_POLICY.value:
        return RefusedAnalysisPolicy.model_construct(metadata=metadata, spec=none, refusal=refusal)
    return RefusedClusterAnalysisPolicy.model_construct(
        metadata=metadata, spec=none, refusal=refusal
    )


def refusal_of(policy: AnyPolicy) -> str | None:
    """Why the cluster's policy was refused; None for a policy that can be used."""
    if isinstance(policy, RefusedAnalysisPolicy | RefusedClusterAnalysisPolicy):
        return policy.refusal
    return None


DEFAULT_POLICY: dict[ProviderName, str] = {
    ProviderName.ISTIO: "istio",
    ProviderName.LINKERD: "linkerd",
    ProviderName.GATEWAY_API: "gateway-api-envoy",
    ProviderName.HAPROXY: "haproxy",
}
"""The built-in policy of each traffic provider."""

TICK_VARIABLES = frozenset(
    {"namespace", "target", "canary", "primary", "interval", "objective_ms", "objective_seconds"}
)
"""Variables given at every tick (canary.analysis.analyse.query_variables): not a policy's."""
DEFAULT_ROLLOUT_VARIABLES = {"http_routes": "{{ target }}", "grpc_routes": "{{ target }}"}
"""Variables the Rollout gives when its checks are taken (`rollout_variables`): the names of
the HTTPRoutes and GRPCRoutes canary writes for it, as a regular expression; not a policy's.
Without a Rollout (a policy expanded alone): the routes named after the target."""
ROLLOUT_VARIABLES = frozenset(DEFAULT_ROLLOUT_VARIABLES)

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_QUERY_FIELDS = ("requests_query", "failures_query", "quantile_query", "query")


class PolicyError(CheckResolutionError):
    """A policy that cannot be found or used; ``path`` names the field."""


def policy_dirs() -> list[Path]:
    """Where built-in policies are looked for, in order."""
    return list(_policy_dirs())


@cache
def _policy_dirs() -> tuple[Path, ...]:
    # Read once: sysconfig and resolving the path cost more than a simulated rollout's ticks.
    source = Path(__file__).resolve().parents[2] / "policies"
    prefixes = [Path(sys.prefix), Path(sysconfig.get_path("data"))]
    installed = [p / "share" / "canary" / "policies" for p in prefixes]
    return tuple(dict.fromkeys([source, *installed]))


def builtin_dir() -> Path:
    """The first of policy_dirs() that holds the built-in policies."""
    return _builtin_dir(tuple(policy_dirs()))


@cache
def _builtin_dir(candidates: tuple[Path, ...]) -> Path:
    # Found once per list of places (not found is not remembered: it raises).
    for candidate in candidates:
        if (candidate / "istio.yaml").is_file():
            return candidate
    searched = ", ".join(str(p) for p in candidates)
    raise PolicyError("policies", f"the built-in policies are not installed (looked in {searched})")


@cache
def _load_builtins(folder: Path) -> dict[str, ClusterAnalysisPolicy]:
    policies: dict[str, ClusterAnalysisPolicy] = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            documents = load_file(path)
        except LoadError as exc:
            raise PolicyError(str(path), f"a built-in policy is invalid: {exc}") from None
        for document in documents:
            if isinstance(document.resource, ClusterAnalysisPolicy):
                policies[document.resource.metadata.name] = document.resource
    return policies


def builtin_policies() -> dict[str, ClusterAnalysisPolicy]:
    """Every built-in policy by name."""
    return dict(_load_builtins(builtin_dir()))


def builtin_policy(name: str) -> ClusterAnalysisPolicy:
    policies = builtin_policies()
    if name not in policies:
        known = ", ".join(sorted(policies))
        raise PolicyError("name", f"no built-in policy '{name}' (built-in: {known})")
    return policies[name]


def default_policy(provider: ProviderName) -> ClusterAnalysisPolicy:
    """The built-in policy a rollout of ``provider`` uses when it names none."""
    return builtin_policy(DEFAULT_POLICY[provider])


def find_policy(
    name: str, kind: PolicyKind, namespace: str | None, extra_policies: Iterable[AnyPolicy] = ()
) -> AnyPolicy | None:
    """The policy a rollout in ``namespace`` means by (kind, name): extra ones, then built-in."""
    for policy in extra_policies:
        if policy.kind != kind.value or policy.metadata.name != name:
            continue
        theirs = policy.metadata.namespace
        if isinstance(policy, AnalysisPolicy) and theirs and namespace and theirs != namespace:
            continue
        return policy
    if kind is PolicyKind.CLUSTER_ANALYSIS_POLICY:
        return builtin_policies().get(name)
    return None


def rollout_variables(rollout: Rollout) -> dict[str, str]:
    """``http_routes`` and ``grpc_routes``: the names of the rollout's routes of each kind
    (`provider.gatewayApi.routes`, a route's name defaulting to the target's) as an RE2
    alternation written for the inside of a double-quoted PromQL string (``web|web-internal``;
    a dot escaped), so that a policy reads the Envoy clusters of the routes canary writes
    whatever their names. The target's name is written ``{{ target }}`` (escaped at each tick,
    as before routes could be named); it stands for a kind the rollout has no route of, and for
    other providers."""
    target = rollout.spec.target_ref.name
    names: dict[RouteKind, list[str]] = {kind: [] for kind in RouteKind}
    settings = rollout.spec.provider.gateway_api
    if rollout.spec.provider.name is ProviderName.GATEWAY_API and settings is not None:
        for route in settings.route_list():
            names[route.kind].append(route.name or target)
    return {
        variable: "|".join(_regex_literal(n, target) for n in names[kind] or [target])
        for variable, kind in (
            ("http_routes", RouteKind.HTTP_ROUTE),
            ("grpc_routes", RouteKind.GRPC_ROUTE),
        )
    }


def _regex_literal(name: str, target: str) -> str:
    if name == target:
        return "{{ target }}"
    # an object name is [a-z0-9.-]: only the dot means more in a regular expression, and its
    # backslash is doubled for the PromQL string the variable stands in
    return name.replace(".", "\\\\.")


def expand(
    policy: AnyPolicy, path: str = "policy", given: Mapping[str, str] | None = None
) -> list[CheckSpec]:
    """The policy's checks with its variables (and ``given``: `rollout_variables`) written into
    their queries; a PolicyError names the field when the variables loop, nest too deep or make
    a query too long."""
    variables = policy.spec.variables
    for name in variables:
        if name in ROLLOUT_VARIABLES:
            raise PolicyError(
                f"{path}.spec.variables.{name}",
                f"'{name}' is given by the Rollout (its routes' names): a policy cannot set it",
            )
        if name in TICK_VARIABLES:
            raise PolicyError(
                f"{path}.spec.variables.{name}",
                f"'{name}' is given at every tick: a policy cannot set it",
            )
    if len(variables) > MAX_VARIABLES:
        raise PolicyError(
            f"{path}.spec.variables",
            f"{len(variables)} variables: a policy has at most {MAX_VARIABLES}",
        )

    rollout = DEFAULT_ROLLOUT_VARIABLES if given is None else given
    given_all = tuple({**variables, **rollout}.items())
    checks = []
    for index, check in enumerate(policy.spec.checks):
        updates = {}
        for f in _QUERY_FIELDS:
            if text := getattr(check, f):
                try:
                    updates[f] = _substitute(text, given_all)
                except ExpansionError as exc:
                    where = f"{path}.spec.checks[{index}].{to_camel(f)}"
                    raise PolicyError(where, str(exc)) from None
        checks.append(check.model_copy(update=updates))
    return checks


class ExpansionError(ValueError):
    """Variables that loop, nest too deep, or expand a query past its length limit."""


@lru_cache(maxsize=1024)
def _substitute(text: str, given: tuple[tuple[str, str], ...]) -> str:
    """``text`` with the policy's variables written in (they may use each other). Each pass
    measures its result before building it, so no pass makes a string longer than
    MAX_EXPANDED_QUERY: the work is bounded whatever the variables hold. Remembered: a
    policy's queries are the same at every resolution."""
    variables = dict(given)
    for _ in range(MAX_EXPANSION_PASSES + 1):
        matches = [m for m in _PLACEHOLDER.finditer(text) if m.group(1) in variables]
        if not matches:
            return text
        grows = sum(len(variables[m.group(1)]) - len(m.group(0)) for m in matches)
        if len(text) + grows > MAX_EXPANDED_QUERY:
            raise ExpansionError(
                f"the variables expand this query past {MAX_EXPANDED_QUERY} characters: "
                "use fewer or shorter variables"
            )
        text = _PLACEHOLDER.sub(lambda m: variables.get(m.group(1), m.group(0)), text)
    if any(m.group(1) in variables for m in _PLACEHOLDER.finditer(text)):
        raise ExpansionError(
            f"the variables refer to each other in a loop, or more than "
            f"{MAX_EXPANSION_PASSES} deep: write them out"
        )
    return text


def policy_checks(
    rollout: Rollout, extra_policies: Iterable[AnyPolicy] = ()
) -> dict[str, CheckSpec]:
    """The checks of the rollout's policies (the provider's default when it names none), by
    name; a PolicyError names the field of a policy that is unknown or clashes."""
    return policy_checks_and_rules(rollout, extra_policies)[0]


def policy_checks_and_rules(
    rollout: Rollout, extra_policies: Iterable[AnyPolicy] = ()
) -> tuple[dict[str, CheckSpec], dict[str, frozenset[str]]]:
    """`policy_checks`, and for each check the fields a Rollout may override (its policy's
    ``overridable``, as wire names)."""
    extra = list(extra_policies)
    namespace = rollout.metadata.namespace
    refs = rollout.spec.analysis.policies
    if refs:
        found: list[tuple[str, AnyPolicy]] = []
        for index, ref in enumerate(refs):
            path = f"spec.analysis.policies[{index}]"
            policy = find_policy(ref.name, ref.kind, namespace, extra)
            if policy is None:
                raise PolicyError(f"{path}.name", _unknown(ref.name, ref.kind, namespace, extra))
            check_usable(policy, f"{path}.name")
            found.append((path, policy))
    else:
        provider = rollout.spec.provider.name
        name = DEFAULT_POLICY[provider]
        policy = find_policy(name, PolicyKind.CLUSTER_ANALYSIS_POLICY, namespace, extra)
        if policy is None:
            raise PolicyError("spec.provider.name", _unknown(name, None, namespace, extra))
        check_usable(policy, "spec.provider.name")
        found = [("spec.provider.name", policy)]
    checks: dict[str, CheckSpec] = {}
    owners: dict[str, str] = {}
    rules: dict[str, frozenset[str]] = {}
    for path, policy in found:
        for index, check in enumerate(expand(policy, path, rollout_variables(rollout))):
            _scoped(check, policy.spec.namespace_label, f"{path}.spec.checks[{index}]")
            if check.name in checks:
                raise PolicyError(
                    path,
                    f"check '{check.name}' of policy '{policy.metadata.name}' is also in policy "
                    f"'{owners[check.name]}': check names must be unique across policies",
                )
            checks[check.name] = check
            owners[check.name] = policy.metadata.name
            rules[check.name] = frozenset(policy.spec.overridable)
    return checks, rules


def _scoped(check: CheckSpec, label: str | None, path: str) -> None:
    if label is None:
        return
    for name in _QUERY_FIELDS:
        if text := getattr(check, name):
            try:
                check_scoped(text, label)
            except ScopeError as exc:
                raise PolicyError(f"{path}.{to_camel(name)}", str(exc)) from None


def namespace_label_of(rollout: Rollout, extra_policies: Iterable[AnyPolicy] = ()) -> str | None:
    """The namespace label one of the rollout's policies asks its queries to be scoped by."""
    namespace = rollout.metadata.namespace
    for ref in rollout.spec.analysis.policies:
        policy = find_policy(ref.name, ref.kind, namespace, extra_policies)
        if policy is not None and refusal_of(policy) is None and policy.spec.namespace_label:
            return policy.spec.namespace_label
    return None


def check_inline_scope(check: CheckSpec, label: str | None, path: str) -> None:
    """An inline check's own queries, scoped like its policies' (see canary.analysis.scope)."""
    _scoped(check, label, path)


def check_usable(policy: AnyPolicy, path: str) -> None:
    """PolicyError naming ``path`` when the cluster's ``policy`` was refused by the model."""
    refusal = refusal_of(policy)
    if refusal is None:
        return
    kind, name = policy.kind, policy.metadata.name
    raise PolicyError(
        path,
        f"{kind} '{name}' is invalid, so it is not used: {refusal}. Fix the policy "
        f"(`kubectl describe {kind.lower()} {name}` shows the same in a Warning Event)",
    )


def _unknown(
    name: str, kind: PolicyKind | None, namespace: str | None, extra: list[AnyPolicy]
) -> str:
    if kind is PolicyKind.ANALYSIS_POLICY:
        where = f"namespace '{namespace}'" if namespace else "the rollout's namespace"
        return f"no AnalysisPolicy '{name}' in {where}"
    names = sorted(
        {
            *builtin_policies(),
            *(p.metadata.name for p in extra if isinstance(p, ClusterAnalysisPolicy)),
        }
    )
    return f"no ClusterAnalysisPolicy '{name}' (known: {', '.join(names)})"
