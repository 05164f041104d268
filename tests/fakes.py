"""Stand-ins for the transport on a fake clock: the request layer (p2pzmq/rpc.py) is tested through its socket seam
(:class:`p2pzmq.rpc.Socket`) without libzmq, and its timing exactly.

A :class:`FakeNet` holds servers by endpoint: a server is a function of a request's frames that returns the replies
to send and how many seconds after the request each arrives (``[(delay, frames), ...]``), or a :class:`FakeSocket`
that receives requests itself (:meth:`FakeNet.bind`) and answers with :meth:`FakeSocket.reply`. A client's
:class:`FakeSocket` routes to them like a ROUTER: a route per connection, replies that come back on the route the
request went out on, nothing that was in flight on a connection once it is forgotten.
"""
from __future__ import annotations

import collections
import itertools
from typing import Callable

from gevent.hub import Waiter, get_hub

from p2pzmq.clock import Clock
from p2pzmq.errors import ClosedError, TransportError

Answer = Callable[[list[bytes]], list[tuple[float, list[bytes]]]]


class FakeNet:
    """Endpoints on one clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._answers: dict[str, Answer] = {}
        self._bound: dict[str, FakeSocket] = {}
        self._routes = itertools.count(1)

    def serve(self, endpoint: str, answer: Answer) -> str:
        """Answer requests to ``endpoint`` with ``answer``."""
        self._answers[endpoint] = answer
        return endpoint

    def bind(self, endpoint: str) -> "FakeSocket":
        """A socket that receives the requests sent to ``endpoint`` (with the route to reply on) and replies."""
        sock = self._bound[endpoint] = self.socket()
        return sock

    def socket(self) -> "FakeSocket":
        return FakeSocket(self)

    def drop(self, endpoint: str) -> None:
        """Nothing is at ``endpoint`` any more: routes to it fail, as to an inproc endpoint nobody binds."""
        self._answers.pop(endpoint, None)
        self._bound.pop(endpoint, None)


class FakeSocket:
    """A ROUTER-like socket of a :class:`FakeNet` (see the module docstring). ``stalled`` lists endpoints whose
    messages cannot leave (a full queue, a connection not up): ``send_to`` waits its timeout and returns False.
    ``sent`` records ``(endpoint, frames, time)`` of each message that left."""

    def __init__(self, net: FakeNet) -> None:
        self.clock = net.clock
        self._net = net
        self._routes: dict[str, bytes] = {}
        self._endpoints: dict[bytes, str] = {}
        self._inbox: collections.deque = collections.deque()
        self._waiter: Waiter | None = None
        self._peers: dict[bytes, tuple[FakeSocket, bytes]] = {}  # a bound socket's routes back to its senders
        self.stalled: set[str] = set()
        self.sent: list[tuple[str, list[bytes], float]] = []
        self.forgotten: list[str] = []
        self.closed = False

    @property
    def connections(self) -> int:
        return len(self._routes)

    def route(self, endpoint: str) -> bytes:
        if endpoint not in self._net._answers and endpoint not in self._net._bound:
            raise TransportError(f"nothing is bound at {endpoint} (a peer that has gone)")
        route = self._routes.get(endpoint)
        if route is None:
            route = b"route-%d" % next(self._net._routes)
            self._routes[endpoint], self._endpoints[route] = route, endpoint
        return route

    def send_to(self, route: bytes, frames: list[bytes], timeout: float | None = None) -> bool:
        if self.closed:
            raise ClosedError("cannot send: the socket is closed")
        endpoint = self._endpoints.get(route)
        if endpoint is None:
            raise TransportError("cannot send: the route is gone")
        if endpoint in self.stalled:
            if timeout is None:
                raise AssertionError("a stalled send without a timeout would wait for ever")
            self.clock.sleep(timeout)
            return False
        self.sent.append((endpoint, list(frames), self.clock.now()))
        bound = self._net._bound.get(endpoint)
        if bound is not None:
            back = b"peer-%d" % next(self._net._routes)
            bound._peers[back] = (self, route)
            bound._arrive([back, *frames])
            return True
        for delay, reply in self._net._answers[endpoint](list(frames)):
            self.clock.call_later(delay, self._arrive_on, route, reply)
        return True

    def reply(self, route: bytes, frames: list[bytes]) -> None:
        """Answer the sender of a message this (bound) socket received on ``route``."""
        sender, their_route = self._peers[route]
        sender._arrive_on(their_route, frames)

    def inject(self, endpoint: str, frames: list[bytes]) -> None:
        """A message from ``endpoint`` arrives now on its connection (unasked: a command, a forgery, junk)."""
        self._arrive_on(self.route(endpoint), frames)

    def _arrive_on(self, route: bytes, frames: list[bytes]) -> None:
        if route in self._endpoints and not self.closed:  # a forgotten connection's messages are lost with it
            self._arrive([route, *frames])

    def _arrive(self, message: list[bytes]) -> None:
        self._inbox.append(message)
        waiter, self._waiter = self._waiter, None
        if waiter is not None:  # woken from the hub, as a socket's fd wakes its greenlet, whoever sent
            get_hub().loop.run_callback(waiter.switch, None)

    def recv(self, timeout: float | None = None) -> list[bytes] | None:
        if self._inbox:
            return self._inbox.popleft()
        self._waiter = Waiter()
        try:
            if not self.clock.wait(self._waiter, timeout):
                return None
        finally:
            self._waiter = None
        return self._inbox.popleft()

    def forget(self, endpoint: str | None) -> None:
        route = self._routes.pop(endpoint, None)
        if route is not None:
            del self._endpoints[route]
            self.forgotten.append(endpoint)

    def close(self) -> None:
        self.closed = True
