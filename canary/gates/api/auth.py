"""Bearer tokens: who may read rollouts and who may operate them.

Two ways to give the tokens (``--tokens PATH``):

- **a file**, one token a line: ``NAME SCOPE TOKEN [NAMESPACES]`` (``#`` starts a comment),
  e.g. ``ci operate 3f9c... team-a,team-b``;
- **a directory** (a Kubernetes Secret mounted as a volume): each file is one token, named
  after the file, holding ``SCOPE TOKEN [NAMESPACES]``. Hidden entries (the Secret's
  ``..data`` links) are skipped.

SCOPE is ``read`` (list, get, wait) or ``operate`` (read, plus approve, promote, abort,
retry). NAMESPACES, comma-separated, limits the token to the rollouts of those namespaces
(``*`` or nothing: every namespace). A token is at least 16 characters. Files are read again
when they change, so a rotated Secret takes effect without a restart; a change that does not
parse keeps the previous tokens (and is logged).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

log = logging.getLogger("canary.api.auth")

MIN_TOKEN_LENGTH = 16
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$")


class Scope(StrEnum):
    READ = "read"
    OPERATE = "operate"


_RANK = {Scope.READ: 0, Scope.OPERATE: 1}


class TokenError(ValueError):
    """A tokens file or directory that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Caller:
    """Who is asking: the token's name (recorded in the audit), its scope and the namespaces
    it may reach (None: all)."""

    name: str
    scope: Scope
    namespaces: frozenset[str] | None = None

    def may(self, needed: Scope) -> bool:
        return _RANK[self.scope] >= _RANK[needed]

    def reaches(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces


_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def parse_namespaces(text: str | None, where: str) -> frozenset[str] | None:
    """``a,b`` -> {a, b}; ``*`` or nothing -> None (every namespace)."""
    if text is None or text == "*":
        return None
    names = [n for n in text.split(",") if n]
    bad = [n for n in names if not _NAMESPACE.match(n)]
    if bad or not names:
        raise TokenError(
            f"{where}: namespaces {text!r}: give namespace names separated by commas, or '*'"
        )
    return frozenset(names)


@dataclass(frozen=True)
class Token:
    name: str
    scope: Scope
    digest: bytes
    namespaces: frozenset[str] | None = None

    @classmethod
    def make(
        cls, name: str, scope: str, secret: str, where: str, namespaces: str | None = None
    ) -> Token:
        if not _NAME.match(name):
            raise TokenError(
                f"{where}: token name {name!r}: use letters, digits and . _ @ - (at most 63)"
            )
        try:
            checked = Scope(scope)
        except ValueError:
            raise TokenError(
                f"{where}: scope {scope!r} of token {name}: use 'read' or 'operate'"
            ) from None
        if len(secret) < MIN_TOKEN_LENGTH:
            raise TokenError(
                f"{where}: token {name} is shorter than {MIN_TOKEN_LENGTH} characters: "
                "generate one with e.g. `openssl rand -hex 24`"
            )
        return cls(name, checked, _digest(secret), parse_namespaces(namespaces, where))


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _lines(text: str) -> list[tuple[int, list[str]]]:
    found = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            found.append((number, line.split()))
    return found


def parse_tokens_file(text: str, source: str) -> list[Token]:
    tokens = []
    for number, fields in _lines(text):
        if len(fields) not in (3, 4):
            raise TokenError(
                f"{source}:{number}: expected 'NAME SCOPE TOKEN [NAMESPACES]', found "
                f"{len(fields)} fields"
            )
        name, scope, secret, *namespaces = fields
        where = f"{source}:{number}"
        tokens.append(Token.make(name, scope, secret, where, next(iter(namespaces), None)))
    return tokens


def _token_of_file(path: Path) -> Token:
    lines = _lines(path.read_text())
    if len(lines) != 1 or len(lines[0][1]) not in (2, 3):
        raise TokenError(f"{path}: a token file holds one line 'SCOPE TOKEN [NAMESPACES]'")
    scope, secret, *namespaces = lines[0][1]
    return Token.make(path.name, scope, secret, str(path), next(iter(namespaces), None))


def load_tokens(path: Path) -> list[Token]:
    """The tokens of a file or a directory; raises TokenError naming the problem."""
    try:
        if path.is_dir():
            files = [p for p in sorted(path.iterdir()) if not p.name.startswith(".")]
            tokens = [_token_of_file(p) for p in files if p.is_file()]
        else:
            tokens = parse_tokens_file(path.read_text(), str(path))
    except OSError as exc:
        raise TokenError(f"{path}: cannot read the tokens ({exc.strerror or exc})") from None
    names = [t.name for t in tokens]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise TokenError(f"{path}: token names must be unique: {', '.join(repeated)} repeated")
    if len({t.digest for t in tokens}) != len(tokens):
        raise TokenError(f"{path}: two tokens have the same secret: give each its own")
    if not tokens:
        raise TokenError(f"{path}: no tokens: add a line 'NAME SCOPE TOKEN'")
    return tokens


def _signature(path: Path) -> tuple[tuple[str, int, int], ...]:
    """What changes when the tokens change: names, sizes and modification times."""
    try:
        entries = sorted(path.iterdir()) if path.is_dir() else [path]
        return tuple(
            (p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in entries if p.is_file()
        )
    except OSError:
        return ()


class TokenSet:
    """The accepted tokens; reloaded from ``path`` (if given) when its files change."""

    def __init__(self, tokens: list[Token], path: Path | None = None) -> None:
        self._tokens = list(tokens)
        self.path = path
        self._seen = _signature(path) if path is not None else ()

    @classmethod
    def from_path(cls, path: Path) -> TokenSet:
        return cls(load_tokens(path), path)

    @classmethod
    def of(cls, *entries: tuple[str, ...]) -> TokenSet:
        """From (name, scope, secret[, namespaces]) tuples: for tests and embedding."""
        made = []
        for entry in entries:
            name, scope, secret, *namespaces = entry
            made.append(Token.make(name, scope, secret, "tokens", next(iter(namespaces), None)))
        return cls(made)

    def _reload_if_changed(self) -> None:
        if self.path is None:
            return
        seen = _signature(self.path)
        if seen == self._seen:
            return
        self._seen = seen
        try:
            self._tokens = load_tokens(self.path)
            log.info("tokens reloaded from %s (%d tokens)", self.path, len(self._tokens))
        except TokenError as exc:
            log.error("keeping the previous tokens: %s", exc)

    def identify(self, secret: str) -> Caller | None:
        """The caller whose token this is, or None; compares in constant time per token."""
        self._reload_if_changed()
        presented = _digest(secret)
        found = None
        for token in self._tokens:
            if hmac.compare_digest(token.digest, presented):
                found = Caller(token.name, token.scope, token.namespaces)
        return found
