"""Hostile input: ten thousand seeded malformed messages to servers, clients and the control socket.

Afterwards the network must answer exactly as the message-free oracle does for the same seed (nothing it was sent
changed any table), every message must have been dropped and counted under its kind, and memory must be flat.
"""
import collections
import ctypes
import json
import random

import gevent
import pytest
from conftest import wait_until
from model import ModelNetwork

from p2pzmq import messages as m
from p2pzmq.config import MAX_CONTROL_MESSAGE_BYTES, MAX_CONTROL_REQUEST_BYTES
from p2pzmq.control import ControlClient, ControlServer
from p2pzmq.errors import ProtocolError, RpcTimeout
from p2pzmq.resources import rss_bytes
from p2pzmq.contact import Contact
from p2pzmq.timeline import untimed

pytestmark = pytest.mark.timeout(120)

MAX_BYTES = 64 * 1024
PER_SOCKET_KIND = {"server": 5_000, "client": 4_000, "control": 1_200}
ROUNDS = 4  # memory is compared between the later rounds, once allocator pools have warmed up


def _contact(rng):
    peer_id = rng.getrandbits(160)
    return Contact(peer_id, f"inproc://fuzz/{peer_id}", f"inproc://fuzz/{peer_id}")


def peer_garbage(rng, to_server: bool) -> tuple[list[bytes], str]:
    """One malformed or unexpected message for a peer (``to_server``: sent to its server's endpoint, else to its
    client's: both are the peer's one socket, where everything is counted), and the counter it must land in."""
    where = "server"
    choice = rng.randrange(9)
    if choice == 0:  # random bytes; the rare draw that is a well-formed message (a command would run) is redrawn
        while True:
            raw = rng.randbytes(rng.randrange(1, 64))
            try:
                m.decode([raw])
            except ProtocolError:
                return [raw], where
    if choice == 1:
        whole = m.encode(m.GetPeers(rng.randrange(1, 99), rng.randrange(1, 99), _contact(rng)))[0]
        return [whole[:rng.randrange(1, len(whole))]], where  # truncated
    if choice == 2:
        return [b"\x00" * (MAX_BYTES + 1)], where  # above the size limit
    if choice == 3:
        return [bytes([rng.randrange(len(m.KINDS), 256)]) + rng.randbytes(12)], where  # unknown message kind
    if choice == 4:  # a known kind naming a contact whose endpoint is not a ZeroMQ one
        bad = Contact(rng.getrandbits(160), f"http://fuzz/{rng.randrange(99)}", "inproc://fuzz")
        return m.encode(rng.choice([m.GetPeers, m.Join, m.ClosestReply])(1, 1, bad)), where
    if choice == 5:  # a reply to a request never sent (or with a wrong cookie)
        reply = rng.choice([m.Done(rng.randrange(1, 2**40), rng.randrange(1, 2**32)),
                            m.ClosestReply(rng.randrange(1, 2**40), rng.randrange(1, 2**32), _contact(rng)),
                            m.PeersReply(7, 7, [_contact(rng) for _ in range(rng.randrange(4))])])
        return m.encode(reply), where
    if choice == 6:
        return [m.encode(m.Done(1, 1))[0], b"two frames"], where
    if choice == 7:
        return [m.encode(m.ClientPeers(1, 1))[0] + rng.randbytes(rng.randrange(1, 9))], where  # trailing bytes
    if to_server:  # an update with a wrong secret cookie: ignored and counted
        contacts = [_contact(rng) for _ in range(rng.randrange(1, 5))]
        return m.encode(m.UpdatePeers(rng.randrange(1, 2**32), contacts)), where
    return m.encode(m.ClientNodes(1, 1, 5, 6)), where  # a command of another protocol (Kademlia's)


def control_garbage(rng) -> bytes:
    choice = rng.randrange(6)
    if choice == 0:
        return rng.randbytes(rng.randrange(1, 64))
    if choice == 1:
        return json.dumps({"cmd": "net_status"}).encode()[:rng.randrange(1, 20)]
    if choice == 2:
        return json.dumps(rng.choice([[1, 2], "ping", 3, None, {"command": "ping"}, {"cmd": 5}])).encode()
    if choice == 3:
        return json.dumps({"cmd": f"no_such_{rng.randrange(1000)}"}).encode()
    if choice == 4:
        return json.dumps(rng.choice([{"cmd": "time_lapse", "steps": "2"}, {"cmd": "time_lapse", "steps": -1},
                                      {"cmd": "kill_peers"}, {"cmd": "add_peers", "n": 0},
                                      {"cmd": "ping", "extra": 1}, {"cmd": "churn", "join_rate": 1}])).encode()
    return b"{" * rng.randrange(1, 2000)  # deeply nested, unterminated JSON


