"""The request/reply layer (p2pzmq/rpc.py) against hand-driven servers: matching, windows, deadlines, liveness,
what is offered to the owner, and the counters; and the worker link's codec (p2pzmq/link.py). Matching runs over real
inproc sockets; timing (deadlines, windows, progress, liveness) runs through the socket seam on a fake clock
(tests/fakes.py), where every time is exact."""
import itertools
import random
import re

import gevent
import gevent.event
import pytest

from conftest import wait_until
from fakes import FakeNet
from p2pzmq import link
from p2pzmq.clock import FakeClock
from p2pzmq import messages as m
from p2pzmq.errors import ProtocolError, RpcTimeout, TransportError
from p2pzmq.rpc import GONE, SILENT, Caller, Channel, Counters, Liveness, Outcome, Request
from p2pzmq.contact import Contact
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


def ask(caller, how: str, endpoint: str):
    """The reply to one ``Leave`` sent to ``endpoint`` by ``caller.call`` or in a window of ``caller.call_many``."""
    if how == "call":
        return caller.call(endpoint, m.Leave, (ME,), m.Done, 2.0)
    (result,) = caller.call_many([Request(endpoint, m.Leave, (ME,), m.Done)], 2.0, window=1)
    assert result.replied
    return result.reply


@pytest.mark.parametrize("how", ["call", "call_many"])
def test_a_reply_with_the_right_request_id_but_a_wrong_cookie_is_dropped_and_counted(wire, how):
    caller, server, counters, offered = wire

    def forge_first(route, request):
        wrong = (request.cookie % 2**32 + 1, (request.cookie - 2) % 2**32 + 1)  # the next cookie, the one before
        return [m.encode(m.Done(request.req_id, cookie)) for cookie in wrong] + echo_done(route, request)

    peer = server(forge_first)
    reply = ask(caller, how, peer.endpoint)
    assert reply.cookie == peer.seen[0].cookie
    assert counters["dropped.client"] == counters["dropped_reason.unmatched"] == 2
    assert [type(msg) for msg in offered] == [m.Done] * 2  # offered to the owner first, who declined them


@pytest.mark.parametrize("how", ["call", "call_many"])
def test_a_reply_of_the_wrong_kind_or_an_unknown_request_is_not_taken(wire, how):
    caller, server, counters, _ = wire

    def confuse(route, request):
        return [m.encode(m.PeersReply(request.req_id, request.cookie, [])),  # right tags, wrong kind
                m.encode(m.Done(request.req_id + 1000, request.cookie)),  # a request never sent
                m.encode(m.Done(request.req_id - 1, request.cookie)),  # nor this one (the first id is 1)
                m.encode(m.Done(request.req_id, request.cookie))]

    assert ask(caller, how, server(confuse).endpoint).req_id == 1
    assert counters["dropped_reason.unmatched"] == 3 and counters["requests"] == 1


@pytest.mark.parametrize("how", ["call", "call_many"])
def test_commands_that_arrive_while_waiting_go_to_the_owner_with_the_route_they_came_on(wire, how):
    caller, server, counters, _ = wire
    offered = []  # the owner answers a command on the route it came on: it must get that route
    owner = Caller(sock=caller.sock, codec=m.Codec(), counters=counters, cookies=random.Random(5), where="client",
                   on_unmatched=lambda route, msg: offered.append((route, msg)) or True)

    def command_first(route, request):
        return [m.encode(m.Refresh(9, 9)), m.encode(m.Done(request.req_id, request.cookie))]

    peer = server(command_first)
    ask(owner, how, peer.endpoint)
    assert offered == [(caller.sock.route(peer.endpoint), m.Refresh(9, 9))] and counters["dropped"] == 0


@pytest.mark.parametrize("how", ["call", "call_many"])
def test_malformed_frames_are_dropped_with_the_codecs_reason(wire, how):
    caller, server, counters, _ = wire
    peer = server(lambda route, request: [[b"\x00garbage"], m.encode(m.Done(request.req_id, request.cookie))])
    assert ask(caller, how, peer.endpoint).req_id == 1
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


