"""A client of HAProxy's runtime API (the `stats socket`), over TCP or a unix socket.

Each command is one connection in non-interactive mode: send the line, read until HAProxy
closes. HAProxy answers errors in plain text, so known error replies are raised.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from canary.traffic.router import RouterError

_ERROR_REPLIES = (
    "No such server",
    "No such backend",
    "Unknown command",
    "Unknown map identifier",
    "Permission denied",
    "Require 'backend/server'",
    "Invalid",
    "unable to",
    "Unable to",
)


class RuntimeApiError(RouterError):
    """HAProxy refused a command or could not be reached."""


@dataclass(frozen=True)
class RuntimeApi:
    address: str
    """host:port, or the path of a unix socket."""
    timeout: float = 5.0

    def command(self, line: str) -> str:
        """Send one command and return HAProxy's reply (raises RuntimeApiError on errors)."""
        if "\n" in line:
            raise RuntimeApiError(f"a runtime API command is one line, got {line!r}")
        try:
            with self._connect() as conn:
                conn.sendall(line.encode() + b"\n")
                reply = self._read_all(conn)
        except OSError as exc:
            raise RuntimeApiError(
                f"HAProxy runtime API at {self.address} did not answer: {exc}; is HAProxy "
                "running with `stats socket ... level admin` on that address?"
            ) from None
        text = reply.decode(errors="replace").strip()
        if any(text.startswith(prefix) for prefix in _ERROR_REPLIES):
            raise RuntimeApiError(f"HAProxy refused `{line}`: {text}")
        return text

    def get_weight(self, backend: str, server: str) -> int:
        reply = self.command(f"get weight {backend}/{server}")
        try:
            return int(reply.split()[0])
        except (IndexError, ValueError):
            raise RuntimeApiError(f"unexpected reply to get weight: {reply!r}") from None

    def set_weight(self, backend: str, server: str, weight: int) -> None:
        if not 0 <= weight <= 256:
            raise RuntimeApiError(f"HAProxy weights are 0..256, not {weight}")
        self.command(f"set weight {backend}/{server} {weight}")

    def server_address(self, backend: str, server: str) -> str:
        """host:port the server points at now (`show servers state`)."""
        rows = self.command(f"show servers state {backend}").splitlines()
        header = next((r[2:].split() for r in rows if r.startswith("# ")), [])
        for row in rows:
            values = dict(zip(header, row.split(), strict=False))
            if values.get("srv_name") == server and "srv_addr" in values:
                return f"{values['srv_addr']}:{values.get('srv_port', '')}"
        raise RuntimeApiError(f"HAProxy has no server {backend}/{server}")

    def loaded_maps(self) -> list[str]:
        """The files of every map the running HAProxy loaded from its config."""
        files = []
        for row in self.command("show map").splitlines():
            if row.startswith("#") or "(" not in row:
                continue
            files.append(row.split("(", 1)[1].split(")", 1)[0])
        return files

    def map_entries(self, map_file: str) -> list[tuple[str, str]]:
        """The map's entries as HAProxy holds them, duplicates included, in its order."""
        entries = []
        for row in self.command(f"show map {map_file}").splitlines():
            # "<ref> <key> <value>": our values have no space, keys may (a regex).
            _, _, rest = row.partition(" ")
            key, _, value = rest.rpartition(" ")
            if key:
                entries.append((key, value))
        return entries

    def show_map(self, map_file: str) -> dict[str, str]:
        """The map's entries, key to value."""
        return dict(self.map_entries(map_file))

    def set_map(self, map_file: str, entries: dict[str, str]) -> None:
        """Make the map hold exactly ``entries``, each once: entries nobody asked for are
        deleted, missing ones added, wrong values set. Keys already right are not touched, so
        a request never finds the map half cleared."""
        for key, value in entries.items():
            _check_entry(key, value)
        live: dict[str, list[str]] = {}
        for key, value in self.map_entries(map_file):
            live.setdefault(key, []).append(value)
        for key, values in live.items():
            wanted = entries.get(key)
            if wanted is None or len(values) > 1:
                self.command(f"del map {map_file} {escape_argument(key)}")
            elif values[0] != wanted:
                self.command(f"set map {map_file} {escape_argument(key)} {wanted}")
        for key, value in entries.items():
            if len(live.get(key, ())) != 1:
                self.command(f"add map {map_file} {escape_argument(key)} {value}")

    def _connect(self) -> socket.socket:
        if self.address.startswith("/"):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.settimeout(self.timeout)
            conn.connect(self.address)
            return conn
        host, _, port = self.address.rpartition(":")
        return socket.create_connection((host or "127.0.0.1", int(port)), timeout=self.timeout)

    @staticmethod
    def _read_all(conn: socket.socket) -> bytes:
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def escape_argument(text: str) -> str:
    """One runtime API argument: HAProxy splits a line on spaces and ';' unless escaped."""
    return text.replace("\\", "\\\\").replace(" ", "\\ ").replace(";", "\\;")


def _check_entry(key: str, value: str) -> None:
    if not key or any(c.isspace() and c != " " for c in key):
        raise RuntimeApiError(
            f"map key {key!r} is empty or holds a tab or newline, which the runtime API "
            "cannot carry; match on a value without them"
        )
    if not value or any(c.isspace() for c in value):
        raise RuntimeApiError(f"map value {value!r} must be one word")
