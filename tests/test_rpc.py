"""The request/reply layer (p2pzmq/rpc.py) against hand-driven servers: matching, windows, deadlines, liveness,
what is offered to the owner, and the counters; and the worker link's codec (p2pzmq/link.py)."""
import itertools
import random

import gevent
import gevent.event
import pytest

from conftest import wait_until
from p2pzmq import link
from p2pzmq import messages as m
from p2pzmq.errors import ProtocolError, RpcTimeout, TransportError
from p2pzmq.rpc import GONE, SILENT, Caller, Channel, Counters, Liveness, Outcome, Request
from p2pzmq.table import Contact
from p2pzmq.endpoints import Endpoints
from p2pzmq.transport import Context

pytestmark = pytest.mark.timeout(30)
ME = Contact(1, "inproc://me/server", "inproc://me/client")


class Server:
    """A bare ROUTER that answers (or not) as each test says, from its own greenlet."""

    def __init__(self, ctx, endpoints, answer):
        self.sock = ctx.router()
        self.endpoint = self.sock.bind(endpoints.new("server"))
        self.answer = answer  # (route, request) -> list of frames lists to send back
        self.seen = []
        self.greenlet = gevent.spawn(self._run)

    def _run(self):
        while True:
            route, *frames = self.sock.recv()
            request = m.decode(frames)
            self.seen.append(request)
            for reply in self.answer(route, request):
                self.sock.reply(route, reply)

    def close(self):
        self.greenlet.kill()
        self.sock.close()


@pytest.fixture
def wire():
    ctx = Context()
    endpoints = Endpoints("inproc", ctx.namespace)
    made = []

    def server(answer):
        made.append(Server(ctx, endpoints, answer))
        return made[-1]

    client = ctx.router(max_connections=8, handshake_timeout=1.0)
    client.bind(endpoints.new("client"))
    counters = Counters()
    offered = []
    caller = Caller(client, m.Codec(), counters, random.Random(3), where="client",
                    on_unmatched=lambda route, msg: offered.append(msg) or isinstance(msg, m.Refresh))
    yield caller, server, counters, offered
    for each in made:
        each.close()
    client.close()
    assert ctx.term() == 0


def echo_done(route, request):
    return [m.encode(m.Done(request.req_id, request.cookie))]


def test_a_reply_with_the_right_request_id_but_a_wrong_cookie_is_dropped_and_counted(wire):
    caller, server, counters, offered = wire

    def forge_first(route, request):
        return [m.encode(m.Done(request.req_id, request.cookie % 2**32 + 1)),  # forged: wrong cookie
                m.encode(m.Done(request.req_id, request.cookie))]

    peer = server(forge_first)
    reply = caller.call(peer.endpoint, m.Leave, (ME,), m.Done, 2.0)
    assert reply.cookie == peer.seen[0].cookie
    assert counters["dropped.client"] == counters["dropped_reason.unmatched"] == 1
    assert [type(msg) for msg in offered] == [m.Done]  # offered to the owner first, who declined it


def test_a_reply_of_the_wrong_kind_or_an_unknown_request_is_not_taken(wire):
    caller, server, counters, _ = wire

    def confuse(route, request):
        return [m.encode(m.PeersReply(request.req_id, request.cookie, [])),  # right tags, wrong kind
                m.encode(m.Done(request.req_id + 1000, request.cookie)),  # a request never sent
                m.encode(m.Done(request.req_id, request.cookie))]

    assert caller.call(server(confuse).endpoint, m.Leave, (ME,), m.Done, 2.0).req_id == 1
    assert counters["dropped_reason.unmatched"] == 2 and counters["requests"] == 1


def test_commands_that_arrive_while_waiting_go_to_the_owner(wire):
    caller, server, counters, offered = wire

    def command_first(route, request):
        return [m.encode(m.Refresh(9, 9)), m.encode(m.Done(request.req_id, request.cookie))]

    caller.call(server(command_first).endpoint, m.Leave, (ME,), m.Done, 2.0)
    assert offered == [m.Refresh(9, 9)] and counters["dropped"] == 0


