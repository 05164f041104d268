"""Bind addresses for one transport, so peer code never spells ``inproc://`` or ``tcp://`` itself."""
from __future__ import annotations

import itertools

from .errors import TransportError


class Endpoints:
    """Makes bind addresses for one transport: unique inproc names within a context's namespace, or ``tcp://host:0``
    (the system picks the port; the socket reports the one it got). ``local_alias``: tcp peers also bind an inproc
    alias, so that peers of this process reach each other over inproc (a worker's peers, docs/DESIGN.md §9)."""

    def __init__(self, transport: str, namespace: str, host: str = "127.0.0.1", local_alias: bool = False) -> None:
        if transport not in ("inproc", "tcp"):
            raise TransportError(f"unknown transport {transport!r}")
        self.transport = transport
        self.namespace = namespace
        self.host = host
        self.local_alias = local_alias and transport == "tcp"
        self._serial = itertools.count(1)

    def new(self, role: str) -> str:
        """A fresh bind address for a socket playing ``role`` (``server``, ``client``, ...)."""
        if self.transport == "inproc":
            return f"inproc://{self.namespace}/{role}/{next(self._serial)}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:0"