def settled_rss() -> int:
    """Resident memory once the C allocator has handed freed heap back: the oversized messages queue up in libzmq
    by the hundred, and glibc keeps the freed memory of such a burst, more or less depending on their order; that is
    not memory the network holds on to."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: measure as it is
        pass
    return rss_bytes()


def barrier(tester, peer) -> None:
    """Return once ``peer`` has handled everything ``tester`` sent it before (at its server's and client's endpoints,
    which are one socket, served in order), so a reply to a later request comes after. Neither request changes a table:
    the server's ``find_closest`` then adds its sender, here the peer's own, identical entry (no shape change)."""
    for endpoint, request in ((peer.contact.server, m.FindClosest(1, 1, peer.contact, peer.id)),
                              (peer.contact.client, m.ClientPeers(1, 1))):
        route = tester.route(endpoint)
        with gevent.Timeout(10):
            tester.send_to(route, m.encode(request))
            sender, *_ = tester.recv()
        assert sender == route


def test_ten_thousand_malformed_messages_change_nothing_and_are_all_counted(make_network):
    seed = 21
    net = make_network(24, seed=seed, client_timeout=1.0, max_message_bytes=MAX_BYTES)
    server = ControlServer(net, "tcp://127.0.0.1:0").start()
    control = ControlClient(server.endpoint, timeout=10)
    tester = net._ctx.router()  # a hostile peer inside the same process, to reach inproc endpoints
    rng = random.Random(seed)
    expected: collections.Counter = collections.Counter()
    rss = []
    try:
        for _ in range(ROUNDS):
            for kind, total in PER_SOCKET_KIND.items():
                for _ in range(total // ROUNDS):
                    if kind == "control":
                        reply = control.request(control_garbage(rng))
                        assert reply["ok"] is False and reply["error"] and "\n" not in reply["error"]
                        expected["control"] += 1
                        continue
                    peer = rng.choice(net.peers)
                    frames, counter = peer_garbage(rng, kind == "server")
                    endpoint = peer.contact.server if kind == "server" else peer.contact.client
                    tester.send_to(tester.route(endpoint), frames)
                    expected[counter] += 1
            for peer in net.peers:
                barrier(tester, peer)
            assert net.counters["dropped"] == sum(expected.values())  # every message so far handled, and counted
            rss.append(settled_rss())
        sent = sum(expected.values())
        assert sent >= 10_000
        stats = control.call("stats")
        assert stats["dropped_by_kind"] == dict(expected) and stats["dropped"] == sent
        reasons = stats["dropped_by_reason"]
        assert sum(reasons.values()) == sent
        assert set(reasons) >= {"frames", "too_large", "truncated", "trailing", "unknown_kind", "bad_field",
                                "unexpected", "bad_secret", "bad_request"}

        model = ModelNetwork(seed)
        model.create(24)
        assert untimed(control.call("net_status")) == model.net_status()  # still served, and correct
        print("fuzz rss per round (MiB):", [round(value / 2**20, 1) for value in rss])
        assert rss[-1] - rss[1] < 4 * 2**20, rss  # flat: later rounds of thousands of messages cost nothing lasting
    finally:
        tester.close()
        control.close()
        server.stop()


def test_frames_above_maxmsgsize_over_tcp_cost_the_sender_its_connection_and_nothing_else(make_network):
    """Over tcp, libzmq itself refuses a frame above MAXMSGSIZE and drops that connection (the message never reaches
    the peer, so it is not counted); the peer and the control socket go on serving everyone else."""
    net = make_network(4, seed=22, transport="tcp", max_message_bytes=MAX_BYTES)
    server = ControlServer(net, "tcp://127.0.0.1:0").start()
    tester = net._ctx.router()
    try:
        peer = net.peers[0]
        with gevent.Timeout(5):
            tester.send_to(tester.route(peer.contact.server), [b"\x00" * (2 * MAX_BYTES)])
        with ControlClient(server.endpoint, timeout=0.5) as hostile:
            with pytest.raises(RpcTimeout):  # above what the control socket takes at all (64 MiB)
                hostile.request(b"{" + b" " * MAX_CONTROL_MESSAGE_BYTES + b"}")
            hostile.timeout = 30
            assert hostile.call("ping") == {"n": 4}  # a fresh REQ socket (Lazy Pirate) is served again
            reply = hostile.request(b"{" + b" " * MAX_CONTROL_REQUEST_BYTES + b"}")  # taken, and refused
            assert reply == {"ok": False, "error": f"request too large: {MAX_CONTROL_REQUEST_BYTES + 2} bytes, "
                                                   f"at most {MAX_CONTROL_REQUEST_BYTES}"}
        tester.forget(peer.contact.server)
        route = tester.route(peer.contact.server)
        with gevent.Timeout(5):
            tester.send_to(route, m.encode(m.Done(1, 1)))  # well-formed, though a reply nobody asked for
        wait_until(lambda: net.counters["dropped.server"] == 1)
        model = ModelNetwork(22)
        model.create(4)
        with ControlClient(server.endpoint, timeout=30) as ctl:
            assert untimed(ctl.call("net_status")) == model.net_status()
        # The unexpected message and the refused request; the oversized ones never arrived.
        assert net.counters["dropped"] == 2 and net.counters["dropped.control"] == 1
    finally:
        tester.close()
        server.stop()
