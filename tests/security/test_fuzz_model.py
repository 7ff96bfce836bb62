"""Hypothesis over the loader, the models and policy expansion: whatever a tenant writes, the
answer is a document or a LoadError/PolicyError naming a field, and the work stays bounded
(no expanded query past MAX_EXPANDED_QUERY). A fixed number of examples keeps it quick."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canary.analysis.checks import CheckResolutionError
from canary.analysis.policies import expand
from canary.model.limits import MAX_EXPANDED_QUERY
from canary.model.loader import LoadError, Problem, parse_documents
from canary.model.policy import ClusterAnalysisPolicy

FUZZ = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)

_names = st.sampled_from([f"v{i}" for i in range(6)])
_pieces = st.one_of(
    st.text(alphabet="ab{} ()[]\"'$\\\n", max_size=20),
    _names.map(lambda n: "{{ " + n + " }}"),
)
_values = st.lists(_pieces, max_size=12).map("".join)


@FUZZ
@given(st.text(max_size=400))
def test_any_text_loads_or_names_a_problem(text: str) -> None:
    problems = _problems(text)
    assert all(str(p).startswith("fuzz.yaml") for p in problems)


_scalars = st.one_of(
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.booleans(),
    st.none(),
    st.just("2001-13-45"),
    st.just("9" * 5000),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)


@FUZZ
@given(
    st.fixed_dictionaries(
        {
            "apiVersion": st.just("canary.dev/v1alpha1"),
            "kind": st.sampled_from(["Rollout", "AnalysisPolicy", "NotificationChannel"]),
            "metadata": st.fixed_dictionaries({"name": st.just("x")}, optional={"labels": _json}),
            "spec": _json,
        }
    )
)
def test_any_structure_is_a_resource_or_a_named_problem(document: dict[str, object]) -> None:
    problems = _problems(yaml.safe_dump(document))
    assert all(p.message for p in problems)


@FUZZ
@given(st.dictionaries(_names, _values, max_size=6), _values)
def test_expansion_is_bounded_or_refused(variables: dict[str, str], query: str) -> None:
    policy = ClusterAnalysisPolicy.model_validate(
        {
            "metadata": {"name": "p"},
            "spec": {
                "variables": variables,
                "checks": [{"name": "c", "kind": "custom", "query": query or "x"}],
            },
        }
    )
    try:
        checks = expand(policy)
    except CheckResolutionError as exc:
        refused: CheckResolutionError | None = exc
    else:
        refused = None
        assert len(checks[0].query or "") <= MAX_EXPANDED_QUERY
    assert refused is None or refused.path.startswith("policy.spec.")


def _problems(text: str) -> list[Problem]:
    """The problems loading ``text`` found (none when it loaded); anything but LoadError
    escapes and fails the test."""
    try:
        parse_documents("fuzz.yaml", text)
    except LoadError as exc:
        return exc.problems
    return []
