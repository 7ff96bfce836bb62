"""Judges: rules that turn a check's samples into a verdict with its evidence."""

from canary.analysis.judges.base import Judge, JudgeError, get_judge, register_judge

__all__ = ["Judge", "JudgeError", "get_judge", "register_judge"]
