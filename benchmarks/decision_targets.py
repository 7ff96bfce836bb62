"""The issue's targets, met or not, by how much and why; and the headline line.

Targets (issue #7): the sequential judge's worst false rollback rate <= 5% everywhere; its blast
radius at least 10x smaller than Flagger's rules; its mean canary requests to detect within 2x
the oracle SPRT; a healthy canary promoted no later than under Flagger's rules at 100 requests a
minute and above.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from decision_grid import (
    AA,
    DETECTED,
    FLAGGER_FAILURE_LIMIT,
    SEQUENTIAL,
    THRESHOLD,
    Cell,
    CellKey,
)
from decision_oracle import Oracle

from canary.sim.scenario import Scenario

FALSE_ROLLBACK_LIMIT = 0.05
BLAST_FACTOR = 10.0
ORACLE_FACTOR = 2.0
PROMOTION_FROM_RATE = 100
PRIOR_BULK = 30.0
"""The sequential judge's prior on "how much worse" has most of its weight between 1.3x and 30x
the null (docs/analysis.md); a true ratio far beyond costs it more than the usual 1.3-1.5x."""
ZERO_FLOOR = 0.5
"""Blast radii are floored at half a request before dividing: a judge that rolls back before a
single bad request was served gets 0.5, not a division by zero."""

HEADLINE = re.compile(
    r"^blast-radius threshold/sequential: (?:\d+(?:\.\d+)?x|n/a); "
    r"worst sequential false rollbacks: \d+(?:\.\d+)?%$"
)

Results = Mapping[tuple[str, CellKey], Cell]


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    goal: str
    result: str
    met: bool | None  # None: nothing to judge it on
    detail: str = ""


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _cells(n: int) -> str:
    return f"{n} cell" if n == 1 else f"{n} cells"


def _span(rates: Sequence[float]) -> str:
    low, high = f"{100 * min(rates):.0f}", f"{100 * max(rates):.0f}"
    return f"{low}%" if low == high else f"{low}-{high}%"


def blast_ratios(results: Results, keys: Sequence[CellKey]) -> list[tuple[CellKey, float]]:
    """Per cell where both threshold and sequential detect: median blast radius ratio."""
    ratios = []
    for key in keys:
        thr, seq = results[(THRESHOLD, key)], results[(SEQUENTIAL, key)]
        thr_blast, seq_blast = thr.blast(), seq.blast()
        if thr.detects and seq.detects and thr_blast and seq_blast:
            ratio = max(thr_blast[0], ZERO_FLOOR) / max(seq_blast[0], ZERO_FLOOR)
            ratios.append((key, ratio))
    return ratios


def worst_false_rollbacks(results: Results, keys: Sequence[CellKey], judge: str) -> Cell | None:
    healthy = [results[(judge, k)] for k in keys if k.effect.healthy]
    return max(healthy, key=lambda c: c.rollback_rate, default=None)


def headline(results: Results, keys: Sequence[CellKey]) -> str:
    """The command's last line."""
    ratios = [r for _, r in blast_ratios(results, keys)]
    ratio = f"{np.median(ratios):.1f}x" if ratios else "n/a"
    worst = worst_false_rollbacks(results, keys, SEQUENTIAL)
    rate = _pct(worst.rollback_rate) if worst else "0.0%"
    return f"blast-radius threshold/sequential: {ratio}; worst sequential false rollbacks: {rate}"


def _false_rollbacks(results: Results, keys: Sequence[CellKey]) -> Target:
    worst = worst_false_rollbacks(results, keys, SEQUENTIAL)
    goal = f"sequential false rollbacks <= {_pct(FALSE_ROLLBACK_LIMIT)} in every A/A cell"
    if worst is None:
        return Target("false rollbacks", goal, "no A/A cell", None)
    low, high = worst.interval()
    result = (
        f"worst {_pct(worst.rollback_rate)} (95% {_pct(low)}-{_pct(high)}), {worst.key.short()}"
    )
    over = [
        results[(SEQUENTIAL, k)]
        for k in keys
        if k.effect.healthy and results[(SEQUENTIAL, k)].rollback_rate > FALSE_ROLLBACK_LIMIT
    ]
    if not over:
        return Target("false rollbacks", goal, result, True)
    parts = []
    for cell in over:
        lo, hi = cell.interval()
        causes = ", ".join(f"{n} {c}" for c, n in cell.causes().most_common())
        noise = "interval includes 5%" if lo <= FALSE_ROLLBACK_LIMIT else "interval above 5%"
        parts.append(
            f"{cell.key.short()}: {_pct(cell.rollback_rate)} ({_pct(lo)}-{_pct(hi)}, {noise}), "
            f"{_pct(cell.rollback_rate - FALSE_ROLLBACK_LIMIT)} points over; causes: {causes}"
        )
    detail = (
        "Over by: "
        + "; ".join(parts)
        + ". A crossing is the fail test reaching 20 (alpha 5% per fail test); a deadline is "
        "an analysis still undecided at the 10-minute inconclusiveDeadline — no crossing of "
        "1/alpha, and the promotion evidence short of 1/beta — rolled back by onUndecided: "
        "rollback. The alpha guarantee covers crossings only: a healthy canary that the traffic "
        "cannot show to be less than 2x worse within the deadline is not promoted (the beta "
        "guarantee), see Decision guarantees."
    )
    return Target("false rollbacks", goal, result, False, detail)