def test_a_strict_window_that_times_out_says_how_many_requests_got_no_reply(wire):
    caller, server, _, _ = wire
    silent = server(lambda route, request: [])
    request = Request(silent.endpoint, m.Leave, (ME,), m.Done)
    with pytest.raises(RpcTimeout, match=f"^no reply from {re.escape(silent.endpoint)}$"):
        caller.call_many([request], 0.05, window=2, strict=True)
    with pytest.raises(RpcTimeout, match=f"^2 request\\(s\\) to {re.escape(silent.endpoint)} and others got no reply$"):
        caller.call_many([request, request], 0.05, window=2, strict=True)


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


def test_results_come_back_in_request_order_with_their_replies(wire):
    caller, server, counters, _ = wire
    peers = [server(echo_done) for _ in range(4)]
    results = caller.call_many([Request(peer.endpoint, m.Leave, (ME,), m.Done, index)
                                for index, peer in enumerate(peers)], 2.0, window=3)
    assert [result.outcome for result in results] == [Outcome.REPLIED] * 4
    assert [result.reply.cookie for result in results] == [peer.seen[0].cookie for peer in peers]


def test_call_many_takes_the_requests_and_timeout_by_name_too_and_the_window_only_by_name(wire):
    """A timeout and a window are both numbers: the window is named at every call, so the two cannot be swapped."""
    caller, server, _, _ = wire
    request = Request(server(echo_done).endpoint, m.Leave, (ME,), m.Done)
    (result,) = caller.call_many(requests=[request], timeout=2.0, window=1)
    assert result.replied
    with pytest.raises(TypeError):
        caller.call_many([request], 2.0, 1)


def test_without_an_owner_whatever_answers_nothing_is_dropped_and_counted(wire):
    caller, server, counters, _ = wire
    supervisor = Caller(caller.sock, m.Codec(), counters, random.Random(5), where="supervisor")
    peer = server(lambda route, request: [m.encode(m.Refresh(9, 9))] + echo_done(route, request))
    supervisor.call(peer.endpoint, m.Leave, (ME,), m.Done, 2.0)
    assert supervisor.call_many([Request(peer.endpoint, m.Leave, (ME,), m.Done)], 2.0, window=1)[0].replied
    assert counters["dropped.supervisor"] == counters["dropped_reason.unmatched"] == counters["dropped"] == 2


@pytest.fixture
def blocked():
    """A caller, its counters, and an endpoint its messages cannot reach: a socket that never reads, its queue and
    the caller's (high-water marks of 1) full."""
    ctx = Context()
    sink = ctx.router(hwm=1)
    endpoint = sink.bind(Endpoints("inproc", ctx.namespace).new("sink"))
    sock = ctx.router(hwm=1)
    counters = Counters()

    def fill() -> None:
        route = sock.route(endpoint)
        assert sock.send_to(route, [b"queued"], 1.0)
        for _ in range(8):
            if not sock.send_to(route, [b"queued"], 0.01):
                return
        pytest.fail("the queue to the sink never filled up")

    fill()
    yield Caller(sock, m.Codec(), counters, random.Random(3), where="client"), endpoint, counters, fill
    sock.close()
    sink.close()
    assert ctx.term() == 0


def test_a_request_that_cannot_leave_is_a_timeout_and_its_connection_is_dropped(blocked):
    caller, endpoint, counters, fill = blocked
    with pytest.raises(RpcTimeout, match="could not send"):
        caller.call(endpoint, m.Leave, (ME,), m.Done, 0.05)
    assert counters["timeouts"] == 1 and caller.sock.connections == 0
    fill()  # a new connection, full again
    assert caller.call_many([Request(endpoint, m.Leave, (ME,), m.Done)], 0.05, window=1) == [SILENT]
    assert counters["timeouts"] == 2 and counters["requests"] == 0 and counters["undeliverable"] == 0


