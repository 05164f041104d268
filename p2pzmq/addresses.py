"""Endpoints, each kind read by one function: :func:`parse_endpoint` checks one a user typed before any socket sees
it, :func:`is_loopback` says whether only this host can reach it, :func:`check_peer_endpoint` checks a peer's
endpoint that came from the network (the wire codec and the worker link), and :func:`host_of` names a peer's host.
Pure: no sockets, no name lookups.
"""
from __future__ import annotations

import ipaddress

from .errors import UsageError

#: A peer's endpoint is at most this long: what the wire codec carries.
MAX_PEER_ENDPOINT_CHARS = 256
#: How peers are reached: in this process, or over tcp.
PEER_SCHEMES = ("inproc://", "tcp://")


def check_peer_endpoint(endpoint: str) -> str:
    """``endpoint`` if it can be a peer's (an inproc:// or tcp:// URL of at most 256 characters); ``ValueError``
    otherwise."""
    if type(endpoint) is not str or len(endpoint) > MAX_PEER_ENDPOINT_CHARS or not endpoint.startswith(PEER_SCHEMES):
        raise ValueError(f"an endpoint is an inproc:// or tcp:// URL of at most {MAX_PEER_ENDPOINT_CHARS} characters")
    return endpoint


def parse_endpoint(endpoint: str, bind: bool = False) -> tuple[str, str, int | None]:
    """``(scheme, address, port)`` of a ``tcp://HOST:PORT`` or ``ipc://PATH`` endpoint that a user typed (port None
    for ipc); :class:`UsageError` saying what is wrong otherwise. ``bind``: the endpoint is to be bound here, so
    port 0 (any free port) and the wildcard host ``*`` are allowed; a peer to connect to needs a real port and host.
    ``inproc://`` is refused: it cannot be reached from another process, which is what these endpoints are for.
    """
    scheme, separator, rest = endpoint.partition("://")
    if not separator or scheme not in ("tcp", "ipc", "inproc"):
        raise UsageError(f"not an endpoint: {endpoint!r:.80} (use tcp://HOST:PORT or ipc://PATH)")
    if scheme == "inproc":
        raise UsageError(f"{endpoint!r:.80} is an inproc endpoint, which no other process can reach "
                         "(use tcp://HOST:PORT or ipc://PATH)")
    if scheme == "ipc":
        if not rest or "\0" in rest:
            raise UsageError(f"{endpoint!r:.80} names no ipc file")
        return scheme, rest, None
    host, colon, port_text = rest.rpartition(":")
    if not colon or not host or any(char.isspace() for char in rest):
        raise UsageError(f"{endpoint!r:.80} is not tcp://HOST:PORT")
    if host == "*" and not bind:
        raise UsageError(f"{endpoint!r:.80}: the wildcard host * can only be bound; name the host to connect to")
    if not (port_text.isascii() and port_text.isdigit() and int(port_text) <= 65535):
        raise UsageError(f"{endpoint!r:.80}: the port must be a number from {0 if bind else 1} to 65535")
    port = int(port_text)
    if port == 0 and not bind:
        raise UsageError(f"{endpoint!r:.80}: port 0 (any free port) can only be bound; name the port to connect to")
    return scheme, host, port


def is_loopback(endpoint_or_host: str) -> bool:
    """True for what only this host can reach: inproc and ipc endpoints, and tcp on 127.0.0.0/8, ::1 or
    localhost."""
    if endpoint_or_host.startswith(("inproc://", "ipc://")):
        return True
    host = endpoint_or_host.removeprefix("tcp://").rsplit(":", 1)[0] if "://" in endpoint_or_host \
        else endpoint_or_host
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name or a wildcard ("*"): treat as exposed


def host_of(endpoint: str) -> str:
    """``inproc`` for a peer's inproc endpoint, else the host part of its ``tcp://HOST:PORT``."""
    scheme, _, rest = endpoint.partition("://")
    return "inproc" if scheme == "inproc" else rest.rsplit(":", 1)[0]
