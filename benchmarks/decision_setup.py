"""What the decision benchmark ran, in words: the rollout, the grid, each judge's parameters."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from decision_grid import ERRORS, JUDGES, MANN_WHITNEY, SEQUENTIAL, THRESHOLD, judge_rollout
from decision_oracle import slow_share

from canary.analysis.checks import resolve_checks
from canary.analysis.judges import mann_whitney, score, sequential
from canary.model.analysis import CheckKind
from canary.model.rollout import Rollout
from canary.sim.scenario import Scenario

_MANN_WHITNEY_CONSTANTS = ("CONFIDENCE", "MIN_WINDOWS", "MAX_WINDOWS", "ALLOWED_DECREASE")
_SCORE_CONSTANTS = ("PASS_SCORE", "MARGINAL_SCORE", "DEFAULT_WEIGHT")


def _constants(module: ModuleType, names: Sequence[str] | None = None) -> str:
    """``NAME value`` for each named constant the module has (a renamed one is left out), or
    with no names for every public numeric constant it defines (UPPER_CASE ints and floats)."""
    if names is None:
        names = [
            n
            for n, v in vars(module).items()
            if n.isupper()
            and not n.startswith("_")
            and isinstance(v, int | float)
            and not isinstance(v, bool)
        ]
    found = [(n, getattr(module, n)) for n in names if hasattr(module, n)]
    return ", ".join(f"`{n}` {v:g}" for n, v in found)


def _duration(seconds: float) -> str:
    return f"{seconds / 60:g}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g}s"


def _analysis(rollout: Rollout) -> str:
    """The rollout's analysis settings (every scalar field, new ones included)."""
    fields: dict[str, Any] = rollout.spec.analysis.model_dump(
        by_alias=True, exclude={"checks", "policies", "judge"}
    )
    parts = []
    for name, value in fields.items():
        if value is None:
            continue
        seconds = name.lower().endswith(("interval", "deadline"))
        shown = _duration(float(value)) if seconds else f"{value}"
        parts.append(f"`{name}` {shown}")
    return ", ".join(parts)


def _checks(rollout: Rollout) -> str:
    parts = []
    for check in resolve_checks(rollout):
        if check.kind is CheckKind.ERROR_RATE:
            parts.append(f"error-rate max {check.max:g}%, margin {check.margin or 0:g}")
        elif check.kind is CheckKind.LATENCY:
            parts.append(f"latency objective {check.max:g} ms, margin {check.margin or 0:g}")
    return "; ".join(parts)


def judge_table(looks: Mapping[str, float]) -> str:
    describe = {
        THRESHOLD: (
            "Flagger's documented rules: each 1-minute window alone, error rate <= 1% "
            "(request success rate >= 99%) and p99 <= 500 ms, the primary not compared; "
            "`threshold: 5` as failureLimit 5 (failed windows over the whole analysis); no "
            "minimum request count (minRequests 1)"
        ),
        MANN_WHITNEY: (
            "Kayenta's defaults as `canary/analysis/judges/mann_whitney.py` and `score.py` "
            "implement them: "
            + _constants(mann_whitney, _MANN_WHITNEY_CONSTANTS)
            + ", allowed increase 1 + the check's margin, effect size ratio of means; score "
            + _constants(score, _SCORE_CONSTANTS)
            + "; the project's failureLimit and minRequests (a window with fewer canary "
            "requests gives no sample)"
        ),
        SEQUENTIAL: (
            "the project default, as the example runs it: spec.analysis detect 2x, alpha 0.05, "
            "beta 0.05, onUndecided rollback; " + _constants(sequential)
        ),
    }
    lines = [
        "| judge | configured as | analysis | looks every | checks |",
        "|---|---|---|---|---|",
    ]
    for judge in JUDGES:
        rollout = judge_rollout(judge)
        lines.append(
            f"| {judge} | {describe[judge]} | {_analysis(rollout)} | "
            f"{_duration(looks[judge])} | {_checks(rollout)} |"
        )
    return "\n".join(lines)


