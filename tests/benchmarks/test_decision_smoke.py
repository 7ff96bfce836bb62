"""Smoke test of the decision benchmark: it runs end to end and prints its report's shape.

No figure is asserted (a handful of seeds says nothing); the benchmark's numbers live in
docs/benchmarks.md, rewritten by `make bench-decision`.
"""

from __future__ import annotations

import re

from benchmark_support import run_benchmark

HEADLINE = re.compile(
    r"^blast-radius threshold/sequential: (?:\d+(?:\.\d+)?x|n/a); "
    r"worst sequential false rollbacks: \d+(?:\.\d+)?%$"
)


def test_quick_mode_runs_and_ends_with_the_headline() -> None:
    done = run_benchmark(
        "decision.py", "--quick", "--no-write", "--seeds", "3", "--rates", "100", timeout=120
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert HEADLINE.match(lines[-1]), lines[-1]
    for judge in ("threshold", "mann-whitney", "sequential"):
        assert f"false rollbacks: {judge}" in done.stdout
        assert f"detected: {judge}" in done.stdout
    for table in ("Targets", "Healthy canaries (A/A)", "Worse canaries", "oracle SPRT"):
        assert table in done.stdout


def test_the_guarantee_grid_runs_and_prints_every_cell() -> None:
    done = run_benchmark("decision_guarantees.py", "--seeds", "2", "--rates", "3000", timeout=300)
    rows = [line for line in done.stdout.splitlines() if line.startswith("| calm | 3000 |")]
    assert len(rows) == 3 * 7 * 2  # primary errors x canaries x judges
    assert any("| yes | sequential |" in row for row in rows)  # bad cells are marked
    healthy = [row.split(" | ") for row in rows if "| 1x |" in row]
    assert len(healthy) == 3 * 2
    for cells in healthy:  # the floors are printed beside the healthy cells
        exact, wald = float(cells[12]), float(cells[13])
        assert 0 < wald < exact


def test_the_pareto_benchmark_runs_and_ends_with_its_headline() -> None:
    done = run_benchmark(
        "decision_pareto.py", "--seeds", "1", "--rates", "3000", "--errors", "1", timeout=300
    )
    assert "Tuned to false rollbacks <= 2%" in done.stdout
    assert done.stdout.count("| calm | 3000 | 1% | flagger |") == 9
    assert done.stdout.count("| calm | 3000 | 1% | sequential |") == 16
    assert "The default settings against Flagger tuned to them" in done.stdout
    assert "default/flagger: " in done.stdout


def test_the_publishing_run_checks_every_criterion_and_leaves_the_docs_alone() -> None:
    done = run_benchmark("decision_publish.py", "--quick", "--no-write", "--jobs", "1", timeout=600)
    criteria = [line for line in done.stdout.splitlines() if line.startswith("- **")]
    assert len(criteria) == 11  # six on the grid, one on the worlds, four on the tuning
    assert all("**met**" in line or "**not met**" in line for line in criteria)
    assert "| calm | 3000 | 1% | 1x |" not in done.stdout  # the full tables: their own file
    assert "exact minimum" in done.stdout
    assert done.stdout.splitlines()[-1].startswith("headline: median cost ratio")