def test_malformed_frames_are_dropped_with_the_codecs_reason(wire):
    caller, server, counters, _ = wire
    peer = server(lambda route, request: [[b"\x00garbage"], m.encode(m.Done(request.req_id, request.cookie))])
    caller.call(peer.endpoint, m.Leave, (ME,), m.Done, 2.0)
    assert counters["dropped.client"] == 1 and counters["dropped"] == 1
    assert sum(value for key, value in counters.items() if key.startswith("dropped_reason.")) == 1


def test_silence_is_a_timeout_strict_raises_and_the_connection_is_dropped(wire):
    caller, server, counters, _ = wire
    silent = server(lambda route, request: [])
    with pytest.raises(RpcTimeout):
        caller.call(silent.endpoint, m.Leave, (ME,), m.Done, 0.05)
    assert counters["timeouts"] == 1 and caller.sock.connections == 0
    assert caller.call_many([Request(silent.endpoint, m.Leave, (ME,), m.Done)], 0.05, window=4) == [SILENT]
    assert counters["timeouts"] == 2


def test_a_late_reply_is_never_taken_for_the_next_request(wire):
    caller, server, counters, _ = wire
    held = []

    def late(route, request):  # answers each request only when the next one comes
        held.append(request)
        return [m.encode(m.Done(earlier.req_id, earlier.cookie)) for earlier in held[:-1]][-1:]

    peer = server(late)
    with pytest.raises(RpcTimeout):
        caller.call(peer.endpoint, m.Leave, (ME,), m.Done, 0.05)
    with pytest.raises(RpcTimeout):  # gets the first request's reply only, which must not count
        caller.call(peer.endpoint, m.Leave, (ME,), m.Done, 0.2)
    assert counters["timeouts"] == 2


def test_a_window_sends_at_most_window_requests_before_collecting(wire):
    caller, server, counters, _ = wire
    gate = gevent.event.Event()

    def when_open(route, request):
        gate.wait()
        return echo_done(route, request)

    peers = [server(when_open) for _ in range(5)]
    arrived = lambda: sum(len(peer.seen) for peer in peers)  # noqa: E731
    running = gevent.spawn(caller.call_many, [Request(peer.endpoint, m.Leave, (ME,), m.Done) for peer in peers],
                           5.0, window=2)
    wait_until(lambda: arrived() == 2)
    gevent.sleep(0.02)  # time for a third request to go out if the window let it: none may
    assert arrived() == 2
    gate.set()
    assert [result.outcome for result in running.get(timeout=10)] == [Outcome.REPLIED] * 5
    assert arrived() == 5 and counters["requests"] == 5


def test_results_come_back_in_request_order_with_their_replies(wire):
    caller, server, counters, _ = wire
    peers = [server(echo_done) for _ in range(4)]
    results = caller.call_many([Request(peer.endpoint, m.Leave, (ME,), m.Done, index)
                                for index, peer in enumerate(peers)], 2.0, window=3)
    assert [result.outcome for result in results] == [Outcome.REPLIED] * 4
    assert [result.reply.cookie for result in results] == [peer.seen[0].cookie for peer in peers]


def test_liveness_skips_the_gone_and_stops_waiting_for_them(wire):
    caller, server, counters, _ = wire
    alive = {"answers": True, "silent": True, "gone": False}
    answering, silent = server(echo_done), server(lambda route, request: [])

    def later():
        gevent.sleep(0.05)  # the silent one is declared gone while the caller waits
        alive["silent"] = False

    gevent.spawn(later)
    liveness = Liveness(alive.get, every=0.01, grace=5.0)
    requests = [Request(answering.endpoint, m.Leave, (ME,), m.Done, "answers"),
                Request(silent.endpoint, m.Leave, (ME,), m.Done, "silent"),
                Request("inproc://nobody", m.Leave, (ME,), m.Done, "gone")]
    results = caller.call_many(requests, 10.0, window=8, liveness=liveness)
    assert [result.outcome for result in results] == [Outcome.REPLIED, Outcome.GONE, Outcome.GONE]
    assert results[1:] == [GONE, GONE] and counters["requests"] == 2 and counters["timeouts"] == 0
    with pytest.raises(TransportError, match="is gone"):
        caller.call("inproc://nobody", m.Leave, (ME,), m.Done, 1.0, liveness, "gone")


