"""The control socket (docs/DESIGN.md §6): a REQ/REP server speaking one JSON object per message, and its client.

Commands live in one registry, ``COMMANDS``: name -> parameters and the :class:`Network` method that runs it. The
CLI reads the same registry to parse ``run`` and ``ctl`` arguments, so the socket and the command line never drift
apart. Every request gets exactly one reply; a bad one gets ``{"ok": false, "error": ...}`` and the socket keeps
serving. Ids are decimal strings, because 160-bit integers do not survive JSON numbers in most languages.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, Callable

import gevent
import gevent.event

from .config import MAX_CONTROL_REPLY_BYTES
from .errors import ControlError, P2PError, ProtocolError, RpcTimeout, UsageError
from .transport import Context

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"


@dataclasses.dataclass(frozen=True)
class Param:
    """One argument of a control command: its JSON key, its type, and (if not required) its default."""

    name: str
    type: type
    default: Any = None
    required: bool = True


@dataclasses.dataclass(frozen=True)
class Command:
    name: str
    params: tuple[Param, ...]
    run: Callable[..., dict]
    help: str

    def arguments(self, request: dict) -> dict:
        """The validated keyword arguments in ``request``; raises :class:`UsageError` naming what is wrong."""
        known = {param.name for param in self.params} | {"cmd"}
        unknown = sorted(set(request) - known)
        if unknown:
            raise UsageError(f"{self.name} takes no argument {', '.join(unknown)}")
        kwargs = {}
        for param in self.params:
            if param.name not in request:
                if param.required:
                    raise UsageError(f"{self.name} needs argument {param.name!r}")
                kwargs[param.name] = param.default
                continue
            value = request[param.name]
            if param.type is float and type(value) is int:
                value = float(value)  # JSON writes 2.0 as 2
            if type(value) is not param.type:  # bool is not an int here, and 3.0 is not 3
                raise UsageError(f"{self.name}: {param.name} must be {param.type.__name__}, not {value!r}")
            kwargs[param.name] = value
        return kwargs


#: Which peers kill_peers and leave_peers act on: ``count`` drawn with ``seed``, or the listed ``ids``.
_CHOOSE = (Param("count", int, None, False), Param("seed", int, None, False), Param("ids", list, None, False))

COMMANDS: dict[str, Command] = {command.name: command for command in (
    Command("ping", (), lambda net: net.ping(), "number of peers; checks the supervisor answers"),
    Command("net_status", (Param("sample", int, None, required=False), Param("routing", str, "auto", required=False)),
            lambda net, sample, routing: net.net_status(sample, routing),
            "table size and greedy-routing reach of every peer; sample=K estimates it from K random targets per "
            "peer; routing=messages|local|auto"),
    Command("refresh_peers", (), lambda net: net.refresh_peers(), "one discovery pass of every peer, in list order"),
    Command("output_tgf", (Param("path", str),), lambda net, path: net.output_tgf(path),
            "write the overlay as TGF to PATH (on the supervisor's host)"),
    Command("output_graph", (Param("path", str), Param("format", str, "tgf", required=False)),
            lambda net, path, format: net.output_graph(path, format),
            "write the overlay to PATH as format=tgf|graphml|gexf|dot|json (default tgf)"),
    Command("output_png", (Param("path", str), Param("width", int, 1000, required=False),
                           Param("height", int, 1000, required=False)),
            lambda net, path, width, height: net.output_png(path, width, height),
            "draw the overlay to PATH, a width x height pixel PNG (needs the plot extra)"),
    Command("lookup", (Param("from", str), Param("id", str)),
            lambda net, **ids: net.lookup(ids["from"], ids["id"]),
            "the greedy route and the discovery walk from peer FROM to ID (decimal ids); changes no table"),
    Command("time_lapse", (Param("steps", int), Param("format", str, "tgf", required=False),
                           Param("status", bool, False, required=False)),
            lambda net, steps, format, status: net.time_lapse(steps, format=format, status=status),
            "STEPS times: refresh_peers, then write time-lapse-<i>.<format>; status=true also runs net_status "
            "each step and writes time-lapse.json"),
    Command("stats", (), lambda net: net.stats(), "request, reply, timeout and drop counters, memory, fds, timings"),
    Command("attach", (Param("endpoint", str), Param("peers", int, 0, False)),
            lambda net, endpoint, peers: net.attach(endpoint, peers),
            "take on the worker listening at ENDPOINT and create PEERS new peers on it"),
    Command("die", (), lambda net: net.die(), "stop every peer and the supervisor"),
    Command("peers", (), lambda net: net.peer_list(),
            "every peer: id, server and client endpoints, alive flag, state and table size"),
    Command("add_peers", (Param("n", int),), lambda net, n: net.add_peers(n),
            "N more peers, each bootstrapped from a random alive one"),
    Command("kill_peers", _CHOOSE, lambda net, **choice: net.kill_peers(**choice),
            "crash peers (no goodbye): count=K [seed=S] or ids=[...]"),
    Command("leave_peers", _CHOOSE, lambda net, **choice: net.leave_peers(**choice),
            "peers leave gracefully, telling the peers they know: count=K [seed=S] or ids=[...]"),
    Command("churn", (Param("join_rate", float), Param("leave_rate", float), Param("duration", float),
                      Param("crash_fraction", float, 0.5, False), Param("seed", int, None, False),
                      Param("wait", bool, False, False)),
            lambda net, **plan: net.churn(**plan),
            "joins at JOIN_RATE/s, exponential sessions of mean 1/LEAVE_RATE s, for DURATION s, in the background"),
)}


def handle(network, raw: bytes) -> tuple[dict, bool]:
    """Run one request against ``network``: (the reply object, whether the server should stop after replying)."""
    try:
        request = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        return _error(f"malformed request: not JSON ({exc})"), False
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        return _error('malformed request: expected {"cmd": "<name>", ...}'), False
    command = COMMANDS.get(request["cmd"])
    if command is None:
        return _error(f"unknown command {request['cmd']!r}; known: {', '.join(COMMANDS)}"), False
    try:
        result = command.run(network, **command.arguments(request))
    except P2PError as exc:
        return _error(str(exc)), False
    except Exception as exc:  # a bug must cost one error reply, not the control socket of a running network
        log.exception("control command %s failed", command.name)
        return _error(f"internal error in {command.name}: {exc!r}"), False
    return {"ok": True, "result": result}, command.name == "die"


def _error(message: str) -> dict:
    return {"ok": False, "error": " ".join(message.split())}


class ControlServer:
    """Serves ``network`` on a REP socket at ``endpoint`` from one greenlet, one command at a time.

    Requests that arrive during a long command wait their turn in ZeroMQ's queue and are answered in order.
    """

    def __init__(self, network, endpoint: str = DEFAULT_ENDPOINT, keys=None) -> None:
        """With ``keys`` (:class:`~p2pzmq.security.Keys`) only CURVE clients holding the network's key get answers."""
        self.network = network
        self._ctx = Context(max_sockets=16)
        self._sock = self._ctx.rep()
        try:
            if keys is not None:
                keys.serve(self._sock)
            self.endpoint = self._sock.bind(endpoint)
        except P2PError:
            self._ctx.term()
            raise
        self._greenlet: gevent.Greenlet | None = None
        self.stopped = gevent.event.Event()

    def start(self) -> "ControlServer":
        self._greenlet = gevent.spawn(self._serve)
        return self

    def _serve(self) -> None:
        try:
            while True:
                frames = self._sock.recv()
                reply, stop = handle(self.network, frames[-1] if len(frames) == 1 else b"")
                if not reply["ok"]:  # counted with the other dropped messages, so stats shows hostile input
                    self.network.counters.drop("control", "bad_request", reply["error"])
                self._sock.send([json.dumps(reply).encode()])
                if stop:
                    return
        finally:
            self._sock.close()
            self.stopped.set()

    def wait(self) -> None:
        """Block until ``die`` was served (or :meth:`stop` was called)."""
        self.stopped.wait()

    def stop(self) -> None:
        """Stop serving (from another greenlet, e.g. a signal handler) and release the socket."""
        if self._greenlet is not None:
            self._greenlet.kill(timeout=self.network.config.shutdown_timeout)
        self._sock.close()
        self._ctx.term()
        self.stopped.set()


