"""The incoming API (FastAPI): list and read rollouts, approve, promote, abort, retry, wait.

`create_app(store, tokens)` builds it over any `RolloutStore`; the OpenAPI document is at
``/openapi.json``. Reads need a token of scope ``read`` or ``operate``; writes need
``operate``; a token limited to namespaces reaches only their rollouts. Every write is
recorded (`Audit`) with the token's name as who asked. The `Guard` in front refuses an
unauthenticated request before its body is read, bodies over ``max_body`` bytes, and clients
that keep failing to authenticate (docs/security.md).
"""

# No `from __future__ import annotations` here: FastAPI evaluates the routes' annotations,
# and the wait timeout's bound comes from the settings in create_app's scope.

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from canary import __version__
from canary.engine.observations import CommandKind
from canary.gates.api.audit import Audit, AuditSink
from canary.gates.api.auth import Caller, Scope, TokenSet
from canary.gates.api.guard import MAX_BODY, FailureLimiter, Guard
from canary.gates.api.models import (
    ApiError,
    ApproveRequest,
    CommandAccepted,
    Health,
    RolloutList,
    RolloutSummary,
    RolloutView,
    WaitResult,
)
from canary.gates.api.service import CommandRefusedError, queue_command, wait_answer
from canary.gates.api.store import RolloutNotFoundError, RolloutStore, StoreError
from canary.model.base import DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN
from canary.model.gates import ApprovalPoint
from canary.model.limits import MAX_NAME

log = logging.getLogger("canary.api")

PREFIX = "/api/v1"
ROLLOUT_PATH = PREFIX + "/namespaces/{namespace}/rollouts/{name}"

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "TooLarge",
    422: "Invalid",
    429: "TooManyRequests",
    503: "Unavailable",
}


_RESOLUTION = 0.001
"""Seconds: a wait closer than this to its timeout has timed out (a clock that cannot move by
less, like a virtual one far from zero, never loops on a remainder it cannot sleep)."""


def _monotonic() -> float:
    return time.monotonic()


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ApiSettings:
    """Knobs of the API; the clocks and the sleep are injectable for tests."""

    poll_interval: float = 1.0
    max_wait: float = 600.0
    clock: Callable[[], float] = _monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    now: Callable[[], datetime] = _utcnow
    audit_sinks: Sequence[AuditSink] = field(default_factory=list)
    max_body: int = MAX_BODY
    limiter: FailureLimiter = field(default_factory=FailureLimiter)


class ApiProblemError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = ApiError(reason=_REASONS.get(status, "Error"), message=message)
    return JSONResponse(body.model_dump(by_alias=True), status_code=status, headers=headers)


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    # Every API path may be refused by the Guard: 413 (body too large), 429 (failed logins).
    return {code: {"model": ApiError, "description": _REASONS[code]} for code in (*codes, 413, 429)}


Namespace = Annotated[
    str, Path(pattern=DNS_LABEL_PATTERN, max_length=63, description="The rollout's namespace.")
]
Name = Annotated[
    str,
    Path(
        pattern=DNS_SUBDOMAIN_PATTERN,
        max_length=MAX_NAME,
        description="The rollout's name (at most 63 characters, as a Rollout's name is).",
    ),
]

_bearer = HTTPBearer(
    auto_error=False,
    description="A token of scope 'read' (reads) or 'operate' (reads and writes).",
)


def _tokens(request: Request) -> TokenSet:
    tokens: TokenSet = request.app.state.tokens
    return tokens


def _authenticated(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    tokens: Annotated[TokenSet, Depends(_tokens)],
) -> Caller:
    challenge = {"WWW-Authenticate": 'Bearer realm="canary"'}
    if credentials is None:
        raise ApiProblemError(401, "send 'Authorization: Bearer TOKEN'", challenge)
    caller = tokens.identify(credentials.credentials)
    if caller is None:
        raise ApiProblemError(401, "the bearer token is not known", challenge)
    return caller


def _operator(caller: Annotated[Caller, Depends(_authenticated)], request: Request) -> Caller:
    if not caller.may(Scope.OPERATE):
        log.warning(
            "audit: %s (scope %s) refused: %s %s",
            caller.name,
            caller.scope.value,
            request.method,
            request.url.path,
        )
        raise ApiProblemError(
            403, f"token {caller.name} has scope {caller.scope.value}; writes need operate"
        )
    return caller


Reader = Annotated[Caller, Depends(_authenticated)]
Operator = Annotated[Caller, Depends(_operator)]


