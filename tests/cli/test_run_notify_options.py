"""`canary run`'s notification options: --channels (the NotificationChannels file) and
--rollout-link (the page waiting messages link to) reach the notifier."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from canary.cli.main import cli
from canary.cli.run import _notifier
from canary.notify import NotifyConfig

CHANNELS = """\
apiVersion: canary.dev/v1alpha1
kind: NotificationChannel
metadata: {name: deploys}
spec:
  webhook: {url: "http://127.0.0.1:9/hook"}
"""


def test_the_rollout_link_reaches_the_notifier(tmp_path: Path) -> None:
    channels = tmp_path / "channels.yaml"
    channels.write_text(CHANNELS)
    link = (
        "https://grafana.example.com/d/canary-rollouts?var-namespace={namespace}&var-rollout={name}"
    )
    settings = NotifyConfig(state_dir=tmp_path / "notify", rollout_link=link)
    notifier = _notifier(channels, tmp_path / "secrets", settings)
    assert notifier is not None
    try:
        assert notifier.config.rollout_url("shop", "checkout") == (
            "https://grafana.example.com/d/canary-rollouts?var-namespace=shop&var-rollout=checkout"
        )
    finally:
        notifier.close()
    assert _notifier(None, None, settings) is None


def test_run_help_lists_the_options() -> None:
    result = CliRunner().invoke(cli, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--channels" in result.output
    assert "--rollout-link" in result.output
    assert "--api-url" not in result.output, "retired: hidden, accepted with a warning"