def test_a_destination_declared_gone_while_its_message_waits_to_leave_is_gone(blocked):
    """With a liveness check every 10 ms, a message that cannot leave is waited for in slices, between which the
    destination is asked about: gone at the second check after the one before sending, it is not waited for."""
    caller, endpoint, counters, _ = blocked
    checks = []
    liveness = Liveness(lambda key: checks.append(key) or len(checks) < 3, every=0.01)
    assert caller.call_many([Request(endpoint, m.Leave, (ME,), m.Done, "far")], 5.0, window=1,
                            liveness=liveness) == [GONE]
    assert checks == ["far"] * 3 and counters["requests"] == 0 and counters["timeouts"] == 0


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


def test_a_channel_hands_over_to_a_waiting_greenlet_and_yields_only_then(wire):
    """A greenlet that uses the channel again and again lets one that waits for it in between; with nobody
    waiting, leaving the channel does not yield (a round through the event loop for nothing)."""
    caller, server, counters, _ = wire
    channel = Channel(caller)
    peer = server(echo_done)
    order = []

    def use(name, times):
        for _ in range(times):
            channel.call(peer.endpoint, m.Leave, (ME,), m.Done, 2.0)
            order.append(name)

    first = gevent.spawn(use, "a", 3)
    second = gevent.spawn(use, "b", 1)  # waits for the channel while the first greenlet's first call is out
    gevent.joinall([first, second], raise_error=True)
    assert order == ["a", "b", "a", "a"]
    bystander = gevent.spawn(order.append, "bystander")
    with channel.exclusive():
        with channel.exclusive():
            pass
    assert order[-1] == "a" and not bystander.dead  # it has had no chance to run
    bystander.join()

    def wait_for_the_channel():
        with channel.exclusive():
            order.append("waiter")

    with channel.exclusive():
        waiter = gevent.spawn(wait_for_the_channel)
        gevent.sleep(0)  # it now waits for the channel
        bystander = gevent.spawn(order.append, "bystander again")
        with channel.exclusive():
            pass
        assert not bystander.dead  # leaving a nested hold does not yield, though a greenlet waits
    waiter.join()
    assert order[-2:] == ["bystander again", "waiter"]


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


@pytest.mark.parametrize("junk", ["unmatched", "malformed"])
@pytest.mark.parametrize("how", ["call", "call_many"])
def test_a_flood_of_messages_that_answer_nothing_cannot_hold_a_request_open(wire, how, junk):
    """Unmatched replies (or frames that are no message) keep arriving, faster than the timeout, for as long as the
    test lasts: the request must still expire after its timeout (were only silence to end it, this test would run
    into its own timeout)."""
    caller, server, counters, _ = wire
    floods = []

    def flood(route, request):
        def keep_sending():
            for number in itertools.count(request.req_id + 1):
                peer.sock.reply(route, m.encode(m.Done(number, request.cookie)) if junk == "unmatched" else [b"\x00"])
                gevent.sleep(0.001)
        floods.append(gevent.spawn(keep_sending))
        return []

    peer = server(flood)
    reason = "unmatched" if junk == "unmatched" else "truncated"
    try:
        if how == "call":
            with pytest.raises(RpcTimeout):
                caller.call(peer.endpoint, m.Leave, (ME,), m.Done, 0.2)
        else:
            assert caller.call_many([Request(peer.endpoint, m.Leave, (ME,), m.Done)], 0.2, window=1) == [SILENT]
        assert counters["timeouts"] == 1 and counters["dropped"] == counters[f"dropped_reason.{reason}"] > 10
    finally:
        gevent.killall(floods)


