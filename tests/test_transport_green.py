"""The lean green layer of transport.py: no lost wake-ups on ZeroMQ's edge-triggered fd, and high-water-mark
back-pressure that parks the sender instead of dropping or failing (docs/DESIGN.md §3)."""
import gevent
import pytest
from conftest import wait_until

from p2pzmq.clock import FakeClock
from p2pzmq.endpoints import Endpoints
from test_transport import ctx  # noqa: F401  (the fixture: a fresh context that must end with no socket open)

pytestmark = pytest.mark.timeout(60)


def make_pair(ctx, transport):
    """A bound server ROUTER and a client ROUTER connected to it: (server, client, route to the server)."""
    server, client = ctx.router(hwm=8), ctx.router(hwm=8)
    route = client.route(server.bind(Endpoints(transport, ctx.namespace).new("server")))
    yield server, client, route
    server.close()
    client.close()


@pytest.fixture(params=["inproc", "tcp"])
def pair(ctx, request):
    """Over tcp, libzmq's I/O thread delivers messages concurrently with our calls: the races an edge-triggered fd
    invites."""
    yield from make_pair(ctx, request.param)


@pytest.fixture
def inproc_pair(ctx):
    """inproc only: there the high-water marks are the whole queue (tcp adds kernel buffers)."""
    yield from make_pair(ctx, "inproc")


def test_a_message_that_arrived_before_a_send_is_received_without_a_new_edge(pair):
    server, client, route = pair
    with gevent.Timeout(5):
        client.send_to(route, [b"hello"])
        sender, _ = server.recv()
        server.reply(sender, [b"first"])
        # The client's fd signalled "readable" once. Sending now may consume that edge inside libzmq; a layer
        # that parked on the fd before trying to receive (or checking EVENTS) would park forever: a lost wake-up.
        client.send_to(route, [b"again"])
        assert client.recv() == [route, b"first"]
        assert server.recv() == [sender, b"again"]


def test_one_edge_for_a_burst_still_delivers_every_message(inproc_pair):
    server, client, route = inproc_pair
    received = []

    burst = 12  # below the two high-water marks (8 + 8): a reply never waits

    def receive():
        for _ in range(burst):
            received.append(client.recv()[1])

    with gevent.Timeout(10):
        client.send_to(route, [b"hello"])
        sender, _ = server.recv()
        receiver = gevent.spawn(receive)
        gevent.idle()  # runs every ready greenlet until it blocks: the receiver is then parked on the fd
        assert not receiver.dead and received == []
        for i in range(burst):  # no yield between sends: the receiver wakes up once to a full queue
            server.reply(sender, [b"%d" % i])
        receiver.join()
    assert received == [b"%d" % i for i in range(burst)]


def test_ping_pong_between_greenlets_never_stalls(pair):
    server, client, route = pair

    def echo():
        for _ in range(2000):
            sender, *frames = server.recv()
            server.reply(sender, frames)

    echoing = gevent.spawn(echo)
    with gevent.Timeout(20):
        for i in range(2000):
            client.send_to(route, [b"%d" % i])
            assert client.recv() == [route, b"%d" % i]
    echoing.join(timeout=5)
    assert echoing.dead


def test_a_full_queue_parks_the_sender_until_the_receiver_drains_it(inproc_pair):
    server, client, route = inproc_pair
    total, sent = 500, [0]

    def send_all():
        for i in range(total):
            client.send_to(route, [b"%d" % i])
            sent[0] += 1

    client.clock = clock = FakeClock(autojump=True)  # the sender's back-off, on a clock that jumps when all wait
    try:
        sender = gevent.spawn(send_all)
        # The sender runs until the queue is full (the two high-water marks, 8 + 8) and then parks, retrying with a
        # back-off of at most 50 ms. A sender that dropped or failed instead would be dead by now.
        wait_until(lambda: sent[0] >= 8, timeout=10)
        held = sent[0]
        assert not sender.dead and held < 100, held
        # Letting time pass is the behaviour under test: in 2 s of its clock the sender retries dozens of times, and
        # with nobody receiving it must still be parked, having sent nothing more.
        clock.sleep(2.0)
        assert not sender.dead and sent[0] == held and clock.next_due() is not None  # parked on its next retry
        with gevent.Timeout(20):
            received = [server.recv()[1] for _ in range(total)]
        sender.join(timeout=5)
        assert sender.successful() and sent[0] == total
        assert received == [b"%d" % i for i in range(total)]  # in order, none lost
    finally:
        clock.close()
