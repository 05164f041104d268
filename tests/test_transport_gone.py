"""Dialling an inproc endpoint that nobody binds (any more) fails at once: libzmq would otherwise keep the pending
connection and everything sent to it until the context ends, so every lookup through a dead peer leaked memory."""
import pytest

from p2pzmq.errors import TransportError
from p2pzmq.endpoints import Endpoints
from p2pzmq.transport import Context

pytestmark = pytest.mark.timeout(30)


def test_route_to_an_unbound_or_closed_inproc_endpoint_is_a_transport_error():
    ctx = Context()
    endpoints = Endpoints("inproc", ctx.namespace)
    client, server = ctx.router(), ctx.router()
    try:
        client.bind(endpoints.new("client"))
        with pytest.raises(TransportError):
            client.route(f"inproc://{ctx.namespace}/never/1")
        address = server.bind(endpoints.new("server"))
        assert client.route(address)
        client.forget(address)
        server.close()
        with pytest.raises(TransportError):
            client.route(address)
        assert client.connections == 0
    finally:
        client.close()
        server.close()
        assert ctx.term() == 0
