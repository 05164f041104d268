"""The raw limits tools/bench.py compares the simulator with: round trips between two ROUTER sockets, with nothing of
p2pzmq in between, in this process.

* ``green``: stock ``zmq.green``, two greenlets, ``send_multipart``/``recv_multipart`` over inproc: what a user of
  gevent and pyzmq would write first;
* ``plain``: plain pyzmq over inproc in one thread, no greenlets, frame by frame with plain-int flags: pyzmq's
  floor;
* ``lean``: p2pzmq's own green transport between two greenlets over inproc (the greenlet-owned path, no run to
  completion);
* ``plain_tcp``: as ``plain`` but over tcp loopback: the floor libzmq itself sets for a round trip over tcp in one
  process (its I/O thread does the socket work, so every message crosses threads);
* ``green_tcp``: as ``green`` but over tcp loopback.

Rates are round trips per wall second and per CPU second of this process (CPU seconds of all its threads, which
other processes on a shared machine cannot inflate).
"""
from __future__ import annotations

import time

#: Every raw measurement, by name, in the order reports list them.
RAW_NAMES = ("green", "plain", "lean", "plain_tcp", "green_tcp")
#: How long a tcp measurement waits for its connection to come up.
CONNECT_DEADLINE = 5.0


class Clock:
    """Wall and CPU time since creation. CPU time (this process only) is what other processes on a shared machine
    cannot inflate; wall time is what a user waits."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def seconds(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu

    def rates(self, count: int) -> tuple[float, float]:
        wall, cpu = self.seconds()
        return count / max(wall, 1e-9), count / max(cpu, 1e-9)


def _stock_pair(zmq, transport: str, name: str):
    """A context and two ROUTERs of the stock pyzmq module ``zmq`` (plain or green), the client connected to the
    server under the routing id ``server`` and able to send to it (over tcp: once the handshake is done)."""
    ctx = zmq.Context()
    server, client = ctx.socket(zmq.ROUTER), ctx.socket(zmq.ROUTER)
    for sock in (server, client):
        sock.setsockopt(zmq.LINGER, 0)
    server.bind(f"inproc://bench-{name}" if transport == "inproc" else "tcp://127.0.0.1:*")
    client.setsockopt(zmq.CONNECT_ROUTING_ID, b"server")
    client.setsockopt(zmq.ROUTER_MANDATORY, 1)
    client.connect(server.getsockopt_string(zmq.LAST_ENDPOINT))
    if transport == "tcp":
        _await_route(zmq, client, server)
    return ctx, server, client


def _await_route(zmq, client, server) -> None:
    """Send one message until the tcp connection takes it (a ROUTER_MANDATORY ROUTER refuses a route that is not up
    yet), then take it off the server: the measurement starts on an open connection."""
    deadline = time.monotonic() + CONNECT_DEADLINE
    while True:
        try:
            client.send_multipart([b"server", b"hello"])
            break
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH or time.monotonic() > deadline:
                raise
            time.sleep(0.001)  # the loopback handshake takes well under a millisecond
    server.recv_multipart()


def _close(ctx, *sockets) -> None:
    for sock in sockets:
        sock.close()
    ctx.term()


def _between_greenlets(round_trips: int, echo, ask) -> tuple[float, float]:
    """Rates of ``ask`` (run in one greenlet) against ``echo`` (in another)."""
    import gevent

    echoing = gevent.spawn(echo)
    clock = Clock()
    gevent.spawn(ask).join()
    rates = clock.rates(round_trips)
    echoing.join()
    return rates


def _green(round_trips: int, transport: str) -> tuple[float, float]:
    import zmq.green as zmq

    ctx, server, client = _stock_pair(zmq, transport, "green")

    def echo():
        for _ in range(round_trips):
            server.send_multipart(server.recv_multipart())

    def ask():
        for _ in range(round_trips):
            client.send_multipart([b"server", b"ping"])
            client.recv_multipart()

    rates = _between_greenlets(round_trips, echo, ask)
    _close(ctx, server, client)
    return rates


def _plain(round_trips: int, transport: str) -> tuple[float, float]:
    import zmq

    ctx, server, client = _stock_pair(zmq, transport, "plain")
    more = int(zmq.SNDMORE)
    send_client, recv_client, send_server, recv_server = client.send, client.recv, server.send, server.recv
    clock = Clock()
    for _ in range(round_trips):
        send_client(b"server", more)
        send_client(b"ping", 0)
        route = recv_server(0)
        body = recv_server(0)
        send_server(route, more)
        send_server(body, 0)
        recv_client(0)
        recv_client(0)
    rates = clock.rates(round_trips)
    _close(ctx, server, client)
    return rates


def raw_green(round_trips: int) -> tuple[float, float]:
    """Stock zmq.green between two greenlets, inproc (multipart helpers, as a user would write it)."""
    return _green(round_trips, "inproc")


def raw_green_tcp(round_trips: int) -> tuple[float, float]:
    """Stock zmq.green between two greenlets over tcp loopback, in this process."""
    return _green(round_trips, "tcp")


def raw_plain(round_trips: int) -> tuple[float, float]:
    """Plain pyzmq in one thread (no greenlets, no loop), inproc, frame by frame with plain-int flags."""
    return _plain(round_trips, "inproc")


def raw_plain_tcp(round_trips: int) -> tuple[float, float]:
    """Plain pyzmq in one thread over tcp loopback, frame by frame with plain-int flags."""
    return _plain(round_trips, "tcp")


def raw_lean(round_trips: int) -> tuple[float, float]:
    """p2pzmq's own green transport between two greenlets, inproc."""
    from p2pzmq.endpoints import Endpoints
    from p2pzmq.transport import Context

    ctx = Context()
    server, client = ctx.router(), ctx.router()
    route = client.route(server.bind(Endpoints("inproc", ctx.namespace).new("bench")))

    def echo():
        for _ in range(round_trips):
            sender, *frames = server.recv()
            server.reply(sender, frames)

    def ask():
        for _ in range(round_trips):
            client.send_to(route, [b"ping"])
            client.recv()

    rates = _between_greenlets(round_trips, echo, ask)
    ctx.term()
    return rates


MEASURES = {"green": raw_green, "plain": raw_plain, "lean": raw_lean, "plain_tcp": raw_plain_tcp,
            "green_tcp": raw_green_tcp}


def raw_limits(round_trips: int, names=RAW_NAMES, repeats: int = 3) -> dict:
    """The best of ``repeats`` runs of each raw measurement named (a limit is what the stack can do, not an average):
    ``{name: [round trips per wall second, per CPU second]}``. The runs of different measurements alternate, so a
    burst of load on the machine spoils one run of each rather than every run of one."""
    runs: dict[str, list] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            runs[name].append(MEASURES[name](round_trips))
    return {name: [max(run[0] for run in found), max(run[1] for run in found)] for name, found in runs.items()}


def best(limits: list[dict]) -> dict:
    """The best of several :func:`raw_limits` results, per measurement and per kind of second."""
    names = limits[0].keys()
    return {name: [max(limit[name][0] for limit in limits), max(limit[name][1] for limit in limits)]
            for name in names}
