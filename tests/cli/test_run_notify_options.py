"""`canary run`'s notification options: --channels (the NotificationChannels file) and
--api-url (the public URL waiting messages link to) reach the notifier."""

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


def test_api_url_reaches_the_notifier(tmp_path: Path) -> None:
    channels = tmp_path / "channels.yaml"
    channels.write_text(CHANNELS)
    settings = NotifyConfig(state_dir=tmp_path / "notify", api_url="https://canary.example.com")
    notifier = _notifier(channels, tmp_path / "secrets", settings)
    assert notifier is not None
    try:
        assert notifier.config.rollout_url("shop", "checkout") == (
            "https://canary.example.com/api/v1/namespaces/shop/rollouts/checkout"
        )
    finally:
        notifier.close()
    assert _notifier(None, None, settings) is None


def test_run_help_lists_the_options() -> None:
    result = CliRunner().invoke(cli, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--channels" in result.output
    assert "--api-url" in result.output
