"""FileStore: rollouts from the runner's state files, commands shared across processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from api_support import Workspace, progressing
from engine_harness import World, rollout

from canary.engine import Command, CommandKind
from canary.gates.api import RolloutStore
from canary.gates.api.filestore import CommandInbox, FileStore
from canary.gates.api.store import RolloutNotFoundError, StoreError
from canary.model.gates import ApprovalPoint
from canary.model.status import Phase
from canary.model.strategy import StrategyKind


def test_a_state_file_is_a_rollout_with_its_spec_summary(workspace: Workspace) -> None:
    progressing(workspace)
    store = workspace.store
    assert isinstance(store, RolloutStore)
    [view] = store.list()
    assert (view.namespace, view.name) == ("test", "podinfo")
    assert view.status.phase is Phase.PROGRESSING
    assert view.target_revision == "rev-2"
    assert view.spec is not None
    assert view.spec.strategy is StrategyKind.CANARY
    assert view.spec.weights == [5, 10, 20, 50]
    assert view.spec.failure_limit == 2
    assert store.get("test", "podinfo") == view


def test_without_a_published_rollout_the_view_has_the_status_only(workspace: Workspace) -> None:
    world = World(ro=rollout()).initialized()
    workspace.save(world, publish=False)
    view = workspace.store.get("test", "podinfo")
    assert view.spec is None
    assert view.target_revision is None
    assert view.status.phase is Phase.INITIALIZED


def test_unknown_rollout_names_the_namespace_it_lives_in(workspace: Workspace) -> None:
    progressing(workspace)
    with pytest.raises(RolloutNotFoundError, match=r"namespace default \(found in namespace test"):
        workspace.store.get("default", "podinfo")
    with pytest.raises(RolloutNotFoundError):
        workspace.store.post_command("test", "other", Command(kind=CommandKind.ABORT))


def test_unreadable_state_files_are_skipped_in_lists_and_named_in_gets(
    workspace: Workspace,
) -> None:
    progressing(workspace)
    (workspace.state_dir / "broken.state.json").write_text("{not json")
    assert [v.name for v in workspace.store.list()] == ["podinfo"]
    with pytest.raises(StoreError, match=r"broken\.state\.json is unreadable"):
        workspace.store.get("default", "broken")


def test_commands_are_taken_once_in_the_order_posted(workspace: Workspace) -> None:
    world = progressing(workspace)
    store = workspace.store
    store.post_command("test", "podinfo", Command(kind=CommandKind.PROMOTE, by="ci"))
    point = ApprovalPoint.PROMOTION
    store.post_command("test", "podinfo", Command(kind=CommandKind.APPROVE, point=point, by="a"))
    assert [c.kind for c in store.get("test", "podinfo").pending_commands] == [
        CommandKind.PROMOTE,
        CommandKind.APPROVE,
    ]
    taken = store.take_commands("test", "podinfo")
    assert [(c.kind, c.by) for c in taken] == [
        (CommandKind.PROMOTE, "ci"),
        (CommandKind.APPROVE, "a"),
    ]
    assert store.take_commands("test", "podinfo") == []
    assert store.get("test", "podinfo").pending_commands == []
    # The runner's entry point: the inbox beside its state file is the same queue.
    inbox = CommandInbox.beside(workspace.state_path(world))
    store.post_command("test", "podinfo", Command(kind=CommandKind.ABORT, by="ci"))
    assert [c.kind for c in inbox.take()] == [CommandKind.ABORT]


def test_a_corrupt_commands_file_is_an_error_not_a_silent_loss(workspace: Workspace) -> None:
    world = progressing(workspace)
    inbox = CommandInbox.beside(workspace.state_path(world))
    inbox.path.write_text('{"commands": [{"kind": "explode"}]}')
    with pytest.raises(StoreError, match="move it away"):
        inbox.take()


def _post_many(state_dir: str, who: str, count: int) -> None:
    store = FileStore(Path(state_dir))
    for _ in range(count):
        store.post_command("test", "podinfo", Command(kind=CommandKind.APPROVE, by=who))


def _take_until(state_dir: str, expected: int, queue: multiprocessing.Queue[list[str]]) -> None:
    store = FileStore(Path(state_dir))
    seen: list[str] = []
    for _ in range(20000):
        seen += [c.by for c in store.take_commands("test", "podinfo")]
        if len(seen) >= expected:
            break
    queue.put(seen)


def test_processes_posting_while_another_takes_lose_and_repeat_nothing(
    workspace: Workspace,
) -> None:
    progressing(workspace)
    context = multiprocessing.get_context("fork")
    posters, each = 3, 40
    results: multiprocessing.Queue[list[str]] = context.Queue()
    state_dir = str(workspace.state_dir)
    taker = context.Process(target=_take_until, args=(state_dir, posters * each, results))
    taker.start()
    procs = [
        context.Process(target=_post_many, args=(state_dir, f"p{i}", each)) for i in range(posters)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=30)
    seen = results.get(timeout=30)
    taker.join(timeout=30)
    seen += [c.by for c in workspace.store.take_commands("test", "podinfo")]
    assert sorted(seen) == sorted(f"p{i}" for i in range(posters) for _ in range(each))
