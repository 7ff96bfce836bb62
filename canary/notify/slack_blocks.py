"""The Block Kit layout of canary's Slack messages: a parent per revision, replies per event.

Colour is only possible through an attachment, so each message is a header block (rollout and
revision) followed by one coloured attachment holding the rest of the blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from canary.model.notification import NotificationEvent
from canary.model.status import Phase
from canary.notify.notice import Notice, check_summary, describe_wait

GREEN = "#2eb67d"
RED = "#e01e5a"
YELLOW = "#ecb22e"
BLUE = "#1d9bd1"

_EMOJI = {
    NotificationEvent.STARTED: ":rocket:",
    NotificationEvent.STEP: ":arrow_up:",
    NotificationEvent.VERDICT: ":warning:",
    NotificationEvent.WAITING: ":hourglass_flowing_sand:",
    NotificationEvent.PROMOTED: ":white_check_mark:",
    NotificationEvent.ROLLED_BACK: ":rewind:",
    NotificationEvent.FAILED: ":x:",
}
_SECTION_LIMIT = 3000
_HEADER_LIMIT = 150

Block = dict[str, Any]


@dataclass
class SlackMessage:
    text: str
    blocks: list[Block] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)


def color(notice: Notice) -> str:
    """Green promoted, red rolled back or failed, yellow waiting, blue progressing."""
    if notice.phase is Phase.SUCCEEDED or notice.event is NotificationEvent.PROMOTED:
        return GREEN
    if notice.phase in (Phase.ROLLING_BACK, Phase.FAILED) or notice.event in (
        NotificationEvent.ROLLED_BACK,
        NotificationEvent.FAILED,
    ):
        return RED
    if notice.phase in (Phase.WAITING, Phase.PAUSED) or notice.waiting_for:
        return YELLOW
    return BLUE


def parent_message(notice: Notice) -> SlackMessage:
    """The rollout's one message, rewritten (chat.update) as the revision progresses."""
    blocks: list[Block] = [_section(f"*{notice.phase.value}* — {esc(notice.status_message)}")]
    blocks.append(
        {
            "type": "section",
            "fields": [
                _mrkdwn(f"*Canary weight*\n{notice.canary_weight}%"),
                _mrkdwn(f"*Progress*\n{notice.progress}"),
                _mrkdwn(f"*Failed ticks*\n{notice.failed_checks} of {notice.failure_limit}"),
                _mrkdwn(f"*Namespace*\n{esc(notice.namespace)}"),
            ],
        }
    )
    blocks.extend(_wait_blocks(notice))
    blocks.extend(_check_blocks(notice, "Latest checks"))
    blocks.append(_context(notice))
    return _message(notice, _fallback(notice), blocks)


def reply_message(notice: Notice) -> SlackMessage:
    """A thread reply for one event: a step, a verdict with its numbers, a wait, the outcome."""
    blocks = [_section(_event_line(notice))]
    if notice.event is not NotificationEvent.STARTED:
        blocks.extend(_check_blocks(notice, "Checks"))
    blocks.extend(_wait_blocks(notice))
    if notice.timeline and notice.final:
        blocks.append(_context(notice))
    return _message(
        notice,
        esc(f"{notice.reason}: {notice.message}"),
        blocks,
        header=False,
        tint=RED if notice.warning else None,
    )


def event_message(notice: Notice) -> SlackMessage:
    """Incoming-webhook mode (no updates, no threads): the whole picture in one message."""
    blocks: list[Block] = [_section(_event_line(notice))]
    blocks.extend(parent_message(notice).attachments[0]["blocks"])
    return _message(notice, _fallback(notice), blocks)


def _message(
    notice: Notice,
    text: str,
    blocks: list[Block],
    *,
    header: bool = True,
    tint: str | None = None,
) -> SlackMessage:
    top: list[Block] = []
    if header:
        title = f"{notice.name} · revision {notice.revision or '?'}"
        top.append(
            {"type": "header", "text": {"type": "plain_text", "text": _clip(title, _HEADER_LIMIT)}}
        )
    return SlackMessage(
        text=_clip(text, _SECTION_LIMIT),
        blocks=top,
        attachments=[
            {"color": tint or color(notice), "blocks": blocks, "fallback": _clip(text, 300)}
        ],
    )


def _fallback(notice: Notice) -> str:
    revision = notice.revision or "?"
    return esc(f"{notice.key} revision {revision}: {notice.phase.value} — {notice.status_message}")


def _event_line(notice: Notice) -> str:
    line = f"{_EMOJI[notice.event]} *{esc(notice.reason)}*: {esc(notice.message)}"
    if notice.final and notice.started_at is not None:
        minutes = (notice.time - notice.started_at).total_seconds() / 60
        line += f" (after {minutes:.1f} min)"
    return line


def _wait_blocks(notice: Notice) -> list[Block]:
    text = describe_wait(notice)
    if not text:
        return []
    block = _section(f":raising_hand: {esc(text)}")
    if notice.link:
        block["accessory"] = {
            "type": "button",
            "text": {"type": "plain_text", "text": "Open rollout"},
            "url": notice.link,
        }
    return [block]


def _check_blocks(notice: Notice, title: str) -> list[Block]:
    if not notice.checks:
        return []
    lines = [f"*{title}*"]
    for check in notice.checks:
        summary = check_summary(check, notice.units.get(check.name, ""))
        lines.append(f"• `{esc(summary).replace('`', chr(39))}`")
        if check.message:
            lines.append(f"    _{esc(check.message)}_")
    return [_section("\n".join(lines))]


def _context(notice: Notice) -> Block:
    parts = [
        f"canary {esc(notice.revision or '?')}",
        f"stable {esc(notice.stable_revision or '?')}",
    ]
    if notice.started_at is not None:
        parts.append(f"started {_utc(notice.started_at):%Y-%m-%d %H:%M:%S} UTC")
    parts.append(f"updated {_utc(notice.time):%H:%M:%S} UTC")
    return {"type": "context", "elements": [_mrkdwn(" · ".join(parts))]}


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment


def esc(text: str) -> str:
    """Text as Slack mrkdwn shows it literally: ``&``, ``<`` and ``>`` escaped, so that text
    from a rollout, a webhook or a person cannot mention (``<!channel>``, ``<@U123>``) or link
    (``<https://evil|click>``); Slack reads nothing else as markup inside ``<...>``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(_clip(text, _SECTION_LIMIT))}


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
