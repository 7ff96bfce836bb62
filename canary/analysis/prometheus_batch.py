"""A tick's exact-count checks in one request: their expressions joined, the answer split.

Each check's exact-count expression (canary.analysis.exact.combine: its parts tagged
``__canary_series``, capped by ``topk``) is tagged with its place in the batch by
``label_replace`` on a second synthetic label, ``__canary_check``, and the tagged expressions
are joined with ``or``; the subquery over the look reads them all at once. Every series of the
answer carries the tag of the check whose expression selected it (``or`` keeps every series of
both sides, their tags differing), so splitting on the tag and dropping it gives each check
exactly the series its own query gives: the same counts, one request instead of one a check.
Only checks with the same look (boundaries, resolution, lookback) share a request: the
subquery's range is the look's.
"""

from __future__ import annotations

from collections.abc import Sequence

from canary.analysis.exact import SeriesPoints

CHECK_TAG = "__canary_check"
"""The synthetic label telling which check of the batch a series answers."""


def join(expressions: Sequence[str]) -> str:
    """One expression answering every check's ``expressions``, each series tagged with the
    index of the expression that selected it."""
    return "\nor\n".join(
        f'label_replace((\n{expression}\n), "{CHECK_TAG}", "{index}", "", "")'
        for index, expression in enumerate(expressions)
    )


def split_checks(answer: Sequence[SeriesPoints], count: int) -> list[list[SeriesPoints]]:
    """The answer to `join` of ``count`` expressions, by expression, without the tag (a series
    without a known tag is no check's, and left out)."""
    by_check: list[list[SeriesPoints]] = [[] for _ in range(count)]
    for series in answer:
        tag = series.labels.get(CHECK_TAG)
        if tag is None or not tag.isdecimal() or int(tag) >= count:
            continue
        labels = {k: v for k, v in series.labels.items() if k != CHECK_TAG}
        by_check[int(tag)].append(SeriesPoints(labels, series.points))
    return by_check
