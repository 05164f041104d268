"""The outgoing connections of one ROUTER socket, kept without ZeroMQ (docs/DESIGN.md §3, §7.1): the routing id of
each endpoint, least recently used first; which routes have not carried a message yet (*fresh*: their connection may
still be coming up); which lead to a socket in this context (an inproc peer to run at once); and which fresh routes
libzmq has reported up, or failing (nothing listens there). :class:`p2pzmq.transport.RouterSocket` connects them.

Routing ids are never reused: connecting twice with one ``CONNECT_ROUTING_ID`` aborts the whole process.
"""
from __future__ import annotations

import collections
import itertools


class Routes:
    """Endpoint -> routing id, in order of last use."""

    def __init__(self) -> None:
        self._ids: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._serial = itertools.count(1)
        self._fresh: set[bytes] = set()
        self._up: set[bytes] = set()
        self._failed: set[bytes] = set()
        #: route -> the socket bound at its inproc endpoint, for run to completion
        self.local: dict[bytes, object] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self):
        return iter(list(self._ids))

    def get(self, endpoint: str) -> bytes | None:
        """The route to ``endpoint`` (now the most recently used), or None."""
        route = self._ids.get(endpoint)
        if route is not None:
            self._ids.move_to_end(endpoint)
        return route

    def oldest(self) -> str:
        return next(iter(self._ids))

    def new_id(self) -> bytes:
        """A routing id never handed out before."""
        return b"r%d" % next(self._serial)

    def add(self, endpoint: str, route: bytes, local=None) -> None:
        """``endpoint`` is now connected as ``route`` (fresh), to ``local`` if that socket is in this context."""
        self._ids[endpoint] = route
        self._fresh.add(route)
        if local is not None:
            self.local[route] = local

    def pop(self, endpoint: str | None) -> bytes | None:
        """Forget ``endpoint``; its route, or None if it had none."""
        route = self._ids.pop(endpoint, None)
        if route is not None:
            self._fresh.discard(route)
            self._up.discard(route)
            self._failed.discard(route)
            self.local.pop(route, None)
        return route

    def endpoint_of(self, route: bytes) -> str | None:
        for endpoint, known in self._ids.items():
            if known == route:
                return endpoint
        return None

    def carried(self, route: bytes) -> None:
        """``route`` has carried a message: its connection is up."""
        self._fresh.discard(route)
        self._up.discard(route)

    def coming_up(self, route: bytes) -> bool:
        """Whether ``route`` is a new connection to another process not reported up yet."""
        return route in self._fresh and route not in self._up and route not in self.local

    def reported(self, endpoint: str, up: bool) -> None:
        """libzmq reported that a connection to ``endpoint`` is ``up`` (its handshake is done), or that an attempt
        failed. It counts only for a fresh route: a report about an earlier connection to the endpoint came before it
        was made, and an established connection that breaks fails its next send by itself."""
        route = self._ids.get(endpoint)
        if route in self._fresh:
            (self._up if up else self._failed).add(route)

    def is_up(self, route: bytes) -> bool:
        return route in self._up

    def has_failed(self, route: bytes) -> bool:
        return route in self._failed
