"""Running Prometheus for local mode: scraping HAProxy's exporter and the two versions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from canary.local.processes import ManagedProcess, ProcessError, find_binary


@dataclass(frozen=True)
class ScrapeTarget:
    """One address Prometheus scrapes, with the labels that say what it is."""

    job: str
    address: str
    labels: dict[str, str]


def render_config(targets: list[ScrapeTarget], scrape_interval: float) -> str:
    """prometheus.yml: one job per target group, the side named in a `server` label."""
    jobs: dict[str, list[dict[str, object]]] = {}
    for target in targets:
        jobs.setdefault(target.job, []).append(
            {"targets": [target.address], "labels": dict(target.labels)}
        )
    interval = f"{max(round(scrape_interval * 1000), 100)}ms"
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {"job_name": job, "scrape_interval": interval, "static_configs": statics}
            for job, statics in jobs.items()
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def start_prometheus(
    config_text: str, listen: str, workdir: Path, timeout: float = 30.0
) -> ManagedProcess:
    """Start Prometheus with a fresh data directory and wait until it is ready."""
    binary = find_binary("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(config_text)
    process = ManagedProcess(
        "prometheus",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address={listen}",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ],
        workdir / "prometheus.log",
    )
    process.start()
    url = f"http://{listen}/-/ready"
    try:
        process.wait_ready(lambda: _ready(url), timeout, f"ready at {url}")
    except ProcessError:
        process.stop()
        raise
    return process


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