def test_a_reply_from_another_peer_than_the_one_asked_is_not_taken(wire):
    """Two other peers echo the request id and cookie of a request sent to a third, one on a route that sorts before
    the one asked and one after: both are offered to the owner, in a single call and in a window, and the reply of
    the peer asked is taken."""
    caller, server, counters, offered = wire
    route_to_caller = {}

    def remember(name):
        def answer(route, request):
            route_to_caller[name] = route
            return echo_done(route, request)
        return answer

    def forge_then_answer(route, request):
        if len(route_to_caller) == 2:  # the routes are known: the others forge this reply first
            for name, forger in forgers.items():
                forger.sock.reply(route_to_caller[name], m.encode(m.Done(request.req_id, request.cookie)))
            wait_until(lambda: counters["dropped_reason.unmatched"] == len(answered) * 2, timeout=5)
        answered.append(request)
        return echo_done(route, request)

    answered = []
    forgers = {"before": server(remember("before"))}
    asked = server(forge_then_answer)
    forgers["after"] = server(remember("after"))
    first = caller.call_many([Request(peer.endpoint, m.Leave, (ME,), m.Done) for peer in
                              (forgers["before"], asked, forgers["after"])], 5.0, window=3)
    assert [result.outcome for result in first] == [Outcome.REPLIED] * 3 and counters["dropped"] == 0
    assert caller.call(asked.endpoint, m.Leave, (ME,), m.Done, 5.0).req_id == answered[-1].req_id
    assert counters["dropped_reason.unmatched"] == 2 and len(offered) == 2
    again = caller.call_many([Request(asked.endpoint, m.Leave, (ME,), m.Done)], 5.0, window=1)
    assert again[0].replied and again[0].reply.req_id == answered[-1].req_id
    assert counters["dropped_reason.unmatched"] == 4 and len(offered) == 4


def test_a_call_to_a_gone_inproc_endpoint_is_undeliverable_at_once(wire):
    caller, _, counters, _ = wire
    with pytest.raises(TransportError, match="nothing is bound") as raised:
        caller.call("inproc://nobody", m.Leave, (ME,), m.Done, 1.0)
    assert not isinstance(raised.value, RpcTimeout)
    assert counters["undeliverable"] == 1 and counters["requests"] == 0 and counters["timeouts"] == 0


def test_a_call_with_liveness_raises_on_silence_and_returns_a_reply(wire):
    caller, server, counters, _ = wire
    liveness = Liveness(lambda key: True)
    with pytest.raises(RpcTimeout):
        caller.call(server(lambda route, request: []).endpoint, m.Leave, (ME,), m.Done, 0.05, liveness, "silent")
    peer = server(echo_done)
    assert caller.call(peer.endpoint, m.Leave, (ME,), m.Done, 2.0, liveness, "answers") == m.Done(
        peer.seen[0].req_id, peer.seen[0].cookie)
    assert counters["timeouts"] == 1 and counters["requests"] == 2


# -- timing, exactly: the socket seam on a fake clock ------------------------------------------------------------


@pytest.fixture
def fake():
    """A caller on a fake socket whose clock jumps whenever nothing can run; the net to put servers on."""
    clock = FakeClock(autojump=True)
    net = FakeNet(clock)
    counters = Counters()
    caller = Caller(net.socket(), m.Codec(), counters, random.Random(3), where="client")
    yield caller, net, clock, counters
    clock.close()


def done_after(*delays, shift=0):
    """A server answering each request with a ``Done`` after each of ``delays`` seconds (for request id + shift: 0
    is the reply awaited, anything else answers nothing)."""
    def answer(frames):
        request = m.decode(frames)
        return [(delay, m.encode(m.Done(request.req_id + shift, request.cookie))) for delay in delays]
    return answer


def leave(endpoint, key=None):
    return Request(endpoint, m.Leave, (ME,), m.Done, key)


def test_fake_a_reply_in_time_is_taken_at_its_arrival(fake):
    caller, net, clock, counters = fake
    assert caller.call(net.serve("fake://a", done_after(0.75)), m.Leave, (ME,), m.Done, 1.0).req_id == 1
    assert clock.now() == 0.75 and counters["requests"] == 1 and counters["timeouts"] == 0


