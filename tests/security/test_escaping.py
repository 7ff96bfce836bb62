"""Text written by a tenant, a webhook or a person, escaped for the sink it lands in: Slack
mrkdwn, PromQL (matchers and label_replace), haproxy.cfg and its runtime API."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from canary.analysis.prometheus import escape_regex, render
from canary.model.notification import NotificationEvent
from canary.model.provider import HaproxySettings
from canary.model.status import CheckResult, Phase, Verdict
from canary.notify.notice import Notice
from canary.notify.slack_blocks import esc, event_message, parent_message, reply_message

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOSTILE = "<!channel> deploy now: <https://evil.example.com|click here> & <@U123>"


def notice() -> Notice:
    return Notice(
        name="podinfo",
        namespace="shop",
        revision="rev-2",
        event=NotificationEvent.WAITING,
        reason="Approved",
        message=f"{HOSTILE} approved promotion",
        time=NOW,
        phase=Phase.WAITING,
        status_message=f"webhook said no: {HOSTILE}",
        waiting_for="promotion",
        checks=[CheckResult(name="error-rate", verdict=Verdict.FAIL, time=NOW, message=HOSTILE)],
    )


@pytest.mark.parametrize("build", [parent_message, reply_message, event_message])
def test_slack_messages_carry_no_mention_or_link_from_text(build: object) -> None:
    message = build(notice())  # type: ignore[operator]
    rendered = json.dumps({"text": message.text, "blocks": message.blocks,
                           "attachments": message.attachments})  # fmt: skip
    assert "<!channel>" not in rendered
    assert "<https://evil" not in rendered
    assert "<@U123>" not in rendered
    assert "&lt;!channel&gt;" in rendered


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(max_size=60))
def test_escaped_text_never_holds_markup_brackets(text: str) -> None:
    out = esc(text)
    assert "<" not in out
    assert ">" not in out
    assert out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == text


def test_label_replace_arguments_are_escaped_for_what_they_are() -> None:
    query = (
        'label_replace(up{pod=~"{{ canary }}"}, "side", "{{ canary }}", "pod", "{{ primary }}-.*")'
    )
    out = render(query, {"canary": "web.v1$1", "primary": "web.v0"})
    # a matcher and label_replace's regex match the name literally; the replacement keeps $
    assert 'pod=~"web\\\\.v1\\\\$1"' in out
    assert '"side", "web.v1$$1"' in out
    assert '"web\\\\.v0-.*")' in out


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_a_value_never_closes_its_string(value: str) -> None:
    template = 'x{a="{{ v }}", b=~"{{ v }}"} and label_replace(x, "d", "{{ v }}", "s", "{{ v }}")'
    out = render(template, {"v": value})
    # every quote the value brings is escaped: only the template's own 12 quotes remain
    unescaped = 0
    i = 0
    while i < len(out):
        if out[i] == "\\":
            i += 2
            continue
        unescaped += out[i] == '"'
        i += 1
    assert unescaped == 12
    assert escape_regex(value).count("\\") >= sum(c in "\\.+*?()|[]{}^$" for c in value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("primaryServer", "primary\nserver evil 10.0.0.1:80"),
        ("canaryServer", "canary weight 100"),
        ("backend", "app;set"),
        ("primaryAddress", "127.0.0.1:80 check\nserver x"),
    ],
)
def test_haproxy_names_with_separators_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as raised:
        HaproxySettings.model_validate({field: value})
    assert raised.value.errors()[0]["loc"] == (field,)
