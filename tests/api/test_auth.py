"""Bearer tokens: 401 without or with an unknown token, 403 for a read token on writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_support import CI_TOKEN, OPERATE, READ, ROLLOUT, Served, Workspace, progressing
from fastapi.testclient import TestClient

from canary.gates.api.auth import Scope, TokenError, TokenSet, load_tokens

WRITES = ["approve", "promote", "abort", "retry"]
READS = ["/api/v1/rollouts", ROLLOUT, ROLLOUT + "/wait?timeout=0"]


@pytest.mark.parametrize("path", READS + [f"{ROLLOUT}/{w}" for w in WRITES])
def test_no_token_is_401_with_a_bearer_challenge(
    asgi: TestClient, workspace: Workspace, path: str
) -> None:
    progressing(workspace)
    method = asgi.post if path.rsplit("/", 1)[-1] in WRITES else asgi.get
    response = method(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json() == {
        "reason": "Unauthorized",
        "message": "send 'Authorization: Bearer TOKEN'",
    }


@pytest.mark.parametrize(
    "header",
    ["Bearer not-a-known-token-at-all", f"Basic {CI_TOKEN}", f"Bearer {CI_TOKEN}x", "Bearer"],
)
def test_unknown_token_or_scheme_is_401(asgi: TestClient, header: str) -> None:
    response = asgi.get("/api/v1/rollouts", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["reason"] == "Unauthorized"


@pytest.mark.parametrize("write", WRITES)
def test_read_token_cannot_write(asgi: TestClient, workspace: Workspace, write: str) -> None:
    progressing(workspace)
    response = asgi.post(f"{ROLLOUT}/{write}", headers=READ)
    assert response.status_code == 403
    assert response.json()["message"] == "token viewer has scope read; writes need operate"
    assert workspace.store.take_commands("test", "podinfo") == []


@pytest.mark.parametrize("path", READS)
def test_read_and_operate_tokens_can_read(
    asgi: TestClient, workspace: Workspace, path: str
) -> None:
    progressing(workspace)
    for headers in (READ, OPERATE):
        assert asgi.get(path, headers=headers).status_code == 200


def test_healthz_needs_no_token(asgi: TestClient) -> None:
    assert asgi.get("/healthz").json() == {"status": "ok"}


def test_over_a_real_socket_the_tokens_file_is_read_again_when_it_changes(
    served: Served,
) -> None:
    progressing(served.workspace)
    fresh = {"Authorization": "Bearer rotated-token-0123456789"}
    assert served.client.get("/api/v1/rollouts", headers=fresh).status_code == 401
    tokens = served.workspace.tokens_file
    tokens.write_text(tokens.read_text() + "rotated read rotated-token-0123456789\n")
    assert served.client.get("/api/v1/rollouts", headers=fresh).status_code == 200
    tokens.write_text("broken line\n")  # a bad change keeps the previous tokens
    assert served.client.get("/api/v1/rollouts", headers=fresh).status_code == 200


def test_a_directory_of_token_files_like_a_mounted_secret(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "ci").write_text("operate 0123456789abcdef0123\n")
    (secret / "dashboard").write_text("read fedcba9876543210fedc")
    (secret / "..data").mkdir()  # what a Secret volume holds beside its keys
    tokens = TokenSet.from_path(secret)
    ci = tokens.identify("0123456789abcdef0123")
    assert ci is not None
    assert (ci.name, ci.scope) == ("ci", Scope.OPERATE)
    dashboard = tokens.identify("fedcba9876543210fedc")
    assert dashboard is not None
    assert not dashboard.may(Scope.OPERATE)
    assert tokens.identify("nope") is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ci operate\n", r"tokens:1: expected 'NAME SCOPE TOKEN \[NAMESPACES\]', found 2 fields"),
        ("ci admin 0123456789abcdef\n", r"scope 'admin' of token ci: use 'read' or 'operate'"),
        ("ci read short\n", r"shorter than 16 characters"),
        ("a read 0123456789abcdef\na read fedcba9876543210\n", r"a repeated"),
        ("a read 0123456789abcdef\nb read 0123456789abcdef\n", r"same secret"),
        ("# nothing\n", r"no tokens"),
        ("c/i read 0123456789abcdef\n", r"token name 'c/i'"),
    ],
)
def test_bad_tokens_files_are_refused_with_the_line(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "tokens"
    path.write_text(text)
    with pytest.raises(TokenError, match=problem):
        load_tokens(path)
