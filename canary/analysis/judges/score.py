"""Kayenta's score over a tick's checks, and how it settles the Mann-Whitney verdicts.

score = 100 x (weights of the checks that passed) / (weights of the checks with a verdict),
where a check's weight is its ``weight`` (default 1) and "with a verdict" means pass or fail:
inconclusive checks (no data, or a judge still waiting) are left out, as Kayenta leaves out
metrics without data. A ``critical`` check that fails makes the score 0.

- score >= PASS_SCORE (95): the tick passes; a failing Mann-Whitney check is outweighed and
  passes with the score in its message;
- MARGINAL_SCORE (75) <= score < PASS_SCORE: marginal; failing Mann-Whitney checks become
  inconclusive, so the engine holds the weight instead of counting a failure;
- score < MARGINAL_SCORE, or a critical check failed: failing checks stay failed.

Only checks judged by ``mann-whitney`` are changed; the others are counted in the score but
keep their verdicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from canary.model.analysis import CheckSpec, JudgeName
from canary.model.status import CheckResult, Verdict

PASS_SCORE = 95.0
"""Kayenta-like pass threshold: at or above it the checks pass together."""

MARGINAL_SCORE = 75.0
"""Kayenta-like marginal threshold: below it the tick fails; between it and PASS_SCORE the
tick is inconclusive."""

DEFAULT_WEIGHT = 1.0
"""A check's weight in the score when it sets none."""


@dataclass(frozen=True)
class ScoreReport:
    """The score of one tick's checks and what it means."""

    score: float | None  # None: no check had a verdict
    passed_weight: float
    counted_weight: float
    critical_failures: tuple[str, ...] = ()

    @property
    def classification(self) -> str:
        """'pass', 'marginal', 'fail' or 'no-data'."""
        if self.critical_failures:
            return "fail"
        if self.score is None:
            return "no-data"
        if self.score >= PASS_SCORE:
            return "pass"
        if self.score >= MARGINAL_SCORE:
            return "marginal"
        return "fail"

    def describe(self) -> str:
        """'score 67 < marginal 75', 'score 80 < pass 95 (marginal 75)', ..."""
        if self.critical_failures:
            names = ", ".join(f"'{n}'" for n in self.critical_failures)
            return f"critical check {names} failed: score 0"
        if self.score is None:
            return "no score: no check has a verdict"
        shown = f"score {_num(self.score)}"
        if self.score >= PASS_SCORE:
            return f"{shown} >= pass {_num(PASS_SCORE)}"
        if self.score >= MARGINAL_SCORE:
            return f"{shown} < pass {_num(PASS_SCORE)}, >= marginal {_num(MARGINAL_SCORE)}"
        return f"{shown} < marginal {_num(MARGINAL_SCORE)}"


def score(results: Sequence[CheckResult], checks: Sequence[CheckSpec]) -> ScoreReport:
    """The weighted score of ``results``; weights and criticality from ``checks`` by name
    (a result without a check weighs DEFAULT_WEIGHT and is not critical)."""
    specs = {c.name: c for c in checks}
    passed = counted = 0.0
    critical: list[str] = []
    for result in results:
        if result.verdict is Verdict.INCONCLUSIVE:
            continue
        spec = specs.get(result.name)
        weight = spec.weight if spec is not None and spec.weight is not None else DEFAULT_WEIGHT
        counted += weight
        if result.verdict is Verdict.PASS:
            passed += weight
        elif spec is not None and spec.critical:
            critical.append(result.name)
    if critical:
        return ScoreReport(0.0, passed, counted, tuple(critical))
    value = 100.0 * passed / counted if counted > 0 else None
    return ScoreReport(value, passed, counted)


def apply_score(results: list[CheckResult], checks: Sequence[CheckSpec]) -> list[CheckResult]:
    """The results with the score applied to the Mann-Whitney ones (see the module's doc);
    unchanged when no check was judged by mann-whitney or no check has a verdict."""
    judged = JudgeName.MANN_WHITNEY.value
    if not any(r.judge == judged for r in results):
        return results
    report = score(results, checks)
    if report.score is None:
        return results
    return [_settled(r, report) if r.judge == judged else r for r in results]


def _settled(result: CheckResult, report: ScoreReport) -> CheckResult:
    why = report.describe()
    outcome = report.classification
    if result.verdict is not Verdict.FAIL:
        return result.model_copy(update={"message": f"{result.message}; {why}"})
    if outcome == "pass":
        verdict = Verdict.PASS
    elif outcome == "marginal":
        verdict = Verdict.INCONCLUSIVE
    else:
        verdict = Verdict.FAIL
    message = f"{result.message}; {why}: {verdict.value}"
    return result.model_copy(update={"verdict": verdict, "message": message})


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")
