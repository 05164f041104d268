"""The peer protocol of docs/DESIGN.md §4.4, driven message by message against one real peer."""
import random

import gevent
import pytest
from conftest import wait_until

from p2pzmq import messages as m
from p2pzmq.config import Config
from p2pzmq.peer import Peer
from p2pzmq.rpc import Counters
from p2pzmq.contact import Contact
from p2pzmq.endpoints import Endpoints
from p2pzmq.transport import Context

pytestmark = pytest.mark.timeout(60)


class Harness:
    """One started peer plus a bare ROUTER socket that talks to it the way another peer would."""

    def __init__(self, transport="inproc", **config):
        self.ctx = Context()
        self.endpoints = Endpoints(transport, self.ctx.namespace)
        self.counters = Counters()
        self.codec = m.Codec()
        self.config = Config(transport=transport, client_timeout=0.5, **config)
        self.peer = Peer(10**40, ctx=self.ctx, endpoints=self.endpoints, config=self.config,
                         cookies=random.Random(1), codec=self.codec, counters=self.counters).start()
        self.sock = self.ctx.router()
        self.address = self.sock.bind(self.endpoints.new("tester"))
        self.request_ids = iter(range(1, 10**6))

    def contact(self, peer_id):
        return Contact(peer_id, self.address, self.address)

    def ask(self, endpoint, msg, timeout=5.0):
        route = self.sock.route(endpoint)
        with gevent.Timeout(timeout):
            self.sock.send_to(route, m.encode(msg))
            sender, *frames = self.sock.recv()
        assert sender == route
        return self.codec.decode(frames)

    def tell(self, endpoint, frames):
        self.sock.send_to(self.sock.route(endpoint), frames)

    def table_ids(self):
        return sorted(c.id for c in self.peer.table)

    def close(self):
        self.peer.stop()
        self.sock.close()
        assert self.ctx.term() == 0


@pytest.fixture
def harness():
    h = Harness()
    yield h
    h.close()


def test_get_peers_excludes_a_first_time_caller_and_includes_it_the_second_time(harness):
    caller = harness.contact(5)
    first = harness.ask(harness.peer.contact.server, m.GetPeers(1, 111, caller))
    assert isinstance(first, m.PeersReply) and (first.req_id, first.cookie) == (1, 111)
    assert [c.id for c in first.table] == [harness.peer.id]
    second = harness.ask(harness.peer.contact.server, m.GetPeers(2, 222, caller))
    assert sorted(c.id for c in second.table) == [5, harness.peer.id]
    assert caller in second.table


def test_find_closest_answers_from_the_table_before_adding_the_sender(harness):
    sender = harness.contact(7)
    reply = harness.ask(harness.peer.contact.server, m.FindClosest(1, 9, sender, 7))
    assert isinstance(reply, m.ClosestReply) and reply.cookie == 9
    assert reply.contact == harness.peer.contact  # only the owner was there, though the target is the sender
    again = harness.ask(harness.peer.contact.server, m.FindClosest(2, 9, sender, 7))
    assert again.contact.id == 7


def test_update_peers_with_a_wrong_secret_changes_nothing_and_is_counted(harness):
    peer = harness.peer
    wrong = peer.protocol.secret % (2**32) + 1
    harness.tell(peer.contact.server, m.encode(m.UpdatePeers(wrong, [harness.contact(3), peer.contact])))
    # a request after the update is answered only after the update was handled (one server greenlet, in order)
    harness.ask(peer.contact.server, m.FindClosest(1, 1, harness.contact(8), 8))
    assert harness.counters["dropped_reason.bad_secret"] == harness.counters["dropped.server"] == 1
    assert harness.table_ids() == sorted([peer.id, 8])


def test_update_peers_with_the_secret_replaces_the_table_keeping_its_shape(harness):
    peer = harness.peer
    contacts = [harness.contact(i) for i in (50, 20, 10, 30, 80)] + [peer.contact]
    harness.tell(peer.contact.server, m.encode(m.UpdatePeers(peer.protocol.secret, contacts)))
    harness.ask(peer.contact.client, m.ClientPeers(1, 1))  # any round trip orders us after the update
    reply = harness.ask(peer.contact.client, m.ClientPeers(2, 2))
    assert [c.id for c in reply.table] == [50, 20, 10, 30, 80, peer.id]


def test_client_peers_does_not_add_the_asker(harness):
    reply = harness.ask(harness.peer.contact.client, m.ClientPeers(1, 5))
    assert [c.id for c in reply.table] == [harness.peer.id]
    assert harness.table_ids() == [harness.peer.id]


def test_find_peers_is_one_local_step_per_target(harness):
    peer = harness.peer
    harness.ask(peer.contact.server, m.GetPeers(1, 1, harness.contact(100)))
    reply = harness.ask(peer.contact.client, m.FindPeers(2, 2, [100, 101, peer.id, 10**41]))
    assert isinstance(reply, m.FoundPeers)
    assert [reply.contacts[p].id for p in reply.picks] == [100, peer.table.closest(101).id, peer.id,
                                                           peer.table.closest(10**41).id]


