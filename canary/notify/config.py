"""How the notifier behaves: retry window, backoff, queue bound, where it keeps its state."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Formatter
from urllib.parse import quote


@dataclass(frozen=True)
class NotifyConfig:
    """Settings of a `Notifier`; the defaults suit a controller talking to the real Slack."""

    retry_window: float = 600.0
    """Seconds a message is retried (from when it was queued) before it is dropped."""
    initial_backoff: float = 2.0
    """Seconds before the first retry; doubled at each failure up to ``max_backoff``."""
    max_backoff: float = 60.0
    max_queued: int = 500
    """Messages kept per channel; past it the oldest waiting one is dropped (and counted)."""
    state_dir: Path | None = None
    """Where the pending queue and the Slack message ids are kept across restarts (optional)."""
    rollout_link: str | None = None
    """A page a person can open for one rollout, with ``{namespace}`` and ``{name}`` filled in
    (e.g. the rollout's Grafana dashboard): messages that wait for a person show it as a button.
    None, the default: no button (the message still says what to run). canary's own API is
    not linked: it answers JSON to a bearer token, so a browser following the link gets 401."""
    slack_base_url: str = "https://slack.com/api/"
    """Slack's Web API (tests point it at a local server)."""
    http_timeout: float = 10.0
    """Seconds one HTTP request to Slack or a webhook may take."""
    rate_limit_retries: int = 3
    """In-call retries of a 429 (slack-sdk's RateLimitErrorRetryHandler honours Retry-After)."""
    connection_retries: int = 1
    """In-call retries of a connection error (slack-sdk's ConnectionErrorRetryHandler)."""
    connection_retry_interval: float = 0.5
    plot: bool = True
    """Attach a timeline picture to the Slack thread when a rollout ends (bot-token mode)."""
    idle_poll: float = 1.0
    """Longest the worker sleeps between looks at the queue (it is also woken on enqueue)."""
    webhook_allow: tuple[str, ...] = ()
    """CIDRs notification webhooks may reach although the destination policy refuses them
    (loopback, link-local, the API server: canary.gates.destinations)."""

    def rollout_url(self, namespace: str, name: str) -> str | None:
        """The page of a rollout, or None without ``rollout_link``."""
        if not self.rollout_link:
            return None
        return self.rollout_link.format(namespace=quote(namespace), name=quote(name))


EXAMPLE_LINK = (
    "https://grafana.example.com/d/canary-rollouts?var-namespace={namespace}&var-rollout={name}"
)


class RolloutLinkError(ValueError):
    """A --rollout-link that cannot make a URL; the message says why and what to give."""


def check_rollout_link(template: str) -> str:
    """``template`` if it makes an http(s) URL from ``{namespace}`` and ``{name}`` alone."""
    example = f"e.g. {EXAMPLE_LINK!r}"
    if not template.startswith(("http://", "https://")):
        raise RolloutLinkError(f"--rollout-link {template!r}: not an http(s) URL; {example}")
    try:
        fields = {f for _, f, _, _ in Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise RolloutLinkError(f"--rollout-link {template!r}: {exc}; {example}") from None
    unknown = sorted(fields - {"namespace", "name"})
    if unknown:
        raise RolloutLinkError(
            f"--rollout-link {template!r}: unknown placeholder {{{unknown[0]}}}; only "
            f"{{namespace}} and {{name}} are filled in; {example}"
        )
    return template
