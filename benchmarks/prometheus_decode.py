"""The metric side of a controller tick, lever by lever, old and new side by side in one process.

The scale benchmark's profile (docs/benchmarks.md, "Controller scale") put about half of the
controller's CPU in one exact-count look: decoding Prometheus' JSON, reading the matrix into
points and rendering the policy's query templates. This measures each on the same input, the
before and the after interleaved in rounds (so a busy, shared machine slows both alike; the
ratio is the figure, not the milliseconds):

- **decode**: the body of an exact-count answer (the scale benchmark's stand-in,
  benchmarks/scale_prometheus.py, answers the istio policy's subquery: six series, a point a
  second over a 10-s look and the 120-s lookback) with the standard library's ``json`` and with
  ``orjson``;
- **parse**: that answer into points, the per-pair loop canary had and the one comprehension
  it has now;
- **render**: the istio policy's two exact-count templates, read character by character each
  time (as before) and from the compiled template (now);

Run: ``nice -n 10 .venv/bin/python benchmarks/prometheus_decode.py`` (``--quick`` for a few
rounds); ``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from canary.analysis import prometheus_template
from canary.analysis.exact import SeriesPoints
from canary.analysis.policies import builtin_policy, expand
from canary.analysis.prometheus_api import _parse_matrix

sys.path.insert(0, str(Path(__file__).parent))
from scale_prometheus import Answers

LOOK = 10.0
LOOKBACK = 120.0
AT = 1_790_000_000.0


def recorded_answer() -> bytes:
    """The stand-in's answer to one exact-count look of rollout 7 at a 20% canary weight."""
    weights = bytes([20] * 16)
    answers = Answers(weights, rps=1000.0)  # type: ignore[arg-type]
    query = (
        '(topk(2001, label_replace((x{destination_workload=~"app-7|app-7-primary"}), '
        '"__canary_series", "requests", "", "") or label_replace((y), "__canary_series", '
        f'"failures", "", "") or label_replace((z), "__canary_series", "quantile", "", "")))'
        f"[{int(LOOK + LOOKBACK + 1)}s:1s]"
    )
    code, body = answers.answer(query, AT)
    assert code == 200, body
    return json.dumps(body).encode()


def parse_matrix_before(raw: list[Any]) -> list[SeriesPoints]:
    """canary's matrix reader before this change: a pair at a time, each under a guard."""
    out = []
    for item in raw:
        metric, values = item.get("metric"), item.get("values")
        points = []
        for pair in values:
            with contextlib.suppress(TypeError, ValueError, IndexError):
                points.append((float(pair[0]), float(pair[1])))
        points.sort()
        out.append(SeriesPoints({str(k): str(v) for k, v in metric.items()}, points))
    return out


def render_before(template: str, variables: dict[str, str]) -> str:
    """The one-pass renderer as it was: the template read again at every call."""
    compiled = prometheus_template.compile_template.__wrapped__(template)  # uncached
    return "".join(
        p if isinstance(p, str) else prometheus_template._fill(p, variables)
        for p in compiled.pieces
    )


def istio_templates() -> list[str]:
    return [
        q
        for check in expand(builtin_policy("istio"))
        for q in (check.requests_query, check.failures_query)
        if check.side_label and q
    ]


def timed(work: Callable[[], object], repeat: int) -> float:
    """Seconds of CPU per call of ``work`` (this thread's, so a busy machine adds little)."""
    started = time.thread_time()
    for _ in range(repeat):
        work()
    return (time.thread_time() - started) / repeat


def side_by_side(
    before: Callable[[], object], after: Callable[[], object], rounds: int, repeat: int
) -> dict[str, float]:
    """Median CPU per call of each, measured in alternating rounds; and their ratio."""
    olds, news = [], []
    for _ in range(rounds):
        olds.append(timed(before, repeat))
        news.append(timed(after, repeat))
    old, new = sorted(olds)[rounds // 2], sorted(news)[rounds // 2]
    return {"before_us": old * 1e6, "after_us": new * 1e6, "ratio": old / new}


def levers(rounds: int, repeat: int) -> dict[str, dict[str, float]]:
    body = recorded_answer()
    result = orjson.loads(body)["data"]["result"]
    if parse_matrix_before(result) != _parse_matrix(result):
        raise SystemExit("the two matrix readers disagree")
    templates = istio_templates()
    variables = {
        "namespace": "shop",
        "canary": "app-7",
        "primary": "app-7-primary",
        "interval": "10s",
        "objective_ms": "500",
    }
    for template in templates:
        if render_before(template, variables) != prometheus_template.render(template, variables):
            raise SystemExit("the two renderers disagree")
    return {
        "decode": side_by_side(
            lambda: json.loads(body), lambda: orjson.loads(body), rounds, repeat
        ),
        "parse": side_by_side(
            lambda: parse_matrix_before(result), lambda: _parse_matrix(result), rounds, repeat
        ),
        "render": side_by_side(
            lambda: [render_before(t, variables) for t in templates],
            lambda: [prometheus_template.render(t, variables) for t in templates],
            rounds,
            repeat * 4,
        ),
        "answer": {"bytes": float(len(body)), "series": float(len(result))},
    }


def report(figures: dict[str, dict[str, float]]) -> str:
    rows = ["| lever | before µs | after µs | before / after |", "|---|---:|---:|---:|"]
    for name, got in figures.items():
        if "ratio" not in got:
            continue
        rows.append(
            f"| {name} | {got['before_us']:.0f} | {got['after_us']:.0f} | {got['ratio']:.1f}x |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few rounds (a smoke test)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    rounds, repeat = (3, 20) if args.quick else (15, 200)
    gc.disable()  # a collection landing in one side's round would tilt the ratio
    try:
        figures = levers(rounds, repeat)
    finally:
        gc.enable()
    print(report(figures))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if all(math.isfinite(f.get("ratio", 1.0)) for f in figures.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
