"""Durations as people write them in Kubernetes objects: ``30s``, ``5m``, ``1h30m``, ``250ms``.

In Python a duration is a number of seconds (a float); on the wire it is the string.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from canary.model.limits import MAX_DURATION_SECONDS, MAX_DURATION_TEXT

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class DurationError(ValueError):
    """A value that is not a duration string."""


def parse_duration(text: str) -> float:
    """Seconds in ``text``; raises DurationError naming the accepted forms."""
    if not isinstance(text, str):
        raise DurationError(
            f"a duration is a string such as '30s', '5m' or '1h', not {type(text).__name__} "
            f"{text!r}: write it with a unit"
        )
    if len(text) > MAX_DURATION_TEXT:
        raise DurationError(
            f"a duration is at most {MAX_DURATION_TEXT} characters (got {len(text)}): "
            "write it with larger units, e.g. '36h'"
        )
    if not re.fullmatch(DURATION_PATTERN, text.strip()):
        raise DurationError(
            f"{text!r} is not a duration: use a number and a unit (ms, s, m, h), "
            "e.g. '30s', '5m', '1h30m'"
        )
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text.strip()))
    if seconds > MAX_DURATION_SECONDS:
        raise DurationError(
            f"{text!r} is longer than the longest duration accepted, 366 days ('8784h')"
        )
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact string for ``seconds``: 90 -> '1m30s', 0.25 -> '250ms'."""
    if seconds < 1 and seconds != 0:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if v]
    return "".join(parts) or "0s"


def _validate(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise DurationError(
            f"a duration is a string such as '30s', '5m' or '1h', not the number {value}: "
            f"write '{value}s' for seconds"
        )
    return parse_duration(value)  # type: ignore[arg-type]


Duration = Annotated[
    float,
    BeforeValidator(_validate),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "maxLength": MAX_DURATION_TEXT}),
]
"""Seconds in Python; a string like '30s', '5m' or '1h' in YAML and JSON."""
