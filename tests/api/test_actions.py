"""Each write reaches the engine once, as the command it asked for, and the engine reacts as
docs/engine.md says; writes that do not apply are 409s, unknown rollouts 404s."""

from __future__ import annotations

from api_support import OPERATE, READ, ROLLOUT, Workspace, measured, progressing
from engine_harness import PASS, World, rollout
from fastapi.testclient import TestClient

from canary.engine import CommandKind
from canary.gates.api.audit import JsonlAuditLog
from canary.gates.api.models import AuditOutcome, CommandAccepted
from canary.model.status import Phase


def _post(asgi: TestClient, action: str, body: object = None) -> CommandAccepted:
    response = asgi.post(f"{ROLLOUT}/{action}", headers=OPERATE, json=body)
    assert response.status_code == 202, response.text
    return CommandAccepted.model_validate(response.json())


def test_abort_rolls_the_canary_back_at_the_next_tick(
    asgi: TestClient, workspace: Workspace
) -> None:
    world = progressing(workspace)
    accepted = _post(asgi, "abort")
    assert accepted.command.kind is CommandKind.ABORT
    assert accepted.command.by == "ci"
    assert accepted.audit.by == "ci"
    assert accepted.audit.phase is Phase.PROGRESSING
    result = workspace.tick(world)
    assert world.phase is Phase.ROLLING_BACK
    assert "aborted by ci" in world.status.message  # type: ignore[union-attr]
    assert world.route.canary_weight == 0
    assert any(e.reason == "RollingBack" for e in result.events)
    # Delivered once: the next tick sees no command, and the rollback completes.
    assert workspace.store.take_commands("test", "podinfo") == []
    workspace.tick(world)
    assert world.phase is Phase.FAILED


def test_promote_skips_the_remaining_steps_at_the_next_passing_tick(
    asgi: TestClient, workspace: Workspace
) -> None:
    world = progressing(workspace)
    assert world.status is not None
    assert world.status.canary_weight == 10
    _post(asgi, "promote")
    workspace.tick(world, checks=PASS)
    assert world.phase is Phase.PROMOTING


def test_promote_never_promotes_on_a_failing_tick(asgi: TestClient, workspace: Workspace) -> None:
    from canary.model.status import Verdict

    world = progressing(workspace)
    _post(asgi, "promote")
    workspace.tick(world, checks=measured(Verdict.FAIL))
    assert world.phase is Phase.PROGRESSING
    assert world.status is not None
    assert world.status.promote_requested


def test_approve_opens_the_gate_the_rollout_waits_on(
    asgi: TestClient, workspace: Workspace
) -> None:
    world = World(ro=rollout(gates={"approvals": ["rollout"]})).initialized()
    world.target = "rev-2"
    world.tick()
    assert world.phase is Phase.WAITING
    workspace.save(world)
    assert asgi.get(ROLLOUT, headers=READ).json()["status"]["waitingFor"] == "rollout"
    accepted = _post(asgi, "approve")
    assert accepted.command.point is None
    result = workspace.tick(world)
    assert world.phase is Phase.PROGRESSING
    assert any(e.reason == "Approved" and "ci approved rollout" in e.message for e in result.events)


def test_approve_ahead_of_time_names_the_point(asgi: TestClient, workspace: Workspace) -> None:
    world = progressing(workspace, gates={"approvals": ["promotion"]})
    accepted = _post(asgi, "approve", {"point": "promotion"})
    assert accepted.command.point is not None
    workspace.tick(world, checks=PASS)
    assert world.status is not None
    assert "promotion" in world.status.approvals


def test_retry_runs_a_failed_revision_again(asgi: TestClient, workspace: Workspace) -> None:
    world = progressing(workspace)
    _post(asgi, "abort")
    workspace.tick(world)
    workspace.tick(world)
    assert world.phase is Phase.FAILED
    _post(asgi, "retry")
    workspace.tick(world)
    assert world.phase is Phase.PROGRESSING
    assert world.canary_up


def _conflict(asgi: TestClient, action: str, body: object = None) -> str:
    response = asgi.post(f"{ROLLOUT}/{action}", headers=OPERATE, json=body)
    assert response.status_code == 409, response.text
    assert response.json()["reason"] == "Conflict"
    message: str = response.json()["message"]
    return message


