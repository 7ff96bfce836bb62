"""Judges: rules that turn a check's samples into a verdict with its evidence."""

# The built-in judges register themselves on import.
from canary.analysis.judges import mann_whitney, sequential, threshold
from canary.analysis.judges.base import Judge, JudgeError, get_judge, register_judge

__all__ = [
    "Judge",
    "JudgeError",
    "get_judge",
    "mann_whitney",
    "register_judge",
    "sequential",
    "threshold",
]
