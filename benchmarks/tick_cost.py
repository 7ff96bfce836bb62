"""What a tick's API calls cost the controller, before and after the fourth pass of issue 16.

A tick at a judged step makes about three API calls (docs/benchmarks.md, "Controller scale":
the status write, the VirtualService apply, an Event) and the profile of the scale benchmark
put the request path (canary.controller.rest, urllib3) at about a fifth of the controller's
CPU. This measures one status write and one read of a realistic Rollout (a judged status with
eight check results, as the scale benchmark's Rollouts carry) against the API server stand-in
(canary.testing.ApiServer, threads of this process on 127.0.0.1), through `Kube`:

- **before**: the request as canary sent it until issue 16's fourth pass: through
  `urllib3.PoolManager.request`, which parses the URL, normalises a pool key and wraps the
  headers on every call;
- **after**: `canary.controller.rest.send` as it is, straight to the host's connection pool.

Rounds alternate before and after, so a busy, shared machine slows both alike; the figure is
the CPU time of the calling thread (the stand-in's threads are not counted) per call, and the
ratio is the result, not the microseconds.

Run: ``nice -n 10 .venv/bin/python benchmarks/tick_cost.py`` (``--quick`` for a few rounds);
``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import urllib3
from kubernetes import config

from canary.controller import kube as kube_module
from canary.controller import rest
from canary.controller.kinds import ROLLOUT
from canary.controller.kube import Kube, drop_static_token_refresh

sys.path.insert(0, str(Path(__file__).parent))
from scale_cluster import rollout, start_cluster

NAMESPACE = "bench"
NAME = "app-00007"
TIME = "2026-12-06T08:34:18.069557Z"


def judged_status(checks: int = 8) -> dict[str, Any]:
    """A status as a Rollout at a judged step carries it (the scale benchmark's shape)."""
    result = {
        "name": "error-rate",
        "verdict": "pass",
        "time": TIME,
        "weight": 10,
        "judge": "sequential",
        "kind": "error-rate",
        "canary": {"requests": 1000, "failures": 0, "value": 0.0},
        "primary": {"requests": 19000, "failures": 20, "value": 0.10526315789473684},
        "statistic": 0.16565755402554141,
        "noData": False,
        "decisive": False,
        "message": "canary errors 0% vs primary 0.11% (n=1,000), 0x (CS 0x-5.9x), objective "
        "1%, evidence 0.17; shown within 9.6x of the primary (its objective at the primary's "
        "usual 0.1%) or the objective 1% (promotion evidence crossed 22.2222 at look 1): pass",
    }
    return {
        "phase": "Progressing",
        "observedGeneration": 1,
        "canaryWeight": 10,
        "stepIndex": 1,
        "canaryRevision": "75d806c80d",
        "stableRevision": "620b3efa73",
        "checks": [dict(result, weight=5 * (1 + i // 2)) for i in range(checks)],
        "conditions": [
            {
                "type": "Valid",
                "status": "True",
                "reason": "SpecValid",
                "message": "the spec is valid",
                "lastTransitionTime": TIME,
            }
        ],
        "message": "step 2 of 4: 10% to the canary",
        "startedAt": TIME,
        "lastTickAt": TIME,
    }


def send_before(
    api_client: Any,
    method: str,
    path: str,
    *,
    body: Any = None,
    content_type: str = rest.JSON,
    timeout: float,
    query: dict[str, Any] | None = None,
) -> urllib3.BaseHTTPResponse:
    """canary.controller.rest.send before this change: every request through the manager."""
    headers: dict[str, str] = {"Accept": rest.JSON, **api_client.default_headers}
    if api_client.cookie:
        headers["Cookie"] = api_client.cookie
    api_client.update_params_for_auth(headers, [], rest.AUTH_SETTINGS, path, method, None)
    data: bytes | None = None
    if body is not None:
        data = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
        headers["Content-Type"] = content_type
    url = api_client.configuration.host + path + rest.query_of(query or {})
    response: urllib3.BaseHTTPResponse = api_client.rest_client.pool_manager.request(
        method,
        url,
        body=data,
        headers=headers,
        timeout=urllib3.Timeout(total=timeout),
        preload_content=False,
    )
    return response


@contextlib.contextmanager
def code_before() -> Iterator[None]:
    saved = kube_module.send  # type: ignore[attr-defined]
    kube_module.send = send_before  # type: ignore[attr-defined]
    try:
        yield
    finally:
        kube_module.send = saved  # type: ignore[attr-defined]


def calls(kube: Kube, count: int) -> float:
    """CPU seconds of this thread for ``count`` status writes and reads of the Rollout."""
    stored = kube.read(ROLLOUT, NAMESPACE, NAME)
    assert stored is not None
    status = judged_status()
    gc.collect()
    started = time.thread_time()
    for index in range(count):
        status["lastTickAt"] = f"2026-12-06T08:{index // 60 % 60:02d}:{index % 60:02d}Z"
        stored = kube.replace_status(dict(stored, status=status))
        stored = kube.read(ROLLOUT, NAMESPACE, NAME) or stored
    return time.thread_time() - started


def side_by_side(
    rounds: int, count: int, before: Callable[[int], float], after: Callable[[int], float]
) -> dict[str, Any]:
    """Alternating rounds of ``count`` operations: CPU microseconds an operation, and the
    after/before ratio of each round."""
    before(max(1, count // 10))  # warm: connections open, code paths run once
    after(max(1, count // 10))
    old: list[float] = []
    new: list[float] = []
    for _ in range(rounds):
        old.append(before(count) / count)
        new.append(after(count) / count)
    ratios = [a / b for a, b in zip(new, old, strict=True)]
    return {
        "rounds": rounds,
        "count": count,
        "before_us": 1e6 * statistics.median(old),
        "after_us": 1e6 * statistics.median(new),
        "ratio": statistics.median(ratios),
        "ratio_low": min(ratios),
        "ratio_high": max(ratios),
    }


def api_calls(rounds: int, count: int) -> dict[str, Any]:
    api = start_cluster(NAMESPACE)
    try:
        made = rollout(NAME, NAMESPACE, 10.0, [5, 10, 20, 50], None)
        api.create(made)
        api.update_status(ROLLOUT.api_version, "Rollout", NAME, judged_status(), NAMESPACE)
        with tempfile.TemporaryDirectory() as folder:
            path = api.kubeconfig(Path(folder) / "kubeconfig", namespace=NAMESPACE)
            api_client = config.new_client_from_config(config_file=str(path))  # type: ignore[no-untyped-call]
        drop_static_token_refresh(api_client)  # as the controller does
        kube = Kube(api_client)

        def before(n: int) -> float:
            with code_before():
                return calls(kube, n // 2)

        figures = side_by_side(rounds, count, before, lambda n: calls(kube, n // 2))
        stored = api.get(ROLLOUT.api_version, "Rollout", NAME, NAMESPACE)
        assert stored["status"]["checks"] == judged_status()["checks"], "the writes landed"
        return figures
    finally:
        api.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 100")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--count", type=int, default=400, help="calls a round")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    rounds, count = (3, 100) if args.quick else (args.rounds, args.count)
    figures = {"api_call": api_calls(rounds, count)}
    print("| CPU of the calling thread | before | after | after/before (rounds) |")
    print("|---|---:|---:|---:|")
    names = {
        "api_call": "an API call (a judged Rollout's status write or read)",
    }
    for lever, got in figures.items():
        print(
            f"| {names[lever]} | {got['before_us']:.0f} us | {got['after_us']:.0f} us | "
            f"{got['ratio']:.2f} ({got['ratio_low']:.2f}-{got['ratio_high']:.2f}) |"
        )
    print(f"median of {rounds} rounds of {count} each, before and after alternating")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