def test_fake_silence_is_a_timeout_exactly_at_the_timeout(fake):
    caller, net, clock, counters = fake
    silent = net.serve("fake://silent", lambda frames: [])
    with pytest.raises(RpcTimeout, match="no reply from fake://silent"):
        caller.call(silent, m.Leave, (ME,), m.Done, 0.5)
    assert clock.now() == 0.5 and caller.sock.forgotten == [silent]
    assert caller.call_many([leave(silent)], 0.25, window=4) == [SILENT] and clock.now() == 0.75
    assert counters["timeouts"] == 2


def test_fake_a_reply_due_with_the_deadline_counts_if_it_was_on_its_way_first(fake):
    """A reply and the deadline due at one instant: the reply was scheduled when the request went out, before the
    wait's timer, so it is taken (ties go in order of scheduling)."""
    caller, net, clock, counters = fake
    assert caller.call(net.serve("fake://tie", done_after(1.0)), m.Leave, (ME,), m.Done, 1.0).req_id == 1
    assert clock.now() == 1.0 and counters["timeouts"] == 0


def test_fake_a_late_reply_is_a_timeout_and_never_taken_later(fake):
    caller, net, clock, counters = fake
    late = net.serve("fake://late", done_after(1.25))
    with pytest.raises(RpcTimeout):
        caller.call(late, m.Leave, (ME,), m.Done, 1.0)
    assert clock.now() == 1.0
    clock.advance(5)  # its connection was dropped: the late reply is lost with it
    assert caller.sock.recv(0) is None and counters["timeouts"] == 1


def test_fake_a_call_that_gets_something_else_first_gives_up_a_timeout_after_it(fake):
    """Something unmatched at 0.25 s: from then on the call waits at most its timeout in all, not afresh per
    message."""
    caller, net, clock, counters = fake
    chatty = net.serve("fake://chatty", done_after(0.25, 0.5, 0.75, shift=1))
    with pytest.raises(RpcTimeout):
        caller.call(chatty, m.Leave, (ME,), m.Done, 1.0)
    assert clock.now() == 1.25 and counters["dropped_reason.unmatched"] == 3


def test_fake_a_message_arriving_at_the_deadline_is_read_and_the_call_ends_then(fake):
    """Unmatched messages keep coming; one arrives exactly at the deadline (1.5 s): it is read, and the call ends at
    that instant, without waiting for the next one due at that same instant or a moment later."""
    caller, net, clock, counters = fake
    chatty = net.serve("fake://chatty", done_after(0.5, 1.5, 1.5, 1.75, shift=1))
    with pytest.raises(RpcTimeout):
        caller.call(chatty, m.Leave, (ME,), m.Done, 1.0)
    assert clock.now() == 1.5 and counters["dropped_reason.unmatched"] == 2


def test_fake_a_window_sends_at_most_window_requests_before_collecting(fake):
    caller, net, clock, counters = fake
    peers = [net.serve(f"fake://{index}", done_after(1.0)) for index in range(5)]
    results = caller.call_many([leave(peer) for peer in peers], 5.0, window=2)
    assert [result.outcome for result in results] == [Outcome.REPLIED] * 5
    assert [when for _, _, when in caller.sock.sent] == [0, 0, 1, 1, 2] and clock.now() == 3


@pytest.mark.parametrize("second, outcome, ends", [(1.5, Outcome.REPLIED, 1.5), (1.75, Outcome.SILENT, 1.5)])
def test_fake_a_reply_is_progress_that_gives_the_rest_of_the_window_another_timeout(fake, second, outcome, ends):
    """A window of two, replies due at 0.5 s and at ``second``, a timeout of 1 s: the first reply moves the deadline
    to 1.5 s, so a second reply by then counts and a later one does not."""
    caller, net, clock, counters = fake
    results = caller.call_many([leave(net.serve("fake://first", done_after(0.5))),
                                leave(net.serve("fake://second", done_after(second)))], 1.0, window=2)
    assert [result.outcome for result in results] == [Outcome.REPLIED, outcome] and clock.now() == ends


