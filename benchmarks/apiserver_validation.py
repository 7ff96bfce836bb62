"""The API server stand-in's check of a write, before and after the compiled fast path.

`canary.testing.validation.check` is what the stand-in runs on every write of a custom
resource: prune and default, the schema, the CEL rules. This measures N status writes of a
realistic Rollout (a Progressing canary at step 3 with two checks' results, two analysis
windows, conditions and an outbox; the spec unchanged, as the controller's status writes leave
it) through `check`, with the chart's Rollout CRD:

- **before**: the fast path taken out (`fast_schema.passes` answering "no", so `jsonschema`'s
  `iter_errors` decides every write, as the code did before);
- **after**: the code as it is (the compiled check answers; `jsonschema` only for a refusal);
- **refused**: the same writes with one field wrong (`status.canaryWeight: "ten"`), as it is:
  the compiled check refuses, then `jsonschema` words the cause (the cost of the slow path).

The CEL rules are left out of the CRD, as benchmarks/scale.py leaves them out (cel-python's
~20 ms a write would hide the rest; see `scale_cluster.canary_crds`). The before and after run
in alternating rounds in one process (a busy, shared machine slows both alike: the ratio is the
figure); each round's figure is this process's CPU time per write.

Run: ``nice -n 10 .venv/bin/python benchmarks/apiserver_validation.py`` (``--quick`` for a few
rounds); ``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from scale_cluster import canary_crds, rollout

from canary.testing import fast_schema, validation

Json = dict[str, Any]


def rollout_schema() -> Json:
    crd = next(d for d in canary_crds() if d["spec"]["names"]["kind"] == "Rollout")
    schema: Json = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _side(requests: int, failures: int) -> Json:
    return {"requests": requests, "failures": failures, "value": failures / max(requests, 1)}


def status(n: int) -> Json:
    """The status a controller writes at its n-th tick of a progressing canary."""
    when = f"2026-12-06T07:{n % 60:02d}:00Z"
    checks = [
        {
            "name": "request-success-rate",
            "verdict": "pass",
            "time": when,
            "weight": 30,
            "judge": "sequential",
            "canary": _side(1200 + n, 3),
            "primary": _side(2800 + n, 6),
            "statistic": 0.42,
            "noData": False,
            "decisive": False,
            "message": "canary error rate 0.25% vs primary 0.21%",
            "kind": "error-rate",
            "objective": 0.01,
        },
        {
            "name": "request-duration",
            "verdict": "inconclusive",
            "time": when,
            "weight": 30,
            "judge": "sequential",
            "canary": {**_side(1200 + n, 0), "quantile": 0.21, "quantileLow": 0.19},
            "primary": {**_side(2800 + n, 0), "quantile": 0.2, "quantileHigh": 0.22},
            "statistic": 1.3,
            "noData": False,
            "decisive": False,
            "message": "p99 0.21s vs 0.20s",
            "kind": "latency",
            "objective": 0.5,
            "quantileLabel": "p99",
        },
    ]
    windows = [
        {
            "name": name,
            "ticks": n,
            "canaryRequests": 1200 + n,
            "canaryFailures": 3,
            "primaryRequests": 2800 + n,
            "primaryFailures": 6,
            "judgeState": [0.1, -0.4, 2.5],
            "windowEnd": when,
        }
        for name in ("request-success-rate", "request-duration")
    ]
    condition = {
        "type": "Promoted",
        "status": "Unknown",
        "reason": "Progressing",
        "message": "canary at 30%",
        "lastTransitionTime": when,
    }
    return {
        "phase": "Progressing",
        "observedGeneration": 2,
        "canaryWeight": 30,
        "stepIndex": 3,
        "iteration": n,
        "failedChecks": 0,
        "canaryRevision": "7d9f8c6b5",
        "stableRevision": "5c4b3a291",
        "checks": checks,
        "analysis": windows,
        "conditions": [condition],
        "message": "step 3: 30% to the canary",
        "startedAt": "2026-12-06T07:00:00Z",
        "analysisStartedAt": "2026-12-06T07:00:10Z",
        "stepStartedAt": when,
        "lastTickAt": when,
        "outbox": {"decidedAt": when, "events": [], "webhooks": [], "notified": True},
    }


def writes(count: int, *, refused: bool = False) -> list[tuple[Json, Json]]:
    """(the new object, the stored one) for `count` status writes."""
    base = rollout("podinfo", "test", 10, [10, 20, 30, 50], None)
    out = []
    for n in range(count):
        old = {**copy.deepcopy(base), "status": status(n)}
        new = {**copy.deepcopy(base), "status": status(n + 1)}
        if refused:
            new["status"]["canaryWeight"] = "ten"
        out.append((new, old))
    return out


@contextlib.contextmanager
def without_fast_path() -> Iterator[None]:
    """The code as it was: every write checked by jsonschema's iter_errors."""
    passes = fast_schema.passes
    fast_schema.passes = lambda check, body: False  # type: ignore[assignment]
    try:
        yield
    finally:
        fast_schema.passes = passes  # type: ignore[assignment]


def per_write(schema: Json, batch: list[tuple[Json, Json]]) -> tuple[float, list[Any]]:
    """CPU seconds per write, and the results (compared across the variants)."""
    copies = [(copy.deepcopy(new), old) for new, old in batch]
    start = time.process_time()
    results = [validation.check(schema, new, old) for new, old in copies]
    return (time.process_time() - start) / len(batch), results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=2000, help="status writes a round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="200 writes, 3 rounds")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    count, rounds = (200, 3) if args.quick else (args.writes, args.rounds)
    schema = rollout_schema()
    good, bad = writes(count), writes(count, refused=True)
    per_write(schema, good[:10])  # compile both validators before timing
    with without_fast_path():
        per_write(schema, good[:10])
    times: dict[str, list[float]] = {"before": [], "after": [], "refused": []}
    for _ in range(rounds):
        with without_fast_path():
            before, old_results = per_write(schema, good)
        after, new_results = per_write(schema, good)
        refused, refused_results = per_write(schema, bad)
        if old_results != new_results or not all(causes for _, causes, _ in refused_results):
            raise SystemExit("the fast path changed a result: not a benchmark, a bug")
        if any(causes for _, causes, _ in new_results):
            raise SystemExit(f"a realistic status write was refused: {new_results[0][1]}")
        times["before"].append(before)
        times["after"].append(after)
        times["refused"].append(refused)
    median = {k: statistics.median(v) for k, v in times.items()}
    figures = {
        "writes_per_round": count,
        "rounds": rounds,
        "median_us_per_write": {k: round(v * 1e6, 1) for k, v in median.items()},
        "speedup_after_vs_before": round(median["before"] / median["after"], 2),
        "refused_vs_before": round(median["refused"] / median["before"], 2),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
