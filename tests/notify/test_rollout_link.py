"""The button of a message that waits for a person opens a page a person can open: the one
--rollout-link names, or no button at all (canary's API answers a browser 401)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from notify_support import rollout

from canary.cli.main import cli
from canary.engine.actions import Event
from canary.model import RolloutStatus
from canary.model.notification import NotificationEvent
from canary.model.status import Phase
from canary.notify import NotifyConfig, build_notice
from canary.notify.slack_blocks import parent_message, reply_message

NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
LINK = "https://grafana.example.com/d/canary-rollouts?var-namespace={namespace}&var-rollout={name}"


def _buttons(config: NotifyConfig) -> list[dict[str, object]]:
    ro = rollout(["deploys"], gates={"approvals": ["promotion"]})
    status = RolloutStatus(phase=Phase.PAUSED, canary_revision="rev-2", waiting_for="promotion")
    event = Event(reason="Paused", message="approve", notification=NotificationEvent.WAITING)
    link = config.rollout_url("shop", "checkout")
    notice = build_notice(ro, status, event, NOW, link=link)
    assert notice.commands, "the message says what to run, button or not"
    found = []
    for message in (parent_message(notice), reply_message(notice)):
        blocks = json.dumps([message.blocks, message.attachments])
        found += [b for b in _walk(json.loads(blocks)) if b.get("type") == "button"]
    return found


def _walk(node: object) -> list[dict[str, object]]:
    if isinstance(node, dict):
        return [node, *(n for v in node.values() for n in _walk(v))]
    if isinstance(node, list):
        return [n for v in node for n in _walk(v)]
    return []


def test_without_a_rollout_link_there_is_no_button() -> None:
    assert _buttons(NotifyConfig()) == []


def test_the_button_opens_the_rollout_link_filled_in() -> None:
    [button, *_] = _buttons(NotifyConfig(rollout_link=LINK))
    url = "https://grafana.example.com/d/canary-rollouts?var-namespace=shop&var-rollout=checkout"
    assert button["url"] == url
    assert "/api/v1/" not in str(button["url"])


def test_names_are_quoted_into_the_link() -> None:
    config = NotifyConfig(rollout_link="https://cd.example.com/apps/{namespace}/{name}")
    assert config.rollout_url("a b", "c/d") == "https://cd.example.com/apps/a%20b/c/d"


@pytest.mark.parametrize(
    ("link", "says"),
    [
        ("grafana.example.com/d/x", "not an http(s) URL"),
        ("https://grafana.example.com/d/x?var-rollout={rollout}", "unknown placeholder {rollout}"),
        ("https://grafana.example.com/d/x?var-rollout={name", "expected '}'"),
    ],
)
def test_a_bad_rollout_link_is_refused_naming_the_option(link: str, says: str) -> None:
    result = CliRunner().invoke(cli, ["controller", "--rollout-link", link])
    assert result.exit_code == 2
    assert "--rollout-link" in result.output
    assert says in result.output
    assert "{namespace}" in result.output, "with an example to follow"


def test_the_retired_api_url_is_accepted_with_a_warning() -> None:
    result = CliRunner().invoke(
        cli, ["controller", "--api-url", "https://canary.example.com", "--rollout-link", "x"]
    )
    assert "warning: --api-url is no longer linked from messages" in result.output
    assert result.exit_code == 2  # from the bad --rollout-link, after the warning