def test_a_dead_inproc_endpoint_is_undeliverable_at_once(wire):
    caller, _, counters, _ = wire
    assert caller.call_many([Request("inproc://nobody", m.Leave, (ME,), m.Done)], 5.0, window=1) == [SILENT]
    assert counters["undeliverable"] == 1 and counters["timeouts"] == 0 and counters["requests"] == 0


def test_a_channel_lets_one_greenlet_at_a_time_use_the_socket(wire):
    caller, server, counters, _ = wire
    channel = Channel(caller)
    peer = server(echo_done)
    holders, order = [], []

    def use(name):
        with channel.exclusive():
            holders.append(name)
            assert len(holders) == 1, holders  # nobody else inside
            order.append(name)
            channel.call(peer.endpoint, m.Leave, (ME,), m.Done, 2.0)  # re-entrant
            holders.remove(name)

    gevent.joinall([gevent.spawn(use, name) for name in "abcd"], raise_error=True)
    assert sorted(order) == list("abcd") and counters["requests"] == 4


def test_counters_summary_breaks_drops_down_by_place_and_reason():
    counters = Counters()
    counters.drop("server", "too_large")
    counters.drop("server", "unmatched")
    counters.drop("control", "bad_request")
    counters["requests"] += 3
    assert counters.summary() == {"requests": 3, "replies": 0, "timeouts": 0, "dropped": 3,
                                  "dropped_by_kind": {"control": 1, "server": 2},
                                  "dropped_by_reason": {"bad_request": 1, "too_large": 1, "unmatched": 1}}


def test_link_messages_round_trip_and_bad_ones_raise_protocol_errors():
    codec = link.LinkCodec()
    request = link.request(7, 99, link.SPAWN, {"ids": ["1", "2"]})
    assert codec.decode(codec.encode(request)) == request
    reply = link.ok(request, room=5)
    assert codec.decode(codec.encode(reply)) == reply and codec.tag(reply) == (7, 99)
    assert codec.tag(request) is None
    failed = link.failed(request, "no peer\nwith id 3")
    assert codec.decode(codec.encode(failed)).error == "no peer with id 3"
    for frames in ([b"{}", b"{}"], [b"\xff"], [b"[]"], [b'{"req": -1, "cookie": 1, "op": "beat"}'],
                   [b'{"req": 1, "cookie": "x", "op": "beat"}'], [b'{"req": 1, "cookie": 1, "op": "rm -rf"}'],
                   [b'{"req": 1, "cookie": 1, "ok": "yes"}'], [b"[" * 100_000]):
        with pytest.raises(ProtocolError):
            codec.decode(frames)
    assert link.unpack_contact(link.pack_contact(ME)) == ME
    for bad in (["x", "a", "b"], [1, "a", "b"], ["1", "a"], "1,a,b"):
        with pytest.raises(ProtocolError):
            link.unpack_contact(bad)


def test_a_flood_of_messages_that_answer_nothing_cannot_hold_a_window_open(wire):
    """Unmatched replies keep arriving, faster than the timeout, for as long as the test lasts: the window must
    still expire after its timeout (were only silence to end it, this test would run into its own timeout)."""
    caller, server, counters, _ = wire
    floods = []

    def flood(route, request):
        def keep_sending():
            for number in itertools.count(request.req_id + 1):
                peer.sock.reply(route, m.encode(m.Done(number, request.cookie)))
                gevent.sleep(0.001)
        floods.append(gevent.spawn(keep_sending))
        return []

    peer = server(flood)
    try:
        results = caller.call_many([Request(peer.endpoint, m.Leave, (ME,), m.Done)], 0.2, window=1)
        assert results == [SILENT] and counters["timeouts"] == 1 and counters["dropped_reason.unmatched"] > 10
    finally:
        gevent.killall(floods)
