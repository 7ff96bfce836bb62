"""Which checks a rollout runs: its policies' checks, with its inline checks over them.

A rollout's checks come from the policies it names in ``spec.analysis.policies`` (built-in
ones from ``policies/``, or ``extra_policies`` read from the cluster or from files), or, when it
names none, from its traffic provider's built-in policy (``istio``, ``linkerd``,
``gateway-api-envoy``, ``haproxy``): an ``error-rate`` check (at most 1% failed requests,
compared with the primary with a 20% margin) and a ``latency`` check (500 ms, the objective
that slow requests are counted against, and the p99 shown). Each inline check overrides the
policy check of the same name field by field; an inline check of another name is added when it
says what it measures (its ``kind``). See canary.analysis.policies and docs/policies.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from canary.model.analysis import CheckSpec
from canary.model.rollout import Rollout

if TYPE_CHECKING:
    from canary.analysis.policies import AnyPolicy

LATENCY_OBJECTIVE_MS = 500.0
"""The shipped policies' latency objective: requests slower than this count as slow."""


class CheckResolutionError(ValueError):
    """An inline check that cannot be resolved; ``path`` names the field in the Rollout."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


QUERY_FIELDS = ("requests_query", "failures_query", "quantile_query", "query")


def resolve_checks(
    rollout: Rollout, extra_policies: Iterable[AnyPolicy] = (), *, inline_queries: bool = True
) -> list[CheckSpec]:
    """The checks ``rollout`` is judged by, in order: its policies' checks, then its own.

    A rollout with complete inline checks and no policy runs only its own checks. Otherwise
    its policies apply (the provider's built-in policy when it names none; a PolicyError names
    an unknown one), and each inline check overrides the policy check of the same name field
    by field; an inline check of another name is added when it says what it measures (its
    ``kind``). An override may set only the fields its policy lists in ``overridable``;
    with ``inline_queries=False`` (the controller's --forbid-inline-queries) a Rollout may
    bring no query of its own at all (docs/security.md).
    """
    from canary.analysis.policies import (  # they import this module
        check_inline_scope,
        namespace_label_of,
        policy_checks_and_rules,
    )

    analysis = rollout.spec.analysis
    inline = analysis.checks
    own_only = not analysis.policies and any(c.is_complete() for c in inline)
    extra = list(extra_policies)
    base, rules = ({}, {}) if own_only else policy_checks_and_rules(rollout, extra)
    resolved = dict(base)
    label = namespace_label_of(rollout, extra) if inline else None
    for index, check in enumerate(inline):
        path = f"spec.analysis.checks[{index}]"
        if not inline_queries:
            _no_queries(check, path)
        check_inline_scope(check, label, path)
        default = base.get(check.name)
        if default is not None:
            _only_overridable(check, rules.get(check.name, frozenset()), path)
            resolved[check.name] = merge_check(default, check, path)
        elif check.kind is None:
            known = ", ".join(base) or "none"
            raise CheckResolutionError(
                f"{path}.name",
                f"check '{check.name}' overrides no check of its policies (known: {known}); "
                "give it a kind to make it a check of its own",
            )
        else:
            resolved[check.name] = check
    return list(resolved.values())


def _no_queries(check: CheckSpec, path: str) -> None:
    for name in QUERY_FIELDS:
        if getattr(check, name) is not None:
            raise CheckResolutionError(
                f"{path}.{to_camel(name)}",
                "this controller forbids queries in Rollouts (--forbid-inline-queries): use a "
                "policy's checks, overriding their thresholds if the policy allows",
            )


def _only_overridable(check: CheckSpec, allowed: frozenset[str], path: str) -> None:
    given = check.model_dump(exclude_none=True, by_alias=True)
    for name in given:
        if name != "name" and name not in allowed:
            shown = ", ".join(sorted(allowed)) or "none"
            raise CheckResolutionError(
                f"{path}.{name}",
                f"the policy of check '{check.name}' does not let a Rollout override '{name}' "
                f"(overridable: {shown}); ask the policy's owner, or add a check of another name",
            )


def merge_check(base: CheckSpec, override: CheckSpec, path: str = "check") -> CheckSpec:
    """``base`` with every field ``override`` sets; the result is validated again."""
    fields: dict[str, Any] = base.model_dump(exclude_none=True)
    fields.update(override.model_dump(exclude_none=True))
    try:
        return CheckSpec.model_validate(fields)
    except ValidationError as exc:
        message = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise CheckResolutionError(
            path, f"over the policy's check '{base.name}': {message}"
        ) from None
