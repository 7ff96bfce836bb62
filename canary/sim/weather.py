"""Real traffic in the simulator: what makes failures overdispersed.

Drawn once per run from a stream of its own (seeded from the run's seed), so a world without
any of it draws exactly what it drew before:

- **bursts** common to both versions (a dependency failing): Poisson arrivals, each lasting
  ``burst_seconds`` and multiplying both versions' error rates;
- a **traffic cycle** (the day, compressed or not): requests and both error rates swing
  sinusoidally around their means;
- **pods**: each pod's error rate is the version's times a mean-one log-normal factor; a side
  fails at the mean over its pods, so one canary pod against ten primary pods makes the
  canary's rate a noisy draw even when the version is exactly as good. The runner splits each
  side's requests evenly at random between its pods and reports each pod's counts too, as
  series with a pod label would (canary.analysis.samples.PodCounts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from canary.sim.scenario import Scenario

_WEATHER_STREAM = 7919  # the second word of the weather's seed: apart from the traffic's
_BASELINE_STREAM = 104729  # ... and of the primary's history before the analysis


@dataclass(frozen=True, slots=True)
class Weather:
    """One run's draw of bursts, cycle and pods."""

    burst_starts: tuple[float, ...]
    burst_seconds: float
    burst_multiplier: float
    cycle_amplitude: float
    cycle_seconds: float
    cycle_phase: float
    canary_pods: tuple[float, ...]  # each pod's factor (empty: no pods modelled)
    primary_pods: tuple[float, ...]

    @property
    def canary_pod_factor(self) -> float:
        """The canary's error-rate multiplier: the mean of its pods' factors (1 without)."""
        return sum(self.canary_pods) / len(self.canary_pods) if self.canary_pods else 1.0

    @property
    def primary_pod_factor(self) -> float:
        return sum(self.primary_pods) / len(self.primary_pods) if self.primary_pods else 1.0

    @classmethod
    def draw(cls, scenario: Scenario, seed: int, horizon: float) -> Weather:
        rng = np.random.default_rng([seed, _WEATHER_STREAM])
        starts: tuple[float, ...] = ()
        if scenario.bursts_per_hour > 0:
            count = int(rng.poisson(scenario.bursts_per_hour * horizon / 3600.0))
            starts = tuple(sorted(float(x) for x in rng.uniform(0.0, horizon, size=count)))
        canary: tuple[float, ...] = ()
        primary: tuple[float, ...] = ()
        if scenario.canary_pods > 0:
            canary = _pods(rng, scenario.canary_pods, scenario.pod_error_sd)
            primary = _pods(rng, scenario.primary_pods, scenario.pod_error_sd)
        return cls(
            burst_starts=starts,
            burst_seconds=scenario.burst_seconds,
            burst_multiplier=scenario.burst_error_multiplier,
            cycle_amplitude=scenario.cycle_amplitude,
            cycle_seconds=scenario.cycle_minutes * 60.0,
            cycle_phase=float(rng.uniform(0.0, 2.0 * math.pi)),
            canary_pods=canary,
            primary_pods=primary,
        )

    def volume(self, start: float, end: float) -> float:
        """The mean traffic multiplier over [start, end] (1 without a cycle)."""
        if self.cycle_amplitude <= 0 or end <= start:
            return 1.0
        w = 2.0 * math.pi / self.cycle_seconds
        mean_sin = math.cos(w * start + self.cycle_phase) - math.cos(w * end + self.cycle_phase)
        return 1.0 + self.cycle_amplitude * mean_sin / (w * (end - start))

    def error_factor(self, start: float, end: float) -> float:
        """Both versions' error-rate multiplier over [start, end]: the cycle's, times the
        bursts' share of the window."""
        factor = self.volume(start, end)
        if self.burst_starts and end > start:
            inside = sum(
                max(0.0, min(end, b + self.burst_seconds) - max(start, b))
                for b in self.burst_starts
                if b < end and b + self.burst_seconds > start
            )
            factor *= 1.0 + (self.burst_multiplier - 1.0) * inside / (end - start)
        return factor


def baseline_counts(
    scenario: Scenario, weather: Weather, seed: int, start: float, window: float
) -> tuple[int, int] | None:
    """The primary's (requests, failures) over the ``window`` seconds before ``start`` (at
    most its history) at full traffic, with the weather of that time and its counting noise
    (None: no history). Drawn from a stream of its own, so the run's traffic is what it was
    without it."""
    seconds = min(60.0 * scenario.history_minutes, window)
    if seconds <= 0:
        return None
    rng = np.random.default_rng([seed, _BASELINE_STREAM])
    per_second = scenario.requests_per_minute / 60.0
    expected = per_second * seconds * weather.volume(start - seconds, start)
    requests = int(rng.poisson(expected))
    rate = scenario.primary_error_percent / 100.0 * weather.primary_pod_factor
    rate *= weather.error_factor(start - seconds, start)
    failures = int(rng.binomial(requests, min(max(rate, 0.0), 1.0)))
    return requests, failures


def _pods(rng: np.random.Generator, pods: int, sd: float) -> tuple[float, ...]:
    """``pods`` mean-one log-normal factors."""
    factors = np.exp(rng.normal(-0.5 * sd * sd, sd, size=pods))
    return tuple(float(f) for f in factors)


CALM = Weather((), 60.0, 1.0, 0.0, 86400.0, 0.0, (), ())
"""No bursts, no cycle, no pods."""
