"""Schemathesis against the published OpenAPI: whatever it sends (valid or not, for a known
rollout or any name), no server error, and every answer matches the published schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from api_support import OPERATE, TOKENS, Workspace, progressing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canary.gates.api.app import ApiSettings, create_app
from canary.gates.api.auth import TokenSet
from canary.gates.api.filestore import FileStore
from canary.gates.api.guard import FailureLimiter

KNOWN = {"namespace": "test", "name": "podinfo"}


class VirtualTime:
    """So that generated `wait` timeouts cost no real time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _schema(state_dir: Path) -> schemathesis.BaseSchema:
    clock = VirtualTime()
    # schemathesis sends many bad tokens from one client: the rate limit (tests/security)
    # would answer 429 where it checks for 401
    unlimited = FailureLimiter(max_failures=1 << 30)
    conf = ApiSettings(poll_interval=1.0, clock=clock, sleep=clock.sleep, limiter=unlimited)
    app = create_app(FileStore(state_dir), TokenSet.of(*TOKENS), conf)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


OPERATIONS = [r.ok().label for r in _schema(Path("/nonexistent")).get_all_operations()]


def test_every_endpoint_is_published() -> None:
    assert sorted(OPERATIONS) == [
        "GET /api/v1/namespaces/{namespace}/rollouts/{name}",
        "GET /api/v1/namespaces/{namespace}/rollouts/{name}/wait",
        "GET /api/v1/rollouts",
        "GET /healthz",
        "POST /api/v1/namespaces/{namespace}/rollouts/{name}/abort",
        "POST /api/v1/namespaces/{namespace}/rollouts/{name}/approve",
        "POST /api/v1/namespaces/{namespace}/rollouts/{name}/promote",
        "POST /api/v1/namespaces/{namespace}/rollouts/{name}/retry",
    ]


CASES = [
    (label, mode)
    for label in OPERATIONS
    for mode in ("positive", "negative")
    # /healthz has no parameters to get wrong: there is no negative case to generate
    if not (mode == "negative" and label == "GET /healthz")
]


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_no_server_error_and_answers_match_the_schema(
    workspace: Workspace, label: str, mode: str
) -> None:
    progressing(workspace)
    schema = _schema(workspace.state_dir)
    [operation] = [r.ok() for r in schema.get_all_operations() if r.ok().label == label]
    generation = schemathesis.GenerationMode(mode)
    cases = operation.as_strategy(generation_mode=generation)
    if "{name}" in operation.path and generation is schemathesis.GenerationMode.POSITIVE:
        cases = st.one_of(cases, operation.as_strategy(path_parameters=KNOWN))

    @given(case=cases)
    @settings(
        max_examples=20,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        # Every check but one: the negative cases that drop the Authorization header are
        # undone by the token sent here, and unknown query parameters are tolerated by design.
        case.call_and_validate(
            headers=OPERATE, excluded_checks=[schemathesis.checks.negative_data_rejection]
        )

    run()
