"""Slack notifications through slack-sdk, against a local server standing in for Slack.

`SlackAPI` (notify_support.py) is a local HTTP server that speaks the shape of Slack's Web API
(chat.postMessage, chat.update, files.getUploadURLExternal + the upload URL +
files.completeUploadExternal, and an incoming-webhook URL). slack-sdk's clients are pointed
at it with ``base_url`` (or the webhook URL), so the real slack-sdk code runs, retry handlers
included. Retry waits of canary's own queue run on a fake clock; nothing asserts wall-clock
durations.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from notify_support import (
    CHANNEL_ID,
    TOKEN,
    EngineRun,
    FakeClock,
    SlackAPI,
    error_rate,
    rollout,
    slack_channel,
)

from canary.engine import Command
from canary.engine.observations import CommandKind
from canary.model import Verdict
from canary.notify import MappingSecretSource, Notifier, NotifyConfig
from canary.notify.slack_blocks import GREEN, RED, YELLOW

LINK = "https://grafana.example.com/d/canary-rollouts?var-namespace={namespace}&var-rollout={name}"


@pytest.fixture
def slack() -> Iterator[SlackAPI]:
    server = SlackAPI()
    yield server
    server.close()


def secrets(slack: SlackAPI) -> MappingSecretSource:
    return MappingSecretSource(
        {("slack", "token"): TOKEN, ("slack", "webhook-url"): slack.webhook_url}
    )


def make_notifier(
    slack: SlackAPI, clock: FakeClock, *, webhook: bool = False, **config: Any
) -> Notifier:
    settings: dict[str, Any] = {
        "slack_base_url": slack.base_url,
        "rollout_link": LINK,
        "initial_backoff": 5.0,
        "max_backoff": 60.0,
        "connection_retry_interval": 0.01,
    }
    settings.update(config)
    return Notifier(
        [slack_channel(webhook=webhook)], secrets(slack), NotifyConfig(**settings), clock=clock
    )


def promoted_run(notifier: Notifier) -> int:
    """The real engine promotes rev-2 after one failed tick; every step is notified."""
    run = EngineRun(rollout(["deploys"]))
    ticks = [
        None,
        None,
        [error_rate(Verdict.FAIL, 2.4, 0.5, 812)],
        [error_rate(Verdict.PASS, 0.4, 0.5, 900)],
        [error_rate(Verdict.PASS, 0.3, 0.5, 950)],
        None,
        None,
    ]
    queued = 0
    for checks in ticks:
        result = run.tick(checks)
        queued += notifier.notify(run.ro, result.status, result.events, run.now)
    assert run.status.phase.value == "Succeeded"
    return queued


def blocks_text(params: dict[str, Any]) -> str:
    return json.dumps([params.get("blocks"), params.get("attachments")], ensure_ascii=False)


def color_of(params: dict[str, Any]) -> str:
    attachments = params["attachments"]
    if isinstance(attachments, str):
        attachments = json.loads(attachments)
    return str(attachments[0]["color"])


def assert_promoted_thread(slack: SlackAPI) -> None:
    posts = slack.api_calls("chat.postMessage")
    parents = [c for c in posts if "thread_ts" not in c.params]
    replies = [c for c in posts if "thread_ts" in c.params]
    assert len(parents) == 1, "one message per rollout revision"
    parent_ts = next(ts for ts, p in slack.messages.items() if "thread_ts" not in p)
    assert parents[0].params["channel"] == "#deploys"
    assert "checkout · revision rev-2" in blocks_text(parents[0].params)

    updates = slack.api_calls("chat.update")
    assert len(updates) == 4  # step, verdict, step, promoted (the start posted the parent)
    assert all(u.params["ts"] == parent_ts for u in updates)
    assert all(u.params["channel"] == CHANNEL_ID for u in updates)
    assert color_of(updates[-1].params) == GREEN
    assert "Succeeded" in blocks_text(updates[-1].params)

    assert [r.params["thread_ts"] for r in replies] == [parent_ts] * 4
    texts = [blocks_text(r.params) for r in replies]
    assert "analysis started at weight 10%" in texts[0]
    assert "failed tick 1 of 2" in texts[1]
    assert (
        "error-rate: canary 2.4% (n=812, bad=19) vs primary 0.5% (n=8,120, bad=41) — fail"
        in (texts[1])
    )
    assert "canary weight 50%" in texts[2]
    assert "revision rev-2 promoted" in texts[3]

    assert [c.method for c in slack.api_calls() if c.method.startswith(("files", "upload"))] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]
    complete = slack.api_calls("files.completeUploadExternal")[0].params
    assert complete["channel_id"] == CHANNEL_ID
    assert complete["thread_ts"] == parent_ts
    (png,) = slack.uploads.values()
    assert png.startswith(b"\x89PNG")


def test_one_parent_message_updated_with_thread_replies_and_the_timeline(
    slack: SlackAPI,
) -> None:
    with make_notifier(slack, FakeClock()) as notifier:
        assert promoted_run(notifier) == 5
        assert notifier.flush(15)
        assert notifier.stats.sent == 5
    assert_promoted_thread(slack)


def test_a_rollout_that_waits_for_a_person_says_what_to_run(slack: SlackAPI) -> None:
    ro = rollout(["deploys"], gates={"approvals": ["promotion"]})
    run = EngineRun(ro)
    with make_notifier(slack, FakeClock()) as notifier:
        for checks in (None, None, [error_rate(Verdict.PASS, 0.1, 0.2, 500)]):
            result = run.tick(checks)
            notifier.notify(ro, result.status, result.events, run.now)
        result = run.tick([error_rate(Verdict.PASS, 0.1, 0.2, 500)])
        assert result.status.waiting_for == "promotion"
        notifier.notify(ro, result.status, result.events, run.now)
        assert notifier.flush(10)
        wait_reply = slack.api_calls("chat.postMessage")[-1].params
        text = blocks_text(wait_reply)
        assert "`canary approve checkout --point promotion -n shop`" in text
        assert "`kubectl canary approve checkout --point promotion -n shop`" in text
        assert LINK.format(namespace="shop", name="checkout") in text
        assert color_of(slack.api_calls("chat.update")[-1].params) == YELLOW

        result = run.tick(
            [error_rate(Verdict.PASS, 0.1, 0.2, 500)],
            commands=[Command(kind=CommandKind.APPROVE, point="promotion", by="ann")],
        )
        assert result.status.phase.value == "Promoting"


def test_a_rate_limit_is_retried_after_retry_after(slack: SlackAPI) -> None:
    slack.script.append((429, {"Retry-After": "0"}, {"ok": False, "error": "ratelimited"}))
    run = EngineRun(rollout(["deploys"]))
    with make_notifier(slack, FakeClock()) as notifier:
        result = run.tick()
        notifier.notify(run.ro, result.status, result.events, run.now)
        assert notifier.flush(10)
        assert slack.refused == 1
        assert len(slack.api_calls("chat.postMessage")) == 1
        assert notifier.stats.failed_attempts == 0  # slack-sdk's handler retried in the call


def test_notify_returns_while_slack_holds_the_request(slack: SlackAPI) -> None:
    slack.hold()
    with make_notifier(slack, FakeClock()) as notifier:
        promoted_run(notifier)  # returns although Slack has answered nothing yet
        assert slack.wait_for(lambda: slack.held == 1)
        assert slack.api_calls() == []
        assert notifier.dispatcher.pending() == 5
        slack.release()
        assert notifier.flush(15)
    assert_promoted_thread(slack)


def retry_until(
    notifier: Notifier, slack: SlackAPI, clock: FakeClock, failures: int, step: float = 60
) -> None:
    """Let the worker fail ``failures`` more times, moving the fake clock ``step`` seconds
    (past the backoff) before each."""
    for _ in range(failures):
        seen = notifier.stats.failed_attempts
        clock.advance(step)
        notifier.dispatcher.wake()
        assert slack.wait_for(lambda: notifier.stats.failed_attempts > seen)  # noqa: B023


def test_slack_down_for_a_while_loses_no_message(slack: SlackAPI) -> None:
    slack.down = True
    clock = FakeClock()
    with make_notifier(slack, clock) as notifier:
        promoted_run(notifier)
        assert slack.wait_for(lambda: notifier.stats.failed_attempts >= 1)
        retry_until(notifier, slack, clock, 4)  # 4 minutes of 500s
        assert slack.api_calls() == []
        assert notifier.dispatcher.pending() == 5
        slack.down = False
        clock.advance(60)
        notifier.dispatcher.wake()
        assert notifier.flush(15)
        assert notifier.stats.expired == 0
        assert notifier.stats.sent == 5
    assert_promoted_thread(slack)


def test_slack_down_for_a_minute_mid_rollout_delays_messages_not_the_rollout(
    slack: SlackAPI,
) -> None:
    """The parent message is out; then Slack hangs, then answers 500 for a minute (on the
    notifier's clock; backoff 5 s, 10 s, 20 s). The rollout ticks on to its end meanwhile:
    each notify returns although the worker is stuck in a request. When Slack is back, every
    message goes out, in order, into the same thread."""
    clock = FakeClock()
    run = EngineRun(rollout(["deploys"]))
    ticks = [
        [error_rate(Verdict.FAIL, 2.4, 0.5, 812)],
        [error_rate(Verdict.PASS, 0.4, 0.5, 900)],
        [error_rate(Verdict.PASS, 0.3, 0.5, 950)],
        None,
        None,
    ]
    with make_notifier(slack, clock) as notifier:
        for checks in (None, None):
            result = run.tick(checks)
            notifier.notify(run.ro, result.status, result.events, run.now)
        assert notifier.flush(10)
        assert len(slack.api_calls("chat.postMessage")) == 2  # the parent and a reply

        slack.hold()  # Slack stops answering: the worker's next request hangs
        queued = 0
        for checks in ticks:
            result = run.tick(checks)
            queued += notifier.notify(run.ro, result.status, result.events, run.now)
        assert run.status.phase.value == "Succeeded", "the rollout ended during the outage"
        assert slack.wait_for(lambda: slack.held == 1)
        assert notifier.dispatcher.pending() == queued == 3

        slack.down = True  # ... then answers 500s: a minute of them
        slack.release()
        assert slack.wait_for(lambda: notifier.stats.failed_attempts >= 1)
        retry_until(notifier, slack, clock, 3, step=20)
        assert notifier.stats.failed_attempts == 4
        assert notifier.dispatcher.pending() == 3

        slack.down = False
        clock.advance(60)
        notifier.dispatcher.wake()
        assert notifier.flush(15)
        assert notifier.stats.expired == 0
        assert notifier.stats.sent == 5
    assert_promoted_thread(slack)


def test_connection_refused_then_slack_comes_back(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clock = FakeClock()
    config = NotifyConfig(
        slack_base_url=f"http://127.0.0.1:{port}/api/",
        initial_backoff=5.0,
        connection_retry_interval=0.01,
    )
    channel = slack_channel()
    notifier = Notifier(
        [channel], MappingSecretSource({("slack", "token"): TOKEN}), config, clock=clock
    )
    with notifier:
        run = EngineRun(rollout(["deploys"]))
        result = run.tick()
        notifier.notify(run.ro, result.status, result.events, run.now)
        deadline_ok = False
        for _ in range(500):
            if notifier.stats.failed_attempts >= 1:
                deadline_ok = True
                break
            notifier.flush(0.01)
        assert deadline_ok
        slack = SlackAPI(port=port)
        try:
            clock.advance(60)
            notifier.dispatcher.wake()
            assert notifier.flush(10)
            assert len(slack.api_calls("chat.postMessage")) == 1
        finally:
            slack.close()


def test_past_the_retry_window_a_message_is_dropped_and_counted(
    slack: SlackAPI, caplog: pytest.LogCaptureFixture
) -> None:
    slack.down = True
    clock = FakeClock()
    with make_notifier(slack, clock, retry_window=600.0) as notifier:
        run = EngineRun(rollout(["deploys"]))
        result = run.tick()
        notifier.notify(run.ro, result.status, result.events, run.now)
        assert slack.wait_for(lambda: notifier.stats.failed_attempts >= 1)
        with caplog.at_level(logging.ERROR, logger="canary.notify"):
            retry_until(notifier, slack, clock, 10)  # the 11th failure is 600s after queueing
        assert notifier.stats.expired == 1
        assert notifier.dispatcher.pending() == 0
        assert any("notification dropped" in r.message for r in caplog.records)

        slack.down = False  # later messages still go out: a new parent, then the reply
        result = run.tick()
        notifier.notify(run.ro, result.status, result.events, run.now)
        assert notifier.flush(10)
        posts = slack.api_calls("chat.postMessage")
        assert ["thread_ts" in p.params for p in posts] == [False, True]


def test_repeated_events_are_sent_once(slack: SlackAPI) -> None:
    run = EngineRun(rollout(["deploys"]))
    with make_notifier(slack, FakeClock()) as notifier:
        result = run.tick()
        assert notifier.notify(run.ro, result.status, result.events, run.now) == 1
        assert notifier.notify(run.ro, result.status, result.events, run.now) == 0
        assert notifier.flush(10)
    assert len(slack.api_calls("chat.postMessage")) == 1


def test_queue_and_message_ids_survive_a_restart(slack: SlackAPI, tmp_path: Path) -> None:
    clock = FakeClock()
    run = EngineRun(rollout(["deploys"]))
    first = make_notifier(slack, clock, state_dir=tmp_path)
    result = run.tick()
    first.notify(run.ro, result.status, result.events, run.now)
    assert first.flush(10)  # the parent message is posted
    slack.down = True
    result = run.tick()
    first.notify(run.ro, result.status, result.events, run.now)
    assert slack.wait_for(lambda: first.stats.failed_attempts >= 1)
    first.close()
    assert (tmp_path / "queue.json").exists()

    slack.down = False
    with make_notifier(slack, clock, state_dir=tmp_path) as second:
        clock.advance(60)
        second.dispatcher.wake()
        assert second.flush(10)
    assert len([c for c in slack.api_calls("chat.postMessage") if "thread_ts" not in c.params]) == 1
    (update,) = slack.api_calls("chat.update")
    assert "analysis started at weight 10%" in blocks_text(
        slack.api_calls("chat.postMessage")[-1].params
    )
    assert update.params["ts"] in slack.messages


def test_incoming_webhook_mode_posts_one_message_per_event(slack: SlackAPI) -> None:
    with make_notifier(slack, FakeClock(), webhook=True) as notifier:
        promoted_run(notifier)
        assert notifier.flush(15)
    assert [c.method for c in slack.api_calls()] == ["webhook"] * 5
    posts = slack.webhook_posts
    assert all(p["blocks"][0]["type"] == "header" for p in posts)
    assert "failed tick 1 of 2" in json.dumps(posts[2], ensure_ascii=False)
    assert "canary 2.4% (n=812" in json.dumps(posts[2], ensure_ascii=False)
    assert posts[-1]["attachments"][0]["color"] == GREEN


def test_rolled_back_rollout_is_red_with_the_numbers(slack: SlackAPI) -> None:
    run = EngineRun(rollout(["deploys"]))
    with make_notifier(slack, FakeClock()) as notifier:
        bad = [error_rate(Verdict.FAIL, 7.5, 0.5, 400)]
        for checks in (None, None, bad, bad, None):
            result = run.tick(checks)
            notifier.notify(run.ro, result.status, result.events, run.now)
        assert run.status.phase.value == "Failed"
        assert notifier.flush(15)
    replies = [c for c in slack.api_calls("chat.postMessage") if "thread_ts" in c.params]
    rolled_back = blocks_text(replies[-2].params)
    assert "rolling back revision rev-2" in rolled_back
    assert "canary 7.5% (n=400, bad=30) vs primary 0.5%" in rolled_back
    assert color_of(slack.api_calls("chat.update")[-1].params) == RED
    assert len(slack.uploads) == 1