def test_malformed_and_unexpected_messages_are_dropped_and_counted(harness):
    """One socket takes both roles' messages; each kind has one taker, and what neither takes is dropped."""
    peer = harness.peer
    assert peer.contact.server == peer.contact.client and peer.sockets == 1  # one fd while idle
    harness.tell(peer.contact.server, [b"garbage"])
    harness.tell(peer.contact.server, m.encode(m.Done(1, 1)))  # a reply nobody asked for
    harness.tell(peer.contact.client, m.encode(m.ClientNodes(1, 1, 5, 6)))  # a command of another protocol
    harness.tell(peer.contact.client, [b"\x93", b"two frames"])
    assert harness.ask(peer.contact.server, m.GetPeers(9, 9, harness.contact(4))).req_id == 9
    assert harness.ask(peer.contact.client, m.ClientPeers(9, 9)).req_id == 9
    assert harness.counters["dropped.server"] == harness.counters["dropped"] == 4
    assert harness.counters["dropped_reason.unexpected"] == 2


def test_the_client_walks_from_a_socket_of_its_own_and_closes_it_after(harness):
    """Servers see a walking client as a party of its own (not the peer's socket), and an idle peer keeps one fd."""
    peer, sock = harness.peer, harness.sock
    with gevent.Timeout(5):
        sock.send_to(sock.route(peer.contact.client), m.encode(m.Join(1, 1, harness.contact(3))))
        client, *frames = sock.recv()
        request = harness.codec.decode(frames)
        assert isinstance(request, m.GetPeers) and request.sender == peer.contact
        assert client != sock.route(peer.contact.server) and peer.sockets == 2
        sock.reply(client, m.encode(m.PeersReply(request.req_id, request.cookie, [peer.contact])))
        sender, *frames = sock.recv()
    assert isinstance(harness.codec.decode(frames), m.Done) and sender == sock.route(peer.contact.client)
    wait_until(lambda: peer.sockets == 1)


def test_a_join_through_a_silent_server_times_out_as_a_dead_end_not_a_crash(harness):
    silent = harness.ctx.router()  # bound, never answers
    address = silent.bind(harness.endpoints.new("silent"))
    try:
        reply = harness.ask(harness.peer.contact.client, m.Join(1, 1, Contact(3, address, address)), timeout=3)
        assert isinstance(reply, m.Done)
        assert harness.counters["timeouts"] == 1
        assert harness.table_ids() == [harness.peer.id]  # it keeps the table it had
        assert harness.ask(harness.peer.contact.client, m.ClientPeers(2, 2)).req_id == 2
    finally:
        silent.close()


def test_a_reply_with_the_right_request_id_and_route_but_a_wrong_cookie_is_dropped_and_counted(harness):
    """The tester plays the server a joining peer asks: it forges the reply to ``get_peers`` with everything right
    but the cookie. The client must drop it, count it, and go on waiting until its request times out; a genuine
    reply to the next request, differing only in the cookie, is accepted."""
    peer, sock = harness.peer, harness.sock
    me = harness.contact(3)  # the tester's address: the joining client sends its get_peers here
    with gevent.Timeout(5):
        sock.send_to(sock.route(peer.contact.client), m.encode(m.Join(1, 1, me)))
        client, *frames = sock.recv()
        request = harness.codec.decode(frames)
        assert isinstance(request, m.GetPeers) and request.sender == peer.contact
        forged_cookie = request.cookie % 2**32 + 1
        sock.reply(client, m.encode(m.PeersReply(request.req_id, forged_cookie, [harness.contact(4)])))
        sender, *frames = sock.recv()  # the join's Done, once the request has timed out
    assert isinstance(harness.codec.decode(frames), m.Done) and sender == sock.route(peer.contact.client)
    assert harness.counters["dropped.client"] == harness.counters["dropped_reason.unmatched"] == 1
    assert harness.counters["dropped"] == 1
    assert harness.counters["timeouts"] == 1
    assert harness.table_ids() == [peer.id]  # the forged table was not used

    with gevent.Timeout(5):
        sock.send_to(sock.route(peer.contact.client), m.encode(m.Join(2, 2, me)))
        client, *frames = sock.recv()
        request = harness.codec.decode(frames)
        # Only the peer itself in the table: the join then builds its table without asking anyone.
        sock.reply(client, m.encode(m.PeersReply(request.req_id, request.cookie, [peer.contact])))
        sender, *frames = sock.recv()
    assert isinstance(harness.codec.decode(frames), m.Done)
    assert harness.counters["timeouts"] == 1 and harness.counters["dropped"] == 1
    assert harness.counters["requests"] == 2 and harness.table_ids() == [peer.id]