def _blast(
    results: Results,
    keys: Sequence[CellKey],
    looks: Mapping[str, float],
    oracle: Mapping[CellKey, Oracle],
) -> Target:
    goal = f"blast radius >= {BLAST_FACTOR:g}x smaller than Flagger's rules (median over cells)"
    ratios = blast_ratios(results, keys)
    if not ratios:
        return Target("blast radius", goal, "no cell where both detect", None)
    median = float(np.median([r for _, r in ratios]))
    result = (
        f"{median:.1f}x over {_cells(len(ratios))} where both detect "
        f"(range {min(r for _, r in ratios):.1f}x-{max(r for _, r in ratios):.1f}x)"
    )
    if median >= BLAST_FACTOR:
        return Target("blast radius", goal, result, True)
    both = [k for k, _ in ratios]
    ready = Scenario(name="base").canary_ready_seconds / 60.0
    thr_look, seq_look = looks[THRESHOLD], looks[SEQUENTIAL]
    thr_min = float(np.median([results[(THRESHOLD, k)].minutes_to_rollback() or 0.0 for k in both]))
    seq_min = float(
        np.median([results[(SEQUENTIAL, k)].minutes_to_rollback() or 0.0 for k in both])
    )
    seq_looks = max(seq_min - ready, 0.0) * 60.0 / seq_look
    bound = FLAGGER_FAILURE_LIMIT * thr_look / seq_look
    only_seq = sum(
        results[(SEQUENTIAL, k)].detects and not results[(THRESHOLD, k)].detects for k in keys
    )
    only_thr = sum(
        results[(THRESHOLD, k)].detects and not results[(SEQUENTIAL, k)].detects for k in keys
    )
    below = [f"{k.short()} {r:.1f}x" for k, r in ratios if r < 1]
    loose = []
    for key in both:
        healthy = results.get((THRESHOLD, CellKey(key.rate, key.error, AA)))
        if healthy is not None and healthy.rollback_rate > FALSE_ROLLBACK_LIMIT:
            loose.append(healthy.rollback_rate)
    detail = (
        f"Short by {BLAST_FACTOR / median:.1f}x. A canary's bad requests grow with the time it "
        f"serves before the rollback: over these cells Flagger's rules roll back a median of "
        f"{thr_min:.1f} minutes after the new revision ({FLAGGER_FAILURE_LIMIT} failed windows "
        f"of {thr_look:g} s) and the sequential judge {seq_min:.1f} minutes after it (about "
        f"{seq_looks:.1f} looks of {seq_look:g} s), both including {ready:g} minutes of "
        f"readiness. Neither can stop before its first look: where Flagger's rules fail every "
        f"window from the first (5x errors on a 1% primary) the ratio can be at most about "
        f"{FLAGGER_FAILURE_LIMIT} x {thr_look:g} s / {seq_look:g} s = {bound:.0f}x, reached "
        f"only if the sequential judge decides at its first look; it is larger only where "
        f"Flagger's rules fail windows intermittently (p99 just over 500 ms)."
    )
    best = []
    for key in both:
        thr_blast = results[(THRESHOLD, key)].blast()
        if thr_blast is not None:
            best.append(max(thr_blast[0], ZERO_FLOOR) / max(oracle[key].bad, ZERO_FLOOR))
    if best:
        detail += (
            f" The evidence itself sets a floor: even the oracle SPRT, which knows the true "
            f"ratio, lets the canary serve on average the 'oracle bad' requests of the requests "
            f"table before it can decide at alpha 1/20; Flagger's median blast radius over that "
            f"is {np.median(best):.1f}x in the median of these cells (range "
            f"{min(best):.1f}x-{max(best):.1f}x). Where it is under {BLAST_FACTOR:g}x, no test "
            f"held to alpha 1/20 can be expected to reach the target, however often it looks."
        )
    if bound < BLAST_FACTOR:
        detail += (
            f" {BLAST_FACTOR:g}x needs the sequential judge to look at least every "
            f"{FLAGGER_FAILURE_LIMIT * thr_look / BLAST_FACTOR:g} s and decide at once."
        )
    if below:
        detail += (
            f" Where the ratio is under 1 ({', '.join(below)}) the regression is mild: the "
            f"sequential judge must show the canary worse than 1 + margin times its primary, "
            f"while Flagger's fixed 1% bound, below the canary's own error rate there, fails "
            f"nearly every window."
        )
    if loose:
        detail += (
            f" In {len(loose)} of the {len(both)} cells Flagger's rules also roll back "
            f"{_span(loose)} of healthy canaries: part of their speed there is a bound that "
            f"fails everything near the primary's rate."
        )
    detail += (
        f" The sequential judge detects (>= {DETECTED:.0%}) in {_cells(only_seq)} where Flagger's "
        f"rules do not, Flagger's rules in {only_thr} where it does not; those cells are not "
        f"in the ratio."
    )
    return Target("blast radius", goal, result, False, detail)


