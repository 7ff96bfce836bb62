"""Where the operator commands send their requests: the canary API (`ApiClient`, httpx), or
the cluster itself through a kubeconfig (`canary.cli.kube.KubeBackend`). Both are a `Backend`;
`backend_options` adds the options choosing one (``--api``/``CANARY_API``, ``--token``,
``--token-file``/``CANARY_TOKEN``: a token given as ``--token`` is refused, since ``ps`` shows it,
``--kubeconfig``, ``--context``) to a command.

Which one: ``--kubeconfig``/``--context`` on the command line, else ``--api``/``CANARY_API``,
else a kubeconfig from ``$KUBECONFIG`` or ``~/.kube/config`` (what kubectl would use, so that
``kubectl canary ...`` works with nothing more); else the command stops and says what to set.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import click
import httpx
from pydantic import BaseModel, ValidationError

from canary.gates.api.models import (
    ApiError,
    CommandAccepted,
    RolloutList,
    RolloutView,
    WaitResult,
)

NO_API = (
    "set --api or CANARY_API to the canary API's URL (e.g. http://127.0.0.1:8088), or "
    "--kubeconfig to talk to the cluster directly (no kubeconfig found in $KUBECONFIG or "
    "~/.kube/config)"
)
NO_TOKEN = "set --token-file or CANARY_TOKEN to a token of the canary API"

M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Any])


class ApiClientError(Exception):
    """The API could not be asked, or refused; the message says which and why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Backend(Protocol):
    """What the operator commands ask, whether of the API or of the cluster."""

    default_namespace: str
    """The namespace used when -n is not given."""

    def list(self, namespace: str | None = None) -> RolloutList: ...

    def get(self, namespace: str, name: str) -> RolloutView: ...

    def command(
        self, namespace: str, name: str, action: str, body: dict[str, Any] | None = None
    ) -> CommandAccepted: ...

    def wait(
        self,
        namespace: str,
        name: str,
        timeout: float,
        revision: str | None = None,
        poll: float | None = None,
    ) -> WaitResult:
        """Until the rollout ends or ``timeout`` seconds pass; ``poll``: how often to read it
        where the backend polls (the API long-polls and ignores it)."""
        ...

    def close(self) -> None: ...


