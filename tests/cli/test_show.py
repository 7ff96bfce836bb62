"""How `canary get` shows a check's evidence: a latency quantile as an estimate in its bucket."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from canary.cli.show import checks_table, evidence
from canary.model import CheckKind
from canary.model.status import CheckResult, SideEvidence, Verdict

AT = datetime(2026, 1, 1, tzinfo=UTC)


def latency(canary: SideEvidence, **fields: object) -> CheckResult:
    given: dict[str, object] = {"kind": CheckKind.LATENCY, "objective": 500.0, **fields}
    return CheckResult(name="latency", verdict=Verdict.PASS, time=AT, canary=canary, **given)


def test_the_slow_share_comes_first_then_the_quantile_in_its_bucket() -> None:
    side = SideEvidence(
        requests=2000, failures=7, value=0.35, quantile=612, quantile_low=500, quantile_high=1000
    )
    check = latency(side, quantile_label="p95")
    assert evidence(side, check) == "0.35% >500ms (7/2000), p95~612ms (500-1000)"


def test_the_last_open_bucket_and_an_unknown_bucket() -> None:
    open_bucket = SideEvidence(requests=10, failures=10, quantile=2500, quantile_low=2500)
    assert evidence(open_bucket, latency(open_bucket, quantile_label="p99")) == (
        "100% >500ms (10/10), p99~2500ms (>2500)"
    )
    interpolated = SideEvidence(requests=10, failures=0, value=180.0, quantile=180.0)
    assert evidence(interpolated, latency(interpolated, objective=None)) == (
        "0% slow (0/10), q~180ms"
    )


def test_no_requests_is_no_share() -> None:
    side = SideEvidence(requests=0, failures=0)
    assert evidence(side, latency(side)) == "- >500ms (0/0)"


def test_other_kinds_and_results_without_a_kind_read_as_before() -> None:
    side = SideEvidence(requests=600, failures=12, value=2.0)
    errors = CheckResult(
        name="errors", verdict=Verdict.FAIL, time=AT, canary=side, kind=CheckKind.ERROR_RATE
    )
    assert evidence(side, errors) == "2 (12/600)"
    old = CheckResult(name="latency", verdict=Verdict.PASS, time=AT, canary=side)
    assert evidence(side, old) == "2 (12/600)"
    assert evidence(SideEvidence(value=812.0), latency(SideEvidence())) == "812"


def test_the_checks_table_shows_the_estimate() -> None:
    side = SideEvidence(
        requests=100, failures=3, value=3.0, quantile=833.3, quantile_low=500, quantile_high=1000
    )
    console = Console(width=200, record=True)
    console.print(checks_table([latency(side, quantile_label="p99")]))
    assert "3% >500ms (3/100), p99~833ms (500-1000)" in console.export_text()


def test_a_narrow_terminal_wraps_the_evidence_and_loses_none_of_it() -> None:
    side = SideEvidence(
        requests=1200, failures=7, quantile=412.4, quantile_low=250, quantile_high=500
    )
    check = latency(side, quantile_label="p99", message="canary slow (>500ms) 0.58%: pass")
    console = Console(width=100, record=True)
    console.print(checks_table([check]))
    text = console.export_text()
    for piece in ("0.583% >500ms", "(7/1200),", "p99~412ms", "(250-500)"):
        assert piece in text  # wrapped at spaces, not cut
    assert "…" not in text
