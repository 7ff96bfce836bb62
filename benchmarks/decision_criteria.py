"""Issue #11's "what done looks like", checked against the decision benchmarks' results.

Each criterion is a line with **met** / **not met** and the numbers behind it; nothing is
bent to pass (a criterion that cannot be judged in a cell says so and why).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from decision_guarantees import CellResult, judge_rollout
from decision_minimum import flagger_schedule, minutes
from decision_pareto import CellChoice, _ratio

from canary.sim.summary import wilson

ALPHA_LIMIT = 0.05
BETA = 0.05
WITHIN = 1.5  # healthy promotion within this many times the exact minimum
FAILURES_A_MINUTE = 10.0  # the primary's failures a minute from which Flagger's pace is a bar
CHEAPER_SHARE = 0.9
NEVER_WORSE = 1.10


@dataclass(frozen=True)
class Verdict:
    name: str
    met: bool
    detail: str

    def line(self) -> str:
        return f"- **{self.name}**: {'**met**' if self.met else '**not met**'}. {self.detail}"


def _where(row: CellResult) -> str:
    cell = row.cell
    return f"{cell.world + ', ' if cell.world else ''}{cell.rate:g}/min, {cell.errors:g}%"


def _seq(rows: Sequence[CellResult]) -> list[CellResult]:
    return [r for r in rows if r.judge == "sequential"]


def false_rollbacks(grid: Sequence[CellResult]) -> Verdict:
    healthy = [r for r in _seq(grid) if r.cell.healthy]
    worst = max(healthy, key=lambda r: r.judged)
    return Verdict(
        f"healthy canaries rolled back by a judgement <= {ALPHA_LIMIT:.0%} in every cell",
        all(r.judged <= ALPHA_LIMIT for r in healthy),
        f"worst {100 * worst.judged:.1f}% ({_where(worst)}) over {len(healthy)} cells.",
    )


def promoted_bad(grid: Sequence[CellResult]) -> Verdict:
    """Promoted share of bad canaries against beta; a cell breaks it when even the 95% Wilson
    interval's low end is above beta (more than sampling can explain)."""
    bad = [r for r in _seq(grid) if r.cell.bad]
    worst = max(bad, key=lambda r: r.promoted)
    broken = [r for r in bad if wilson(round(r.promoted * r.seeds), r.seeds).low > BETA]
    over = [r for r in bad if r.promoted > BETA]
    detail = (
        f"worst {100 * worst.promoted:.1f}% ({_where(worst)}, {worst.cell.canary}) over "
        f"{len(bad)} bad cells; {len(over)} above {BETA:.0%}, {len(broken)} beyond sampling "
        "tolerance (95% Wilson interval entirely above beta)."
    )
    return Verdict(
        f"bad canaries promoted <= beta ({BETA:.0%}) + sampling tolerance", not broken, detail
    )


def undecided(grid: Sequence[CellResult]) -> Verdict:
    """Every undecided run's outcome is in the table; the traffic it needed comes from the
    judge's message (its own estimate) and, per healthy cell, from the exact minimum."""
    rows = [r for r in _seq(grid) if r.undecided > 0]
    runs = sum(round(r.undecided * r.seeds) for r in rows)
    unsaid = sum(r.undecided_unsaid for r in rows)
    return Verdict(
        "undecided runs reported per cell with the outcome taken and the traffic needed",
        unsaid == 0,
        f"{runs:,} sequential runs in {len(rows)} cells ended undecided and were rolled back "
        f"(onUndecided: rollback); the judge's message gave the canary requests still needed "
        f"in {runs - unsaid:,} of them ({unsaid:,} did not: the evidence leaned towards harm, "
        "'holding for more data', and the message says that instead). Per healthy cell the "
        "table also gives the traffic at which the exact minimum fits the deadline.",
    )


def within_minimum(grid: Sequence[CellResult]) -> tuple[Verdict, list[str]]:
    """Median promotion time of all healthy runs against the exact fixed-sample minimum.
    Where the judge promotes fewer than half of the healthy canaries it is judged only if a
    fixed-sample test could have decided within the deadline (otherwise: not judged)."""
    deadline = judge_rollout("sequential").spec.analysis.inconclusive_deadline / 60.0
    notes, ratios, failed, beyond = [], [], [], []
    for row in (r for r in _seq(grid) if r.cell.healthy):
        fixed = row.floors.fixed
        if math.isinf(row.promote_all):
            if row.floors.fixed_last_step > deadline:
                beyond.append(row)
                notes.append(
                    f"{_where(row)}: the judge promotes under half by the deadline, and the "
                    f"exact minimum ({minutes(fixed)} min) is past it too (a decision in "
                    f"{deadline:g} minutes needs about {row.rpm_needed:,.0f}/min)"
                )
            else:
                failed.append(row)
                notes.append(f"{_where(row)}: never, against {fixed:.1f} min")
            continue
        ratio = row.promote_all / fixed
        ratios.append(ratio)
        if ratio > WITHIN:
            failed.append(row)
        notes.append(f"{_where(row)}: {row.promote_all:.1f} / {fixed:.1f} min = {ratio:.2f}x")
    worst = f"{max(ratios):.2f}x" if ratios else "n/a"
    detail = (
        f"median time to promote over all healthy runs / the exact minimum: worst {worst} over "
        f"{len(ratios)} cells; {len(failed)} over {WITHIN}x or never promoted where a test "
        f"could have. Not judged: {len(beyond)} cells where fewer than half are promoted "
        f"within the {deadline:g}-minute inconclusiveDeadline and no fixed-sample test could "
        "decide within it either."
    )
    name = f"healthy canaries promoted within {WITHIN}x of the exact minimum"
    return Verdict(name, not failed, detail), notes


