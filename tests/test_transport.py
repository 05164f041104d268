"""The green transport: request/reply on ROUTERs, the connection LRU, timeouts, and clean close."""
import os
import socket
import subprocess
import sys

import gevent
import pytest
from conftest import wait_until

from p2pzmq.clock import REAL, FakeClock
from p2pzmq.errors import ClosedError, RpcTimeout, TransportError
from p2pzmq.endpoints import Endpoints
from p2pzmq.resources import open_fds
from p2pzmq.transport import Context

pytestmark = pytest.mark.timeout(60)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def ctx():
    context = Context()
    yield context
    assert context.term() == 0, "a test left a socket open"


def serve_echo(ctx, transport):
    """A bound ROUTER answering every message with itself, served by its own greenlet:
    (greenlet, socket, address)."""
    server = ctx.router()
    address = server.bind(Endpoints(transport, ctx.namespace).new("server"))
    return gevent.spawn(echo_server, server), server, address


def echo_server(sock):
    try:
        while True:
            route, *frames = sock.recv()
            sock.reply(route, frames)
    finally:
        sock.close()


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
def test_router_request_reply_many(ctx, transport):
    serving, server, address = serve_echo(ctx, transport)
    assert address.startswith(transport + "://") and not address.endswith(":0")
    client = ctx.router()
    try:
        route = client.route(address)
        for i in range(500):
            with gevent.Timeout(5):
                client.send_to(route, [b"%d" % i])
                assert client.recv() == [route, b"%d" % i]
    finally:
        serving.kill()
        client.close()


def test_lru_evicts_least_recently_used_and_never_reuses_a_routing_id(ctx):
    endpoints = Endpoints("inproc", ctx.namespace)
    servers = [ctx.router() for _ in range(4)]
    addresses = [s.bind(endpoints.new("server")) for s in servers]
    workers = [gevent.spawn(echo_server, s) for s in servers]
    client = ctx.router(max_connections=2)
    seen = set()
    try:
        for address in addresses * 3:  # every dial after the first round follows an eviction
            route = client.route(address)
            assert client.connections <= 2
            seen.add(route)
            with gevent.Timeout(5):
                client.send_to(route, [b"ping"])
                assert client.recv() == [route, b"ping"]
        assert len(seen) == 12, "a routing id was reused after eviction"
    finally:
        for worker in workers:
            worker.kill()
        client.close()


def test_recv_times_out_with_gevent_timeout(ctx):
    sock = ctx.router()
    sock.bind(Endpoints("inproc", ctx.namespace).new("lonely"))
    try:
        with pytest.raises(RpcTimeout):
            with gevent.Timeout(0.05, RpcTimeout("none")):
                sock.recv()
    finally:
        sock.close()


def test_send_to_unknown_route_is_a_transport_error(ctx):
    sock = ctx.router()
    try:
        with pytest.raises(TransportError):
            sock.send_to(b"nobody", [b"x"])
    finally:
        sock.close()


def test_closed_socket_raises_closed_error(ctx):
    sock = ctx.router()
    sock.close()
    sock.close()  # idempotent
    with pytest.raises(ClosedError):
        sock.recv()


def test_term_closes_what_owners_left_open():
    context = Context()
    forgotten = [context.router(), context.req()]
    assert context.term() == 2
    assert all(sock.closed for sock in forgotten)
    with pytest.raises(ClosedError):
        context.router()


DROPPED_IN_A_CYCLE = """
import gc
from p2pzmq.transport import Context

gc.disable()
for _ in range(5):
    context = Context()
    sockets = [context.router(), context.req(), context.router()]
    sockets[0].bind("tcp://127.0.0.1:0")
    sockets[1].connect("tcp://127.0.0.1:9")
    context.cycle = [context, sockets]  # as a failed test's frame or an owner's back-reference holds them
    del context, sockets
    gc.collect()
print("collected")
"""


