"""The service's own route settings: what the mesh does for the service at every step.

A rollout changes weights and matches; it carries these settings through every object it
writes, so a service keeps its timeout, retries and circuit breaker while it is being judged.
Each router renders what its mesh supports; `capabilities` says which settings a provider
cannot honour, and the Rollout validator reports them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, model_validator

from canary.model.base import CamelModel, Port
from canary.model.duration import Duration

HeaderName = Annotated[
    str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
]


class Retries(CamelModel):
    """Retry a failed request: how often, how long each try may take, on which failures."""

    attempts: int = Field(ge=0, le=10, description="Retries after the first try.")
    per_try_timeout: Duration | None = Field(default=None, description="Time limit of each try.")
    retry_on: list[str] = Field(
        default_factory=list,
        description="Conditions that trigger a retry, e.g. 5xx, gateway-error, connect-failure.",
    )


class Cors(CamelModel):
    """Cross-origin resource sharing answered by the mesh."""

    allow_origins: list[str] = Field(min_length=1, description="Exact origins, or '*'.")
    allow_methods: list[str] = Field(default_factory=list)
    allow_headers: list[str] = Field(default_factory=list)
    expose_headers: list[str] = Field(default_factory=list)
    max_age: Duration | None = None
    allow_credentials: bool = False


class HeaderEdits(CamelModel):
    """Headers to set (replace), add (append) or remove."""

    set: dict[str, str] = Field(default_factory=dict)
    add: dict[str, str] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.set or self.add or self.remove)


class HeaderRewrites(CamelModel):
    """Header edits on the request (to the service) and on the response (to the client)."""

    request: HeaderEdits = Field(default_factory=HeaderEdits)
    response: HeaderEdits = Field(default_factory=HeaderEdits)


class Mirror(CamelModel):
    """The service's own shadow traffic: a copy of requests sent to another host."""

    host: str = Field(min_length=1, description="Service that receives the copies.")
    port: Port | None = None
    percentage: float = Field(default=100.0, gt=0, le=100)


class ConnectionPool(CamelModel):
    """Connection limits towards the service: the first half of a circuit breaker."""

    max_connections: int | None = Field(default=None, ge=1)
    connect_timeout: Duration | None = None
    http1_max_pending_requests: int | None = Field(default=None, ge=1)
    http2_max_requests: int | None = Field(default=None, ge=1)
    max_requests_per_connection: int | None = Field(default=None, ge=1)


class OutlierDetection(CamelModel):
    """Eject a failing endpoint for a while: the second half of a circuit breaker."""

    consecutive_errors: int = Field(default=5, ge=1, description="Consecutive 5xx before ejection.")
    interval: Duration = Field(default=10.0, description="How often endpoints are scanned.")
    base_ejection_time: Duration = Field(default=30.0)
    max_ejection_percent: int = Field(default=10, ge=0, le=100)


class CircuitBreaker(CamelModel):
    connection_pool: ConnectionPool | None = None
    outlier_detection: OutlierDetection | None = None


class MtlsMode(StrEnum):
    """TLS mode of the traffic to the service (Istio DestinationRule `tls.mode`)."""

    DISABLE = "DISABLE"
    SIMPLE = "SIMPLE"
    MUTUAL = "MUTUAL"
    ISTIO_MUTUAL = "ISTIO_MUTUAL"


class RouteSettings(CamelModel):
    """Per-service resilience and edge settings kept through every step of a rollout."""

    timeout: Duration | None = Field(default=None, description="Whole-request time limit.")
    retries: Retries | None = None
    cors: Cors | None = None
    headers: HeaderRewrites | None = None
    mirror: Mirror | None = None
    circuit_breaker: CircuitBreaker | None = None
    mtls_mode: MtlsMode | None = Field(default=None, description="TLS mode towards the service.")

    @model_validator(mode="after")
    def _per_try_within_timeout(self) -> RouteSettings:
        if (
            self.timeout is not None
            and self.retries is not None
            and self.retries.per_try_timeout is not None
            and self.retries.per_try_timeout > self.timeout
        ):
            raise ValueError(
                "retries.perTryTimeout is longer than timeout: a try can never take longer "
                "than the whole request; lower perTryTimeout or raise timeout"
            )
        return self

    def settings_in_use(self) -> list[str]:
        """Names (camelCase) of the settings this service sets."""
        used: list[str] = []
        for field_name, info in type(self).model_fields.items():
            value = getattr(self, field_name)
            if value is None:
                continue
            if field_name == "circuit_breaker":
                cb: CircuitBreaker = value
                if cb.connection_pool is not None:
                    used.append("circuitBreaker.connectionPool")
                if cb.outlier_detection is not None:
                    used.append("circuitBreaker.outlierDetection")
                continue
            used.append(info.alias or field_name)
        return used
