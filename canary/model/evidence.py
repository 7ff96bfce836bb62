"""How a latency check's numbers read in words, for every place a person sees them (the CLI,
Slack, webhooks): the share of requests slower than the objective first — the number the
sequential judge tests — then the quantile as what it is, an estimate inside one histogram
bucket, which no judge compares)."""

from __future__ import annotations

from canary.model.status import CheckResult, SideEvidence


def _number(value: float) -> str:
    return f"{value:.4g}"


def latency_evidence(side: SideEvidence, check: CheckResult) -> str:
    """``1.2% >500ms (12/1000), p99~520ms (500-1000)``; empty when the side has neither."""
    parts = []
    if side.requests is not None and side.failures is not None:
        share = f"{100 * side.failures / side.requests:.3g}%" if side.requests else "-"
        slower = f">{_number(check.objective)}ms" if check.objective is not None else "slow"
        parts.append(f"{share} {slower} ({side.failures}/{side.requests})")
    if side.quantile is not None:
        parts.append(f"{check.quantile_label or 'q'}~{side.quantile:.0f}ms{bucket(side)}")
    return ", ".join(parts)


def bucket(side: SideEvidence) -> str:
    """`` (500-1000)``: the histogram bucket the quantile lies in, `` (>2500)`` for the last."""
    low, high = side.quantile_low, side.quantile_high
    if low is not None and high is not None:
        return f" ({_number(low)}-{_number(high)})"
    if low is not None:
        return f" (>{_number(low)})"
    return ""
