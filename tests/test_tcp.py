"""The same peers over tcp: transport conformance (inproc and tcp behave alike) and identical networks per seed."""
import gevent
import pytest

from model import ModelNetwork
from p2pzmq.errors import ClosedError, RpcTimeout
from p2pzmq.transport import Context, Endpoints

pytestmark = pytest.mark.timeout(60)
TRANSPORTS = ["inproc", "tcp"]


@pytest.fixture
def ctx():
    context = Context()
    yield context
    assert context.term() == 0, "a test left a socket open"


def echo(sock):
    try:
        while True:
            route, *frames = sock.recv()
            sock.reply(route, frames)
    finally:
        sock.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_request_reply_timeout_and_close_conform(ctx, transport):
    endpoints = Endpoints(transport, ctx.namespace)
    server = ctx.router()
    address = server.bind(endpoints.new("server"))
    assert address.startswith(f"{transport}://")
    serving = gevent.spawn(echo, server)
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


@pytest.mark.timeout(120)
def test_same_seed_inproc_and_tcp_build_the_same_network(make_network, tmp_path):
    tgfs, statuses = [], []
    for transport in TRANSPORTS:
        net = make_network(24, seed=7, transport=transport)
        net.refresh_peers()
        path = tmp_path / f"{transport}.tgf"
        net.output_tgf(str(path))
        tgfs.append(path.read_bytes())
        statuses.append(net.net_status())
        assert all(peer.contact.server.startswith(f"{transport}://") for peer in net.peers)
        net.die()
    assert tgfs[0] == tgfs[1]
    assert statuses[0] == statuses[1]
    model = ModelNetwork(7)
    model.create(24)
    model.refresh_peers()
    assert statuses[1] == model.net_status()
