"""What the simulated world is like: traffic, error rates, latency, and how slow deployments are.

Both versions answer with a log-normal latency (median and spread); the canary's errors and
latency are the primary's times a multiplier, so a scenario reads as "the canary is 5x worse".
"""

from __future__ import annotations

from pydantic import Field

from canary.model.base import CamelModel


class Scenario(CamelModel):
    """A synthetic world for `canary simulate`. Defaults describe a healthy service."""

    name: str = Field(min_length=1)
    description: str = ""
    requests_per_minute: float = Field(
        default=600.0, gt=0, description="Live traffic of the service, both versions together."
    )
    primary_error_percent: float = Field(
        default=0.5, ge=0, le=100, description="Share of the primary's requests that fail."
    )
    canary_error_multiplier: float = Field(
        default=1.0, ge=0, description="The canary's error rate as a multiple of the primary's."
    )
    latency_median_ms: float = Field(default=100.0, gt=0, description="The primary's median.")
    latency_sigma: float = Field(
        default=0.4, gt=0, le=3, description="Spread of log-latency (both versions)."
    )
    canary_latency_multiplier: float = Field(
        default=1.0, gt=0, description="The canary's latency as a multiple of the primary's."
    )
    canary_ready_seconds: float = Field(
        default=30.0, ge=0, description="From scaling the canary up to its pods being ready."
    )
    promotion_seconds: float = Field(
        default=45.0, ge=0, description="For the primary to roll out a new revision."
    )
    # Real traffic (canary/sim/weather.py): all off by default.
    bursts_per_hour: float = Field(
        default=0.0, ge=0, le=600, description="Error bursts common to both versions, per hour."
    )
    burst_seconds: float = Field(default=60.0, gt=0, le=3600, description="How long each lasts.")
    burst_error_multiplier: float = Field(
        default=10.0, ge=1, le=1000, description="Both versions' error rates during a burst."
    )
    cycle_amplitude: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="A traffic cycle: requests and both versions' error rates swing by this "
        "share around their means (0.5: from half to one and a half).",
    )
    cycle_minutes: float = Field(
        default=1440.0, gt=0, description="The cycle's period (a day: 1440; compressed: 30)."
    )
    history_minutes: float = Field(
        default=10080.0,
        ge=0,
        le=10080,
        description="How long the primary has served before the new revision, in minutes: the "
        "judge reads its usual failure rate over spec.analysis.baseline (24h by default) or "
        "this, whichever is shorter, as a Prometheus query would; 0: a new service, no history.",
    )
    canary_pods: int = Field(default=0, ge=0, le=1000, description="Canary pods (0: no pods).")
    primary_pods: int = Field(default=10, ge=1, le=1000, description="Primary pods.")
    pod_error_sd: float = Field(
        default=0.0,
        ge=0,
        le=3,
        description="Per-pod variation of the error rate, sd of its log (drawn once per run, "
        "mean one): with canaryPods > 0 each side fails at the mean of its pods' rates, and "
        "each pod's error counts reach the judge (as series with a pod label would).",
    )
    endpoint_share: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Share of requests that reach the endpoint where the canary differs: "
        "canaryErrorMultiplier applies to them only (1: every request).",
    )

    @property
    def canary_error_percent(self) -> float:
        share = self.endpoint_share
        multiplier = share * self.canary_error_multiplier + (1.0 - share)
        return min(100.0, self.primary_error_percent * multiplier)

    @property
    def canary_latency_median_ms(self) -> float:
        return self.latency_median_ms * self.canary_latency_multiplier


# Primary: 0.5% errors; median 100 ms with sigma 0.4, so p99 is about 254 ms and about 3 in
# 100,000 requests are slower than the 500 ms objective.
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(name="healthy", description="the canary behaves exactly like the primary"),
        Scenario(
            name="error-regression",
            description="the canary fails 5x as often: 2.5% errors against the primary's 0.5%",
            canary_error_multiplier=5.0,
        ),
        Scenario(
            name="latency-regression",
            description="the canary is 2.5x slower: p99 about 634 ms against 254 ms, "
            "and about 4% of its requests are slower than 500 ms",
            canary_latency_multiplier=2.5,
        ),
    )
}
"""Built-in scenarios by name."""


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise KeyError(f"unknown scenario '{name}' (known: {known})") from None