def test_a_context_dropped_with_open_sockets_in_a_garbage_cycle_is_closed_not_hung():
    """A cycle's weak references are cleared before any finaliser runs, so pyzmq's own Context.__del__ found no
    socket to close and blocked forever in zmq_ctx_term: a process hung at a garbage collection (a failed test that
    left a ControlClient open hung the test run). In a subprocess, so that a hang cannot hang the suite."""
    done = subprocess.run([sys.executable, "-c", DROPPED_IN_A_CYCLE], capture_output=True, text=True, timeout=30,
                          cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "collected", done.stderr[-2000:]


def test_bind_failure_is_a_transport_error(ctx):
    sock = ctx.router()
    try:
        with pytest.raises(TransportError):
            sock.bind("tcp://127.0.0.1:notaport")
    finally:
        sock.close()


def test_sending_to_a_closed_peer_fails_promptly_instead_of_retrying_forever(ctx):
    endpoints = Endpoints("inproc", ctx.namespace)
    server = ctx.router()
    address = server.bind(endpoints.new("server"))
    client = ctx.router(handshake_timeout=0.2)
    try:
        route = client.route(address)
        client.send_to(route, [b"hello"])
        assert server.recv()[1:] == [b"hello"]
        server.close()

        def refused():
            try:
                with gevent.Timeout(1):
                    client.send_to(client.route(address), [b"anyone?"])
            except TransportError:
                return True
            return False

        wait_until(refused, timeout=5)  # the pipe's end is noticed asynchronously; from then on the send fails at once
    finally:
        server.close()
        client.close()
@pytest.mark.parametrize("transport", ["inproc", "tcp"])
def test_request_reply_timeout_and_close_conform(ctx, transport):
    serving, server, address = serve_echo(ctx, transport)
    assert address.startswith(f"{transport}://")
    client = ctx.router(max_connections=2)
    try:
        route = client.route(address)
        with gevent.Timeout(5):
            client.send_to(route, [b"a", b"b"])  # multipart survives as it is
            assert client.recv() == [route, b"a", b"b"]
        with pytest.raises(RpcTimeout):  # nothing more is coming: the caller's timeout ends the wait
            with gevent.Timeout(0.05, RpcTimeout("none")):
                client.recv()
        serving.kill()
        assert server.closed
        client.forget(address)
        assert client.connections == 0
    finally:
        serving.kill()
        client.close()
    with pytest.raises(ClosedError):
        client.recv()


def test_tcp_endpoints_bind_the_requested_host_on_a_random_port(ctx):
    sock = ctx.router()
    try:
        first = sock.bind(Endpoints("tcp", ctx.namespace, "127.0.0.1").new("server"))
        second = sock.bind(Endpoints("tcp", ctx.namespace, "127.0.0.1").new("server"))
        assert first.startswith("tcp://127.0.0.1:") and first != second
    finally:
        sock.close()


def test_a_refused_tcp_connection_fails_the_send_at_once_and_a_silent_one_after_the_handshake_timeout(ctx):
    """``fail_fast``: libzmq would queue the message for an endpoint nobody listens at (a dead peer's port) and the
    sender would wait its whole timeout for a reply; a monitor tells at once instead."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    silent = socket.create_server(("127.0.0.1", 0))  # takes the tcp connection, never speaks ZeroMQ
    serving, server, address = serve_echo(ctx, "tcp")
    client = ctx.router(handshake_timeout=30, fail_fast=True)
    try:
        # Long before the 30 s handshake timeout (a bound that catches a wait for it, not a measurement):
        with gevent.Timeout(10, AssertionError("a refused connection waited for the handshake timeout")):
            with pytest.raises(TransportError, match="connection refused"):
                client.send_to(client.route(f"tcp://127.0.0.1:{closed_port}"), [b"anyone?"])
        assert client.connections == 0
        client.handshake_timeout, client.clock = 0.5, FakeClock()  # the silent one's wait, on a clock we own
        silent_route = client.route(f"tcp://127.0.0.1:{silent.getsockname()[1]}")
        dialling_silent = gevent.spawn(client.send_to, silent_route, [b"hello?"])
        gevent.idle()
        client.clock.advance(0.25)
        assert not dialling_silent.ready()  # a silent one is given its time...
        client.clock.advance(0.25)
        with pytest.raises(TransportError, match="did not come up in time"):  # ...and not a moment more
            dialling_silent.get(block=False)
        client.clock = REAL
        route = client.route(address)  # a live one is unaffected
        with gevent.Timeout(5):
            assert client.send_to(route, [b"ping"]) and client.recv() == [route, b"ping"]
        dialling = open_fds()
        client.forget_all()  # idle: the monitor's two sockets are closed too
        wait_until(lambda: open_fds() <= dialling - 2)
    finally:
        serving.kill()
        client.close()
        silent.close()


def test_without_fail_fast_a_message_to_a_closed_tcp_port_is_queued(ctx):
    """The worker link keeps libzmq's queueing: a worker that comes up late still gets what was sent."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ctx.router()
    try:
        assert client.send_to(client.route(f"tcp://127.0.0.1:{port}"), [b"later"], timeout=1)
    finally:
        client.close()


def test_a_client_that_goes_idle_and_dials_again_at_once_gets_a_new_monitor_every_time(ctx):
    """A closed monitor's endpoint stays bound until libzmq's reaper gets to it, and pyzmq names a socket's monitor
    after its fd, the same every time: dialling again at once once failed as 'Address already in use'."""
    serving, server, address = serve_echo(ctx, "tcp")
    client = ctx.router(fail_fast=True)
    try:
        for index in range(300):
            route = client.route(address)
            with gevent.Timeout(5):
                assert client.send_to(route, [b"%d" % index]) and client.recv() == [route, b"%d" % index]
            client.forget_all()  # a peer's client after every walk
    finally:
        serving.kill()
        client.close()