class ApiClient:
    """The canary API over HTTP, with a bearer token."""

    default_namespace = "default"

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    def _call(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ApiClientError(f"the API at {self.base_url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ApiClientError(f"cannot reach the API at {self.base_url}: {exc}") from None
        if response.is_success:
            try:
                return model.model_validate_json(response.content)
            except ValidationError as exc:
                raise ApiClientError(
                    f"the API at {self.base_url} answered {path} with something else than a "
                    f"{model.__name__} ({exc.error_count()} problems): is it a canary API?"
                ) from None
        try:
            error = ApiError.model_validate_json(response.content)
            message = error.message
        except ValidationError:
            message = response.text.strip()[:200] or response.reason_phrase
        raise ApiClientError(f"{response.status_code} {response.reason_phrase}: {message}",
                             response.status_code)  # fmt: skip

    @staticmethod
    def _rollout(namespace: str, name: str) -> str:
        return f"/api/v1/namespaces/{namespace}/rollouts/{name}"

    def list(self, namespace: str | None = None) -> RolloutList:
        params = {"namespace": namespace} if namespace else {}
        return self._call(RolloutList, "GET", "/api/v1/rollouts", params=params)

    def get(self, namespace: str, name: str) -> RolloutView:
        return self._call(RolloutView, "GET", self._rollout(namespace, name))

    def command(
        self, namespace: str, name: str, action: str, body: dict[str, Any] | None = None
    ) -> CommandAccepted:
        path = f"{self._rollout(namespace, name)}/{action}"
        return self._call(CommandAccepted, "POST", path, json=body)

    def wait(
        self,
        namespace: str,
        name: str,
        timeout: float,
        revision: str | None = None,
        poll: float | None = None,
    ) -> WaitResult:
        params: dict[str, str | float] = {"timeout": round(timeout, 3)}
        if revision:
            params["revision"] = revision
        path = f"{self._rollout(namespace, name)}/wait"
        return self._call(
            WaitResult, "GET", path, params=params, timeout=httpx.Timeout(10.0, read=timeout + 15)
        )

    def close(self) -> None:
        self.http.close()


class CannotAskError(click.ClickException):
    """The API cannot be asked (no URL, no token) by a command whose exit 1 means something
    else (`wait`): exits 3."""

    exit_code = 3


TOKEN_IN_ARGV = (
    "--token would show the token to every user of this machine (`ps`, shell history): "
    "use --token-file PATH or the CANARY_TOKEN environment variable"
)


def resolve_token(token: str | None, token_file: Path | None) -> str:
    """--token-file, else CANARY_TOKEN; raises ValueError naming what to set. A token on the
    command line (--token) is refused: any local user can read it in the process list."""
    if token:
        raise ValueError(TOKEN_IN_ARGV)
    if token_file is not None:
        try:
            text = token_file.read_text().strip()
        except OSError as exc:
            raise ValueError(f"--token-file {token_file}: {exc.strerror or exc}") from None
        if not text:
            raise ValueError(f"--token-file {token_file} is empty")
        return text
    env = os.environ.get("CANARY_TOKEN", "").strip()
    if env:
        return env
    raise ValueError(NO_TOKEN)


def default_kubeconfig() -> Path | None:
    """The kubeconfig kubectl would read: the first file of $KUBECONFIG that exists, else
    ~/.kube/config when it exists; None when there is none."""
    env = os.environ.get("KUBECONFIG", "")
    if env:
        for part in env.split(os.pathsep):
            if part and Path(part).expanduser().is_file():
                return Path(part).expanduser()
        return None
    home = Path("~/.kube/config").expanduser()
    return home if home.is_file() else None


def _cannot_ask(message: str, exit_code: int) -> click.ClickException:
    if exit_code == CannotAskError.exit_code:
        return CannotAskError(message)
    return click.ClickException(message)


def _explicit(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is click.core.ParameterSource.COMMANDLINE


def open_backend(
    ctx: click.Context,
    *,
    api: str | None,
    token: str | None,
    token_file: Path | None,
    kubeconfig: Path | None,
    context: str | None,
) -> Backend:
    """The backend the options choose (see the module's docstring); raises ValueError saying
    what to set when none can be used."""
    direct = kubeconfig is not None or context is not None
    if direct and _explicit(ctx, "api"):
        raise ValueError("--api and --kubeconfig/--context: give one of them")
    if not direct and api:
        return ApiClient(api, resolve_token(token, token_file))
    if kubeconfig is None:
        kubeconfig = default_kubeconfig()
        if kubeconfig is None:
            raise ValueError(NO_API)
    from canary.cli.kube import KubeBackend  # the kubernetes client loads only when used

    return KubeBackend.from_kubeconfig(kubeconfig, context)


def backend_options(exit_code: int = 1) -> Callable[[F], F]:
    """Add --api, --token, --token-file, --kubeconfig and --context; the command receives
    ``client: Backend``. When nothing can be asked, the command exits with ``exit_code`` (1,
    or 3 for `wait`)."""

    def decorate(command: F) -> F:
        @click.option(
            "--api",
            envvar="CANARY_API",
            metavar="URL",
            help="The canary API, e.g. http://127.0.0.1:8088 (env CANARY_API).",
        )
        @click.option("--token", metavar="TOKEN", hidden=True, help="Refused: see --token-file.")
        @click.option(
            "--token-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="File holding the bearer token (or set CANARY_TOKEN).",
        )
        @click.option(
            "--kubeconfig",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Talk to the cluster directly with this kubeconfig instead of the API "
            "(the default when no API is set: $KUBECONFIG or ~/.kube/config).",
        )
        @click.option("--context", help="The kubeconfig context (default: the current one).")
        @functools.wraps(command)
        def wrapper(
            api: str | None,
            token: str | None,
            token_file: Path | None,
            kubeconfig: Path | None,
            context: str | None,
            **kwargs: Any,
        ) -> Any:
            try:
                client = open_backend(
                    click.get_current_context(),
                    api=api,
                    token=token,
                    token_file=token_file,
                    kubeconfig=kubeconfig,
                    context=context,
                )
            except ValueError as exc:
                raise _cannot_ask(str(exc), exit_code) from None
            try:
                return command(client=client, **kwargs)
            finally:
                client.close()

        return wrapper  # type: ignore[return-value]

    return decorate