def create_app(
    store: RolloutStore, tokens: TokenSet, settings: ApiSettings | None = None
) -> FastAPI:
    conf = settings or ApiSettings()
    audit = Audit(conf.audit_sinks)
    app = FastAPI(
        title="canary API",
        version=__version__,
        description="Rollouts for CI/CD pipelines and the `canary` CLI: read them, approve, "
        "promote, abort or retry them, and wait for them to end.",
    )
    app.state.tokens = tokens
    app.add_middleware(Guard, tokens=tokens, max_body=conf.max_body, limiter=conf.limiter)

    @app.exception_handler(ApiProblemError)
    async def _problem(_: Request, exc: ApiProblemError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
            for err in exc.errors()
        ]
        return _error(422, "; ".join(problems) or "invalid request")

    def reach(caller: Caller, namespace: str) -> None:
        if not caller.reaches(namespace):
            allowed = ", ".join(sorted(caller.namespaces or ()))
            raise ApiProblemError(
                403, f"token {caller.name} reaches namespaces {allowed} only, not {namespace}"
            )

    def fetch(namespace: str, name: str) -> RolloutView:
        try:
            return store.get(namespace, name)
        except RolloutNotFoundError as exc:
            raise ApiProblemError(404, str(exc)) from None
        except StoreError as exc:
            raise ApiProblemError(503, str(exc)) from None

    def send(
        kind: CommandKind, namespace: str, name: str, caller: Caller, point: ApprovalPoint | None
    ) -> CommandAccepted:
        reach(caller, namespace)
        try:
            return queue_command(
                store, audit, kind, namespace, name, by=caller.name, point=point, now=conf.now()
            )
        except CommandRefusedError as exc:
            raise ApiProblemError(409, exc.message) from None
        except RolloutNotFoundError as exc:
            raise ApiProblemError(404, str(exc)) from None
        except StoreError as exc:
            raise ApiProblemError(503, str(exc)) from None

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        """Liveness: the API answers (no token needed)."""
        return Health()

    @app.get(
        PREFIX + "/rollouts",
        response_model=RolloutList,
        responses=_responses(401, 422, 503),
        tags=["rollouts"],
    )
    def list_rollouts(
        caller: Reader,
        namespace: Annotated[
            str | None, Query(max_length=63, description="Only this namespace.")
        ] = None,
    ) -> RolloutList:
        """Every rollout, one line each."""
        try:
            views = store.list()
        except StoreError as exc:
            raise ApiProblemError(503, str(exc)) from None
        items = [
            RolloutSummary.of(v)
            for v in views
            if namespace in (None, v.namespace) and caller.reaches(v.namespace)
        ]
        return RolloutList(items=items)

    @app.get(
        ROLLOUT_PATH,
        response_model=RolloutView,
        responses=_responses(401, 404, 422, 503),
        tags=["rollouts"],
    )
    def get_rollout(namespace: Namespace, name: Name, caller: Reader) -> RolloutView:
        """One rollout: its spec summary, status and recent check results."""
        reach(caller, namespace)
        return fetch(namespace, name)

    writes = _responses(400, 401, 403, 404, 409, 422, 503)

    @app.post(
        ROLLOUT_PATH + "/approve",
        status_code=202,
        response_model=CommandAccepted,
        responses=writes,
        tags=["commands"],
    )
    def approve(
        namespace: Namespace, name: Name, caller: Operator, body: ApproveRequest | None = None
    ) -> CommandAccepted:
        """Open a manual gate: the point waited on, or the one named (ahead of time)."""
        point = body.point if body is not None else None
        return send(CommandKind.APPROVE, namespace, name, caller, point)

    @app.post(
        ROLLOUT_PATH + "/promote",
        status_code=202,
        response_model=CommandAccepted,
        responses=writes,
        tags=["commands"],
    )
    def promote(namespace: Namespace, name: Name, caller: Operator) -> CommandAccepted:
        """Skip the remaining steps; a failing or inconclusive canary is still not promoted."""
        return send(CommandKind.PROMOTE, namespace, name, caller, None)

    @app.post(
        ROLLOUT_PATH + "/abort",
        status_code=202,
        response_model=CommandAccepted,
        responses=writes,
        tags=["commands"],
    )
    def abort(namespace: Namespace, name: Name, caller: Operator) -> CommandAccepted:
        """Roll the canary back now (Waiting, Progressing, Paused)."""
        return send(CommandKind.ABORT, namespace, name, caller, None)

    @app.post(
        ROLLOUT_PATH + "/retry",
        status_code=202,
        response_model=CommandAccepted,
        responses=writes,
        tags=["commands"],
    )
    def retry(namespace: Namespace, name: Name, caller: Operator) -> CommandAccepted:
        """Run a Failed revision again, from scratch."""
        return send(CommandKind.RETRY, namespace, name, caller, None)

    @app.get(
        ROLLOUT_PATH + "/wait",
        response_model=WaitResult,
        responses=_responses(401, 404, 422, 503),
        tags=["rollouts"],
    )
    async def wait(
        namespace: Namespace,
        name: Name,
        caller: Reader,
        timeout: Annotated[
            float, Query(ge=0, le=conf.max_wait, description="Seconds to wait at most.")
        ] = 30.0,
        revision: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=253,
                description="The revision whose rollout to wait for (default: the target's).",
            ),
        ] = None,
    ) -> WaitResult:
        """Long-poll: answers when the rollout has Succeeded or Failed (RollingBack counts as
        failed) for the revision, or when ``timeout`` seconds have passed. A client that
        hangs up early costs a poll per interval until its timeout (at most max_wait)."""
        reach(caller, namespace)
        started = conf.clock()
        while True:
            view = await run_in_threadpool(fetch, namespace, name)
            waited = max(0.0, conf.clock() - started)
            remaining = timeout - waited
            answer = wait_answer(view, revision, waited, timed_out=remaining < _RESOLUTION)
            if answer is not None:
                return answer
            await conf.sleep(min(conf.poll_interval, remaining))

    return app
