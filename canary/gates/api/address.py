"""The address the API listens on, as the command line and the chart write it."""

from __future__ import annotations


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[::1]:PORT`` or ``:PORT`` (every interface) -> (host, port); raises
    ValueError naming the forms it takes."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"address {text!r}: use HOST:PORT or :PORT, e.g. 127.0.0.1:8088")
    return host.strip("[]") or "0.0.0.0", int(port)
