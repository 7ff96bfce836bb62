"""`canary controller` keeps the HTTP libraries' per-request lines (httpx logs every Prometheus
query at INFO) out of its log, unless run with ``--log-level debug``."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from canary.cli.controller import REQUEST_LOGGERS, quiet_request_logs


@pytest.fixture(autouse=True)
def restore_levels() -> Iterator[None]:
    before = {name: logging.getLogger(name).level for name in REQUEST_LOGGERS}
    yield
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)


def test_request_lines_are_left_out_at_info() -> None:
    quiet_request_logs("info")
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
    assert not logging.getLogger("httpcore").isEnabledFor(logging.INFO)


def test_request_lines_are_kept_when_debugging() -> None:
    for name in REQUEST_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    quiet_request_logs("debug")
    assert all(logging.getLogger(name).level == logging.NOTSET for name in REQUEST_LOGGERS)
