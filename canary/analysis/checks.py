"""Which checks a rollout runs: the default SLOs, with the rollout's inline checks over them.

Until the shipped AnalysisPolicies arrive (the analysis issue), two default checks stand in for
the provider's built-in policy: ``error-rate`` (at most 1% failed requests, compared with the
primary with a 20% margin) and ``latency`` (p99 at most 500 ms, which is also the latency
objective that slow requests are counted against). The shipped policies replace these defaults
there; the merging rule (inline fields that are set override the check of the same name) stays.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from canary.model.analysis import CheckKind, CheckSpec
from canary.model.rollout import Rollout

LATENCY_OBJECTIVE_MS = 500.0
"""The default latency objective: requests slower than this count as slow."""

DEFAULT_CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec(
        name="error-rate",
        kind=CheckKind.ERROR_RATE,
        max=1.0,
        compare_to_primary=True,
        margin=0.2,
    ),
    CheckSpec(name="latency", kind=CheckKind.LATENCY, max=LATENCY_OBJECTIVE_MS),
)
"""Stand-ins for a provider's built-in policy (replaced by the shipped policies)."""


class CheckResolutionError(ValueError):
    """An inline check that cannot be resolved; ``path`` names the field in the Rollout."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


def resolve_checks(rollout: Rollout) -> list[CheckSpec]:
    """The checks ``rollout`` is judged by, in order: defaults first, then its own checks.

    A rollout with complete inline checks and no policy runs only its own checks. Otherwise
    the defaults apply (a named policy resolves to them until shipped policies exist), and
    each inline check overrides the default of the same name field by field; an inline check
    of another name is added when it says what it measures (its ``kind``).
    """
    analysis = rollout.spec.analysis
    inline = analysis.checks
    own_only = not analysis.policies and any(c.is_complete() for c in inline)
    base: dict[str, CheckSpec] = {} if own_only else {c.name: c for c in DEFAULT_CHECKS}
    resolved = dict(base)
    for index, check in enumerate(inline):
        path = f"spec.analysis.checks[{index}]"
        default = base.get(check.name)
        if default is not None:
            resolved[check.name] = merge_check(default, check, path)
        elif check.kind is None:
            known = ", ".join(base) or "none"
            raise CheckResolutionError(
                f"{path}.name",
                f"check '{check.name}' overrides no known check (known: {known}); "
                "give it a kind to make it a check of its own",
            )
        else:
            resolved[check.name] = check
    return list(resolved.values())


def merge_check(base: CheckSpec, override: CheckSpec, path: str = "check") -> CheckSpec:
    """``base`` with every field ``override`` sets; the result is validated again."""
    fields: dict[str, Any] = base.model_dump(exclude_none=True)
    fields.update(override.model_dump(exclude_none=True))
    try:
        return CheckSpec.model_validate(fields)
    except ValidationError as exc:
        message = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise CheckResolutionError(path, f"over the default '{base.name}': {message}") from None
