"""How the notifier behaves: retry window, backoff, queue bound, where it keeps its state."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
    api_url: str | None = None
    """The public URL of canary's API; messages that wait for a person link to it."""
    rollout_url_template: str = "{api}/api/v1/namespaces/{namespace}/rollouts/{name}"
    """How a rollout's link is built from ``api_url`` (``{api}``, ``{namespace}``, ``{name}``):
    by default the API's own ``GET`` of the rollout (its status and latest check numbers, for a
    ``read`` token); point it at a dashboard instead if you have one."""
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
        """The link to a rollout, or None without ``api_url``."""
        if not self.api_url:
            return None
        return self.rollout_url_template.format(
            api=self.api_url.rstrip("/"), namespace=namespace, name=name
        )
