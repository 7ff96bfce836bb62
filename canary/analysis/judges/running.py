"""The sequential judge's running numbers, as kept in a check's ``judgeState``.

A list of numbers (JSON, and a restarted controller resumes from it): a format tag, the null
ratio and objective they were computed for, the looks (with data) at which each fail test
crossed (0 for never), the current weight with its requests and exposure, the analysis'
exposure, the look at which the promotion evidence crossed (0 for never), the promotion
evidence and its routes' values at the previous look, the grid of running log-likelihood
ratios, then the counts per pod of each side (canary.analysis.judges.pods; at most MAX_PODS a
side, so the state stays bounded whatever a tenant's pods do).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from canary.analysis import stats
from canary.analysis.judges import promotion
from canary.analysis.judges.pods import PodTally
from canary.analysis.stats import FloatArray

FORMAT = 6.0
HEADER = 14  # format, null ratio, null rate, crossed, abs crossed,
# step weight/requests/exposure, total exposure, promotion crossed, the promotion evidence
# (ln) and its routes' at the previous look, whether their nulls moved (pods)
FIXED = HEADER + stats.GRID.size  # the pods' counts follow


def _zeros() -> FloatArray:
    return np.zeros(stats.GRID.size)


@dataclass
class Running:
    """judge_state, unpacked: the tests' running numbers."""

    null_ratio: float
    null_rate: float
    crossed: float = 0.0  # look (with data) at which the comparison crossed 1/alpha (0: never)
    abs_crossed: float = 0.0  # same for the absolute objective
    step_weight: float = -1.0
    step_requests: float = 0.0
    step_exposure: float = 0.0  # what this step's windows could tell (stats.exposure)
    exposure: float = 0.0  # ... and all windows of the analysis
    promoted: float = 0.0  # look at which the promotion evidence reached 1/beta (0: never)
    combined: promotion.Combined = field(default_factory=promotion.Combined)
    loglik: FloatArray = field(default_factory=_zeros)
    canary_pods: PodTally = field(default_factory=PodTally)
    primary_pods: PodTally = field(default_factory=PodTally)

    @classmethod
    def load(cls, saved: list[float], null_ratio: float, null_rate: float) -> Running:
        if not usable(saved) or saved[1:3] != [null_ratio, null_rate]:
            return cls(null_ratio, null_rate)  # new, or the margin/objective changed: restart
        crossed, abs_crossed, weight, requests, step_exposure, exposure, promoted = saved[3:10]
        combined = promotion.Combined(*saved[10:HEADER])
        loglik = np.asarray(saved[HEADER:FIXED], dtype=np.float64)
        canary, used = PodTally.load(saved[FIXED:])
        primary, _ = PodTally.load(saved[FIXED + used :])
        step = (weight, requests, step_exposure, exposure, promoted, combined, loglik)
        return cls(null_ratio, null_rate, crossed, abs_crossed, *step, canary, primary)

    def dump(self) -> list[float]:
        head = [FORMAT, self.null_ratio, self.null_rate, self.crossed, self.abs_crossed]
        head += [self.step_weight, self.step_requests, self.step_exposure, self.exposure]
        head += [self.promoted, *self.combined.dump()]
        sums: list[float] = self.loglik.tolist()
        return head + sums + self.canary_pods.dump() + self.primary_pods.dump()


def usable(saved: list[float]) -> bool:
    """Whether ``saved`` is a state of this format (anything else starts over)."""
    return len(saved) >= FIXED and saved[0] == FORMAT
