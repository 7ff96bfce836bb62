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

    def show_map(self, map_file: str) -> dict[str, str]:
        """The map's entries, key to value."""
        entries: dict[str, str] = {}
        for row in self.command(f"show map {map_file}").splitlines():
            parts = row.split(maxsplit=2)
            if len(parts) == 3:
                entries[parts[1]] = parts[2]
        return entries

    def set_map(self, map_file: str, entries: dict[str, str]) -> None:
        """Make the map hold exactly ``entries``."""
        if self.show_map(map_file) == entries:
            return
        self.command(f"clear map {map_file}")
        for key, value in entries.items():
            if any(c.isspace() for c in key + value):
                raise RuntimeApiError(
                    f"map entries cannot contain spaces through the runtime API: {key!r}"
                )
            self.command(f"add map {map_file} {key} {value}")

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