def test_fake_liveness_skips_the_gone_and_stops_waiting_for_them(fake):
    """Checked every 0.25 s, the silent peer is declared gone at 1 s: the window ends then, not at its timeout
    (10 s) or its grace (5 s more)."""
    caller, net, clock, counters = fake
    alive = {"answers": True, "silent": True, "gone": False}
    clock.call_later(1.0, alive.__setitem__, "silent", False)
    requests = [leave(net.serve("fake://answers", done_after(0.5)), "answers"),
                leave(net.serve("fake://silent", lambda frames: []), "silent"), leave("fake://nobody", "gone")]
    results = caller.call_many(requests, 10.0, window=8, liveness=Liveness(alive.get, every=0.25, grace=5.0))
    assert results[0].replied and results[1:] == [GONE, GONE] and clock.now() == 1.0
    assert counters["requests"] == 2 and counters["timeouts"] == 0
    with pytest.raises(TransportError, match="is gone"):
        caller.call("fake://nobody", m.Leave, (ME,), m.Done, 1.0, Liveness(alive.get), "gone")


@pytest.mark.parametrize("grace, ends", [(0.0, 0.5), (1.0, 1.5)])
def test_fake_liveness_waits_the_timeout_and_its_grace_for_a_reply_and_no_longer(fake, grace, ends):
    caller, net, clock, counters = fake
    silent = net.serve("fake://silent", lambda frames: [])
    assert caller.call_many([leave(silent)], 0.5, window=1,
                            liveness=Liveness(lambda key: True, every=0.125, grace=grace)) == [SILENT]
    assert clock.now() == ends and counters["timeouts"] == 1


def test_fake_a_request_that_cannot_leave_is_a_timeout_at_its_timeout(fake):
    caller, net, clock, counters = fake
    stuck = net.serve("fake://stuck", done_after(0))
    caller.sock.stalled.add(stuck)
    with pytest.raises(RpcTimeout, match="could not send"):
        caller.call(stuck, m.Leave, (ME,), m.Done, 0.5)
    assert clock.now() == 0.5 and caller.sock.forgotten == [stuck] and counters["requests"] == 0


def test_fake_with_liveness_a_message_that_cannot_leave_is_silent_after_the_timeout_and_the_grace(fake):
    """Sent in slices of ``every`` (0.25 s) between liveness checks, given up once past timeout + grace (1.5 s):
    at the end of the slice that passes it."""
    caller, net, clock, counters = fake
    stuck = net.serve("fake://stuck", done_after(0))
    caller.sock.stalled.add(stuck)
    checks = []
    liveness = Liveness(lambda key: checks.append(clock.now()) or True, every=0.25, grace=0.5)
    assert caller.call_many([leave(stuck)], 1.0, window=1, liveness=liveness) == [SILENT]
    assert clock.now() == 1.75 and checks == [0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    assert counters["timeouts"] == 1 and counters["undeliverable"] == 0 and counters["requests"] == 0


def test_fake_a_server_on_the_other_side_of_the_seam_answers_through_reply(fake):
    """The answering side through the same seam: a bound fake socket receives the request with the route to
    answer on."""
    caller, net, clock, counters = fake
    server = net.bind("fake://bound")

    def answer():
        route, *frames = server.recv()
        clock.sleep(0.25)
        request = m.decode(frames)
        server.reply(route, m.encode(m.Done(request.req_id, request.cookie)))

    answering = gevent.spawn(answer)
    assert caller.call("fake://bound", m.Leave, (ME,), m.Done, 1.0).req_id == 1 and clock.now() == 0.25
    answering.get()