def test_actions_that_do_not_apply_are_409_and_queue_nothing(
    asgi: TestClient, workspace: Workspace
) -> None:
    world = progressing(workspace)
    assert "retry applies to a Failed rollout; rollout test/podinfo is Progressing" in _conflict(
        asgi, "retry"
    )
    assert "nothing waits for approval" in _conflict(asgi, "approve")
    assert "does not ask for approval at promotion (spec.gates.approvals: none)" in _conflict(
        asgi, "approve", {"point": "promotion"}
    )
    _post(asgi, "abort")
    workspace.tick(world)
    workspace.tick(world)
    assert world.phase is Phase.FAILED
    assert "promote applies while Paused or Progressing" in _conflict(asgi, "promote")
    assert "abort applies while Paused or Progressing or Waiting" in _conflict(asgi, "abort")
    assert workspace.store.take_commands("test", "podinfo") == []
    # A new revision after the failure: retrying the old one is pointless.
    world.target = "rev-3"
    workspace.save(world)
    assert "the target now runs rev-3" in _conflict(asgi, "retry")


def test_every_write_is_audited_with_who_asked(asgi: TestClient, workspace: Workspace) -> None:
    progressing(workspace)
    _post(asgi, "abort")
    _conflict(asgi, "retry")
    events = JsonlAuditLog(workspace.audit_path).read()
    assert [(e.action, e.outcome, e.by) for e in events] == [
        (CommandKind.ABORT, AuditOutcome.ACCEPTED, "ci"),
        (CommandKind.RETRY, AuditOutcome.REJECTED, "ci"),
    ]
    assert events[1].message.startswith("retry applies to a Failed rollout")


def test_unknown_rollouts_are_404_for_reads_and_writes(
    asgi: TestClient, workspace: Workspace
) -> None:
    progressing(workspace)
    for method, path in [
        ("GET", "/api/v1/namespaces/test/rollouts/nope"),
        ("POST", "/api/v1/namespaces/test/rollouts/nope/abort"),
        ("GET", "/api/v1/namespaces/prod/rollouts/podinfo/wait?timeout=0"),
    ]:
        response = asgi.request(method, path, headers=OPERATE)
        assert response.status_code == 404
        assert response.json()["reason"] == "NotFound"
    message = asgi.get("/api/v1/namespaces/prod/rollouts/podinfo", headers=READ).json()["message"]
    assert message == "no rollout podinfo in namespace prod (found in namespace test: pass -n)"


def test_invalid_requests_are_422_naming_the_field(asgi: TestClient, workspace: Workspace) -> None:
    progressing(workspace)
    response = asgi.post(f"{ROLLOUT}/approve", headers=OPERATE, json={"point": "lunch"})
    assert response.status_code == 422
    assert response.json()["message"].startswith("body.point:")
    response = asgi.get(f"{ROLLOUT}/wait?timeout=-1", headers=READ)
    assert response.status_code == 422
    assert response.json()["message"].startswith("query.timeout:")


def test_get_shows_recent_check_results_with_their_numbers(
    asgi: TestClient, workspace: Workspace
) -> None:
    progressing(workspace)
    body = asgi.get(ROLLOUT, headers=READ).json()
    assert body["spec"]["weights"] == [5, 10, 20, 50]
    [error_rate, latency] = body["status"]["checks"][-2:]
    assert error_rate["canary"] == {
        "requests": 1200,
        "failures": 18,
        "value": 1.5,
        "quantile": None,
        "quantileLow": None,
        "quantileHigh": None,
    }
    assert latency["canary"]["value"] == 412.0
    listed = asgi.get("/api/v1/rollouts", headers=READ).json()["items"]
    assert [(i["name"], i["phase"], i["canaryWeight"]) for i in listed] == [
        ("podinfo", "Progressing", 10)
    ]
    assert asgi.get("/api/v1/rollouts?namespace=prod", headers=READ).json() == {"items": []}


def test_an_unreadable_state_file_is_503_naming_it(asgi: TestClient, workspace: Workspace) -> None:
    (workspace.state_dir / "broken.state.json").write_text("{half a state")
    response = asgi.get("/api/v1/namespaces/default/rollouts/broken", headers=READ)
    assert response.status_code == 503
    assert "broken.state.json is unreadable" in response.json()["message"]
    assert asgi.get("/api/v1/rollouts", headers=READ).json() == {"items": []}
