"""The floor of a sequential build for tools/bench.py: what p2pzmq's own pure pieces cost with nothing of its
transport, request/reply layer, peers or supervisor around them, so that a build's CPU can be split into the
protocol, the messages and the layers on top of them.

* :func:`protocol_alone`: the message-free oracle (tests/model.py): ids, tables and walks, one function call per
  request;
* :func:`lean_build`: the same build where every request and every reply is a ZeroMQ message between the two peers'
  own ROUTER sockets, encoded and decoded by ``p2pzmq.messages`` and checked (request id, cookie, route) as the
  simulator checks them, each server run to completion by its sender, all in one greenlet with plain pyzmq calls:
  no green transport, no served sockets, no Caller, no Peer, no supervisor, no timeouts. The same connection rule
  as a peer (a least-recently-used set of ``max_connections`` per join, dropped when the join ends).

Both must end with exactly the oracle's tables (checked by the caller), so the three builds do the same protocol
work and differ only in what carries it.
"""
from __future__ import annotations

import collections
import os
import random
import sys
import time

import zmq
import zmq.backend

from p2pzmq import messages as m
from p2pzmq.config import Config
from p2pzmq.protocols.original.discovery import build_table
from p2pzmq.protocols.original.table import configured
from p2pzmq.ids import new_id
from p2pzmq.contact import Contact

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_send = zmq.backend.Socket.send
_recv = zmq.backend.Socket.recv
_NOBLOCK = int(zmq.NOBLOCK)
_MORE = int(zmq.SNDMORE) | _NOBLOCK


def protocol_alone(n: int, seed: int) -> tuple[float, list[list[int]]]:
    """CPU seconds of the oracle's build of ``n`` peers, and its tables (ids in preorder, newest peer first)."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from model import ModelNetwork

    model = ModelNetwork(seed)
    started = time.process_time()
    model.create(n)
    seconds = time.process_time() - started
    return seconds, model.preorders()


class _LeanPeer:
    """A server ROUTER and a client ROUTER, a table, and the client's connections of the current join."""

    def __init__(self, ctx: zmq.Context, peer_id: int, peers: dict, config: Config, codec: m.Codec) -> None:
        self.contact = Contact(peer_id, f"inproc://lean-server/{peer_id}", f"inproc://lean-client/{peer_id}")
        self.server, self.client = ctx.socket(zmq.ROUTER), ctx.socket(zmq.ROUTER)
        for sock in (self.server, self.client):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.server.bind(self.contact.server)
        self.table = configured(config, [self.contact])
        self._config = config
        self._peers = peers  # server endpoint -> _LeanPeer: whom to run after sending
        self._routes: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._serial = 0
        self._cookies = random.Random(peer_id)
        self._codec = codec  # one per process, as the simulator's peers share theirs
        self.requests = 0

    def serve_one(self) -> None:
        """Answer the request at the head of the server's queue, as Original.serve does."""
        route = _recv(self.server, _NOBLOCK)
        msg = self._codec.decode([_recv(self.server, _NOBLOCK)])
        if type(msg) is m.FindClosest:
            reply = m.ClosestReply(msg.req_id, msg.cookie, self.table.closest(msg.target))
        else:
            reply = m.PeersReply(msg.req_id, msg.cookie, self.table.preorder())
        self.table.add(msg.sender)
        _send(self.server, route, _MORE)
        _send(self.server, m.encode(reply)[0], _NOBLOCK)

    def call(self, endpoint: str, kind: type, args: tuple, reply_kind: type):
        route = self._routes.get(endpoint)
        if route is None:
            if len(self._routes) >= self._config.max_connections:
                self.client.disconnect(self._routes.popitem(last=False)[0])
            self._serial += 1
            route = b"r%d" % self._serial
            self.client.setsockopt(zmq.CONNECT_ROUTING_ID, route)
            self.client.connect(endpoint)
            self._routes[endpoint] = route
        else:
            self._routes.move_to_end(endpoint)
        self.requests += 1
        req_id, cookie = self.requests, self._cookies.getrandbits(32) + 1
        _send(self.client, route, _MORE)
        _send(self.client, m.pack(kind, (req_id, cookie, *args))[0], _NOBLOCK)
        self._peers[endpoint].serve_one()
        sender = _recv(self.client, _NOBLOCK)
        reply = self._codec.decode([_recv(self.client, _NOBLOCK)])
        if type(reply) is not reply_kind or reply.req_id != req_id or reply.cookie != cookie or sender != route:
            raise AssertionError(f"a reply that does not answer request {req_id}")
        return reply

    def find_closest(self, contact: Contact, target: int) -> Contact:
        return self.call(contact.server, m.FindClosest, (self.contact, target), m.ClosestReply).contact

    def join(self, bootstrap: Contact) -> None:
        reply = self.call(bootstrap.server, m.GetPeers, (self.contact,), m.PeersReply)
        self.table = build_table(self.contact, configured(self._config, reply.table), self.find_closest,
                                 self._config.max_hops, capacity=self._config.table_capacity)
        for endpoint in self._routes:
            self.client.disconnect(endpoint)
        self._routes.clear()


def lean_build(n: int, seed: int) -> dict:
    """Build ``n`` peers one join at a time as the simulator does (same ids, same bootstrap choices): CPU and wall
    seconds, requests, and the tables (ids in preorder, newest peer first)."""
    config = Config(seed=seed)
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, 4 * n + 64)
    rng = random.Random(seed)
    peers: dict[str, _LeanPeer] = {}
    codec = m.Codec()
    newest_first: list[_LeanPeer] = []
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            peer = _LeanPeer(ctx, new_id(rng), peers, config, codec)
            peers[peer.contact.server] = peer
            if newest_first:
                peer.join(newest_first[rng.randrange(len(newest_first))].contact)
            newest_first.insert(0, peer)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return {"cpu_s": cpu, "wall_s": wall, "requests": sum(peer.requests for peer in newest_first),
                "tables": [[contact.id for contact in peer.table.preorder()] for peer in newest_first]}
    finally:
        for peer in peers.values():
            peer.server.close(0)
            peer.client.close(0)
        ctx.term()
