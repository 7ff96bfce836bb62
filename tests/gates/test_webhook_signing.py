"""The signing scheme as documented, and where the secrets come from."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from canary.gates.secret_source import SecretError, SecretsDir, StaticSecrets
from canary.gates.signing import sign, signature_headers, verify_signature, why_invalid
from canary.model.gates import SecretKeyRef

BODY = b'{"rollout":{"name":"podinfo"}}'
T = 1_767_225_600


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"key", b"1767225600." + BODY, hashlib.sha256).hexdigest()
    assert sign(BODY, b"key", T) == f"sha256={expected}"
    assert signature_headers(BODY, "key", T) == {
        "X-Canary-Timestamp": "1767225600",
        "X-Canary-Signature": f"sha256={expected}",
    }


def test_verification_accepts_the_signature_within_the_tolerance() -> None:
    headers = signature_headers(BODY, b"key", T)
    sig, ts = headers["X-Canary-Signature"], headers["X-Canary-Timestamp"]
    assert verify_signature(BODY, b"key", sig, ts, now=T + 299)
    assert verify_signature(BODY, b"key", sig, ts, now=T - 299)
    assert not verify_signature(BODY, b"key", sig, ts, now=T + 301)
    assert verify_signature(BODY, b"key", sig, ts, now=T + 3000, tolerance=3600)


@pytest.mark.parametrize(
    ("body", "secret", "sig", "ts", "why"),
    [
        (BODY + b" ", b"key", None, str(T), "does not match"),
        (BODY, b"other", None, str(T), "does not match"),
        (BODY, b"key", None, str(T + 1), "does not match"),
        (BODY, b"key", "", str(T), "no X-Canary-Signature header"),
        (BODY, b"key", None, None, "no X-Canary-Timestamp header"),
        (BODY, b"key", None, "-5", "not whole Unix seconds"),
        (BODY, b"key", "sha1=abc", str(T), "does not match"),
    ],
)
def test_verification_says_why_it_refuses(
    body: bytes, secret: bytes, sig: str | None, ts: str | None, why: str
) -> None:
    signature = sign(BODY, b"key", T) if sig is None else sig
    problem = why_invalid(body, secret, signature, ts, now=T)
    assert problem is not None
    assert why in problem
    assert not verify_signature(body, secret, signature, ts, now=T)


def test_secrets_dir_reads_one_file_per_secret_key(tmp_path: Path) -> None:
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "token").write_bytes(b"s3cret\n")
    (tmp_path / "hooks" / "raw.key").write_bytes(b" spaced \t")
    (tmp_path / "hooks" / "empty").write_bytes(b"\n")
    source = SecretsDir(tmp_path)
    assert source.secret(SecretKeyRef(name="hooks", key="token"), "any") == b"s3cret"
    assert source.secret(SecretKeyRef(name="hooks", key="raw.key"), "any") == b" spaced \t"
    with pytest.raises(SecretError, match=r"secret 'hooks' key 'missing' not found: no file "):
        source.secret(SecretKeyRef(name="hooks", key="missing"), "any")
    with pytest.raises(SecretError, match="is empty"):
        source.secret(SecretKeyRef(name="hooks", key="empty"), "any")
    with pytest.raises(SecretError, match="not found"):
        source.secret(SecretKeyRef(name="other", key="token"), "any")


@pytest.mark.parametrize("key", ["..", "../hooks/token", "a/b", "."])
def test_secrets_dir_refuses_keys_that_leave_the_directory(tmp_path: Path, key: str) -> None:
    with pytest.raises(SecretError, match="a key has only"):
        # the model refuses such keys; SecretsDir refuses them too (built past the model)
        SecretsDir(tmp_path).secret(SecretKeyRef.model_construct(name="hooks", key=key), "any")


def test_static_secrets() -> None:
    source = StaticSecrets({"hooks/token": "abc"})
    assert source.secret(SecretKeyRef(name="hooks", key="token"), "ns") == b"abc"
    with pytest.raises(SecretError, match="not found"):
        source.secret(SecretKeyRef(name="hooks", key="nope"), "ns")
