"""The processes of the local demo: two versions, HAProxy, Prometheus and a load generator.

Everything listens on 127.0.0.1 on ports chosen at run time, lives in one work directory
(logs kept there), and is stopped when the stack closes — on success, failure or Ctrl-C.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType

from canary.local.haproxy import start_haproxy
from canary.local.load import LoadGenerator, LoadSpec
from canary.local.processes import ManagedProcess, free_port, port_open
from canary.local.prometheus import ScrapeTarget, render_config, start_prometheus
from canary.local.service import Behaviour
from canary.model.rollout import Rollout
from canary.traffic.haproxy import config


@dataclass(frozen=True)
class Ports:
    """Every address of the stack, picked free at start."""

    primary: str
    canary: str
    frontend: str
    haproxy_metrics: str
    runtime_api: str
    prometheus: str

    @classmethod
    def pick(cls) -> Ports:
        def address() -> str:
            return f"127.0.0.1:{free_port()}"

        return cls(address(), address(), address(), address(), address(), address())


@dataclass
class DemoStack:
    rollout: Rollout
    ports: Ports
    workdir: Path
    v1: Behaviour
    v2: Behaviour
    load: LoadSpec
    scrape_interval: float = 1.0
    processes: list[ManagedProcess] = field(default_factory=list)
    generator: LoadGenerator | None = None
    _stack: ExitStack = field(default_factory=ExitStack)

    @property
    def map_dir(self) -> Path:
        return self.workdir / "maps"

    def start(self) -> DemoStack:
        if self.processes:
            return self  # already running: starting twice would run two of everything
        try:
            self._start_services()
            self._start_haproxy()
            self._start_prometheus()
            self.generator = LoadGenerator(self.load).start()
            self._stack.callback(self.generator.stop)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> DemoStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _start_services(self) -> None:
        for behaviour, address in ((self.v1, self.ports.primary), (self.v2, self.ports.canary)):
            host, _, port = address.rpartition(":")
            process = ManagedProcess(
                f"service {behaviour.version}",
                [
                    sys.executable,
                    "-m",
                    "canary.local.service",
                    f"--host={host}",
                    f"--port={port}",
                    f"--version={behaviour.version}",
                    f"--error-rate={behaviour.error_rate}",
                    f"--latency-ms={behaviour.latency_ms}",
                    f"--latency-sigma={behaviour.latency_sigma}",
                    f"--seed={behaviour.seed}",
                ],
                self.workdir / "logs" / f"service-{behaviour.version}.log",
            )
            self._run(process)
            process.wait_ready(partial(port_open, host, int(port)), 15, f"listening on {address}")

    def _start_haproxy(self) -> None:
        layout = config.Layout(
            listen=self.ports.frontend, metrics=self.ports.haproxy_metrics, map_dir=self.map_dir
        )
        cfg = config.write(self.rollout, layout, self.workdir / "haproxy.cfg")
        process = start_haproxy(cfg, self.ports.runtime_api, self.workdir / "logs")
        self.processes.append(process)
        self._stack.callback(process.stop)

    def _start_prometheus(self) -> None:
        settings = self.rollout.spec.provider.haproxy
        assert settings is not None
        targets = [
            ScrapeTarget("haproxy", self.ports.haproxy_metrics, {}),
            ScrapeTarget("services", self.ports.primary, {"server": settings.primary_server}),
            ScrapeTarget("services", self.ports.canary, {"server": settings.canary_server}),
        ]
        text = render_config(targets, self.scrape_interval)
        process = start_prometheus(text, self.ports.prometheus, self.workdir / "prometheus")
        self.processes.append(process)
        self._stack.callback(process.stop)

    def _run(self, process: ManagedProcess) -> None:
        process.start()
        self.processes.append(process)
        self._stack.callback(process.stop)