def _oracle(results: Results, keys: Sequence[CellKey], oracle: Mapping[CellKey, Oracle]) -> Target:
    goal = f"sequential mean canary requests to detect <= {ORACLE_FACTOR:g}x the oracle SPRT"
    rows = []
    for key in keys:
        cell = results[(SEQUENTIAL, key)]
        used = cell.requests_to_detect()
        if cell.detects and used is not None and np.isfinite(oracle[key].requests):
            rows.append((key, used / oracle[key].requests))
    if not rows:
        return Target(
            "requests to detect", goal, "no cell where the sequential judge detects", None
        )
    ratios = [r for _, r in rows]
    result = (
        f"median {np.median(ratios):.2f}x, worst {max(ratios):.2f}x over {_cells(len(rows))} "
        f"where it detects"
    )
    over = [(k, r) for k, r in rows if r > ORACLE_FACTOR]
    if not over:
        return Target("requests to detect", goal, result, True)
    window, tail, other = [], [], []
    for key, ratio in over:
        figure = oracle[key]
        text = f"{key.short()} {ratio:.1f}x"
        if figure.first_window > ORACLE_FACTOR * figure.requests:
            window.append(f"{text} (first window {figure.first_window / figure.requests:.1f}x)")
        elif figure.ratio > PRIOR_BULK:
            blast = results[(SEQUENTIAL, key)].blast()
            bad = f", rolled back after a median {blast[0]:g} bad requests" if blast else ""
            tail.append(f"{text} (true ratio {figure.ratio:,.0f}x{bad})")
        else:
            share = figure.first_window / figure.requests
            other.append(f"{text} (a look at 5% holds {share:.1f}x the oracle)")
    parts = [f"Over in {len(over)} of {len(rows)} cells."]
    if window:
        parts.append(
            "The first window at the first weight already holds more than "
            f"{ORACLE_FACTOR:g}x the oracle's requests, so a judge that looks once a window "
            "cannot use fewer, whatever its test (looking more often than `interval` is the "
            "fix): " + ", ".join(window) + "."
        )
    if tail:
        parts.append(
            "The true ratio is far beyond the mixture's prior (most weight between 1.3x and "
            f"{PRIOR_BULK:g}x): the oracle, knowing it, is convinced by two slow canary "
            "requests (one lifts the evidence to just under 20); the mixture needs a few: "
            + ", ".join(tail)
            + "."
        )
    if other:
        parts.append(
            "Decisions come at look ends (the oracle's figure is a mean over continuous "
            "looks), the mixture pays 1.3-1.5x for not knowing the ratio, and detections that "
            "come after the step to 10% or more use more canary requests than at 5% (each "
            "carries less evidence with fewer primary requests beside it): "
            + ", ".join(other)
            + "."
        )
    return Target("requests to detect", goal, result, False, " ".join(parts))


def _promotion(results: Results, keys: Sequence[CellKey]) -> Target:
    goal = (
        f"healthy canary promoted no later than under Flagger's rules at >= "
        f"{PROMOTION_FROM_RATE} req/min (median minutes)"
    )
    late, compared = [], 0
    for key in keys:
        if not key.effect.healthy or key.rate < PROMOTION_FROM_RATE:
            continue
        seq = results[(SEQUENTIAL, key)].promotion()
        thr = results[(THRESHOLD, key)].promotion()
        if thr is None:
            continue  # Flagger's rules promote too few canaries here for a median
        compared += 1
        if seq is None or seq > thr + 1e-9:
            late.append((key, seq, thr))
    if not compared:
        return Target("promotion time", goal, "no cell to compare", None)
    result = f"later in {len(late)} of {compared} cells"
    if not late:
        return Target("promotion time", goal, result, True)
    parts = []
    for key, seq, thr in late:
        failures = key.rate * key.error / 100.0
        seq_text = "too few promoted" if seq is None else f"{seq:.1f} min"
        by = "" if seq is None else f", {seq - thr:+.1f} min ({seq / thr:.1f}x)"
        parts.append(
            f"{key.short()}: {seq_text} against {thr:.1f}{by}, {failures:g} primary failures/min"
        )
    detail = (
        "Later in: " + "; ".join(parts) + ". A step of the sequential judge passes once its "
        "windows could have shown a 5x canary (its exposure, set by the failures a minute) or, "
        "for a quiet step, after a set time with no sign of harm; Flagger's rules pass "
        "every window within the bounds. Below about 10 failures a minute the exposure comes "
        "slowly: this is the price of not promoting a 5x canary unseen."
    )
    return Target("promotion time", goal, result, False, detail)


def targets(
    results: Results,
    keys: Sequence[CellKey],
    oracle: Mapping[CellKey, Oracle],
    looks: Mapping[str, float],
) -> list[Target]:
    """Each target; ``looks``: seconds between each judge's looks."""
    return [
        _false_rollbacks(results, keys),
        _blast(results, keys, looks, oracle),
        _oracle(results, keys, oracle),
        _promotion(results, keys),
    ]