def flagger_pace(grid: Sequence[CellResult]) -> Verdict:
    rollout = judge_rollout("flagger")
    rows = [
        r
        for r in _seq(grid)
        if r.cell.healthy and r.cell.rate * r.cell.errors / 100.0 >= FAILURES_A_MINUTE
    ]
    parts, ok = [], True
    for row in rows:
        schedule = flagger_schedule(rollout, row.cell.scenario())
        ok = ok and row.promote_all <= schedule
        parts.append(f"{_where(row)}: {row.promote_all:.1f} against {schedule:.2f} min")
    return Verdict(
        f"no later than Flagger's fixed schedule where the primary fails >= "
        f"{FAILURES_A_MINUTE:g} requests a minute",
        ok and bool(rows),
        "; ".join(parts) + " (median over all healthy runs; Flagger's schedule: readiness, "
        "one interval a weight, the promotion).",
    )


def cheaper(choices: Sequence[CellChoice], default: bool) -> Verdict:
    ratios = []
    for choice in choices:
        if default:
            ratio = _ratio(choice.default(), choice.flagger_at_default())
        else:
            ratio = _ratio(choice.tuned("sequential"), choice.tuned("flagger"))
        ratios.append(ratio)
    known = [r for r in ratios if r is not None]
    lower = sum(r < 1.0 for r in known)
    worst = max(known) if known else math.nan
    met = bool(known) and lower >= CHEAPER_SHARE * len(choices) and worst <= NEVER_WORSE
    which = (
        "the default settings against Flagger's rules tuned to at most their false rollbacks"
        if default
        else "each family tuned to <= 2% false rollbacks"
    )
    detail = (
        f"{which}: lower in {lower} of {len(choices)} cells ({len(choices) - len(known)} "
        f"without a comparable pair), worst ratio {worst:.2f}."
    )
    scope = "all cells" if any(c.cell.world for c in choices) else "calm cells"
    name = (
        f"expected bad requests lower than Flagger's in >= {CHEAPER_SHARE:.0%} of "
        f"{scope}, never > {NEVER_WORSE - 1:.0%} higher ({'default' if default else 'tuned'})"
    )
    return Verdict(name, met, detail)


def wald_sanity(grid: Sequence[CellResult]) -> Verdict:
    """A consistency check: the judge holds beta, so it cannot beat Wald's floor on average;
    Flagger's rules do not hold beta and may (the check can fail)."""
    rows = [r for r in _seq(grid) if r.cell.healthy]
    below = [r for r in rows if r.analysis_mean < r.wald_at_share]
    closest = min(rows, key=lambda r: r.analysis_mean / max(r.wald_at_share, 1e-9))
    flagger = [r for r in grid if r.judge == "flagger" and r.cell.healthy]
    under = [r for r in flagger if r.analysis_mean < r.wald_at_share]
    shown = "; ".join(
        f"{_where(r)}: {r.analysis_mean:.1f} against {r.wald_at_share:.1f}" for r in under
    )
    return Verdict(
        "the judge never beats Wald's floor (a test holding beta cannot)",
        not below,
        f"mean analysis minutes of healthy runs against Wald's floor for a test promoting as "
        f"often: closest {closest.analysis_mean:.1f} / {closest.wald_at_share:.1f} min "
        f"({_where(closest)}); {len(below)} of {len(rows)} cells below it. Flagger's rules, "
        f"which do not hold beta, go under it in {len(under)} of {len(flagger)} cells"
        f"{': ' + shown if shown else ''}.",
    )


def world_bounds(worlds: Sequence[CellResult]) -> Verdict:
    """Both bounds in the real-traffic rows (issue #11, point 3): healthy canaries rolled back
    by a judgement <= alpha, bad ones promoted <= beta, each beyond sampling tolerance."""
    rows = _seq(worlds)
    breaches = []
    for row in rows:
        if row.cell.healthy:
            share, bound, what = row.judged, ALPHA_LIMIT, "healthy rolled back"
        elif row.cell.bad:
            share, bound, what = row.promoted, BETA, f"{row.cell.canary} promoted"
        else:
            continue
        if wilson(round(share * row.seeds), row.seeds).low > bound:
            breaches.append(f"{_where(row)}: {what} {100 * share:.1f}%")
    return Verdict(
        "both bounds hold in the real-traffic worlds (bursts, cycle, pods)",
        not breaches,
        f"{len(breaches)} breaches beyond sampling tolerance"
        + (f": {'; '.join(breaches)}." if breaches else "."),
    )