class ControlClient:
    """Sends control commands and returns their results. Usable from any process that can reach the endpoint.

    A request that gets no answer within ``timeout`` raises :class:`RpcTimeout`; the REQ socket is then thrown away
    and a fresh one used next time (the ZeroMQ guide's Lazy Pirate), since a REQ socket cannot send twice in a row.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, timeout: float = 10.0, keys=None) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._keys = keys  # security.Keys: talk CURVE (a CURVE server never answers a client without them)
        # ZeroMQ drops a message over the limit and the REQ socket then waits for nothing: allow large replies.
        self._ctx = Context(max_sockets=16, max_message_bytes=MAX_CONTROL_REPLY_BYTES)
        self._sock = None

    def __enter__(self) -> "ControlClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def request(self, payload: dict | bytes) -> dict:
        """Send one request (a dict, or raw bytes as they are) and return the decoded reply object."""
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        if self._sock is None:
            self._sock = self._ctx.req()
            if self._keys is not None:
                self._keys.dial(self._sock)
            self._sock.connect(self.endpoint)
        try:
            with gevent.Timeout(self.timeout, RpcTimeout(f"no supervisor answered at {self.endpoint} "
                                                         f"within {self.timeout:g} s")):
                self._sock.send([raw])
                frames = self._sock.recv()
        except RpcTimeout:
            self._sock.close()
            self._sock = None
            raise
        try:
            reply = json.loads(frames[-1])
        except ValueError as exc:
            raise ProtocolError(f"the supervisor's reply is not JSON: {exc}") from exc
        if not isinstance(reply, dict) or "ok" not in reply:
            raise ProtocolError("the supervisor's reply has no 'ok' field")
        return reply

    def call(self, cmd: str, **arguments) -> dict:
        """Run ``cmd`` and return its result; an error reply raises :class:`ControlError`."""
        reply = self.request({"cmd": cmd, **arguments})
        if not reply["ok"]:
            raise ControlError(reply.get("error", "unknown error"))
        return reply["result"]

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._ctx.term()