def setup_text(rates: Sequence[int], share: float, looks: Mapping[str, float]) -> str:
    base = Scenario(name="base")
    objective = 500.0
    slow = {
        m: 100 * slow_share(base.latency_median_ms * m, base.latency_sigma, objective)
        for m in (1.0, 1.2, 2.0)
    }
    p99 = {m: base.latency_median_ms * m * math.exp(2.3263 * base.latency_sigma) for m in slow}
    canary_per_min = [r * share for r in rates]
    empty = ", ".join(
        f"{math.exp(-c):.2g} at {r:,}/min" for r, c in zip(rates, canary_per_min, strict=True)
    )
    return "\n".join(
        [
            "### Setup",
            "",
            f"`examples/podinfo-istio.yaml` (weights 5/10/20/50, built-in Istio checks) through "
            f"`canary.sim.simulate` in virtual time: total traffic "
            f"{', '.join(f'{r:,}' for r in rates)} requests a minute, primary error rate "
            f"{' and '.join(f'{e:g}%' for e in ERRORS)}, and canaries that are healthy (A/A), "
            f"fail 1.5x, 2x or 5x as often, or are slower (p99 +20% and +100%: the simulator's "
            f"latency multiplier 1.2 and 2.0). The simulator's latency is log-normal (median "
            f"{base.latency_median_ms:g} ms, sigma {base.latency_sigma:g}), so a multiplier moves "
            f"every quantile, not only p99: p99 {p99[1.0]:.0f} ms on the primary, "
            f"{p99[1.2]:.0f} ms (+20%) and {p99[2.0]:.0f} ms (+100%); requests slower than the "
            f"500 ms objective {slow[1.0]:.4f}%, {slow[1.2]:.4f}% and {slow[2.0]:.2f}%. The "
            f"simulator's canary is ready {base.canary_ready_seconds:g} s after it is scaled up "
            f"and a promotion takes {base.promotion_seconds:g} s.",
            "",
            "- **Detected**: rolled back in at least 50% of runs (a detection rate is any "
            "rollback of a worse canary); **false rollback**: any rollback of an A/A canary "
            "(crossing, failure limit or inconclusive deadline), with a 95% Wilson interval.",
            "- **Blast radius**: the canary's bad requests until the rollback (failed requests "
            "for error effects; requests slower than the latency check's 500 ms objective for "
            "latency effects, summed over the judged windows of the timeline), median and p90 "
            "over the rolled-back runs.",
            f"- **Oracle SPRT**: ln(20) / KL per canary request for the test that knows the "
            f"true ratio, at the first step's {share:.0%} share (every judge starts there), "
            f"against the null the sequential judge tests (1 + the check's margin: 1.2 for "
            f"error rate, 1 for latency); for latency the failure rates are the slow shares "
            f"above.",
            "- **Headline**: median over the cells where both threshold and sequential detect "
            "of the ratio of their median blast radii (each floored at 0.5 request, so a "
            "rollback before any bad request counts as half a request); and the worst "
            "sequential false rollback rate over the A/A cells.",
            "- **Missing values under Flagger's rules**: Flagger counts a metric query without "
            "a value as a failed check; our threshold judge calls a window without canary "
            "requests inconclusive (no data), which holds the weight and rolls back only after "
            "the 10-minute inconclusiveDeadline without a passing window. We kept our judge "
            "(the benchmark uses the public simulator and the judges as they are). It only "
            "matters when windows are empty: the chance of no canary request in a window at "
            f"{share:.0%} is {empty}. At 10 requests a minute Flagger's reading would turn most "
            "of these into failed checks and roll back most canaries, healthy ones included; "
            "ours is the kinder reading for Flagger's rules there. From 100 requests a minute "
            "an empty window is rare and the two readings agree.",
            "",
            judge_table(looks),
        ]
    )
