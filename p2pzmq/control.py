"""The control socket (docs/DESIGN.md §6): a REQ/REP server speaking one JSON object per message, and its client.

The commands and the checks on their arguments live in :mod:`p2pzmq.commands` (``COMMANDS``), which the CLI reads
too, so the socket and the command line never drift apart. Every request gets exactly one reply; a bad one gets
``{"ok": false, "error": ...}`` and the socket keeps serving. Ids are decimal strings, because 160-bit integers do
not survive JSON numbers in most languages.
"""
from __future__ import annotations

import json
import logging

import gevent
import gevent.event

from .commands import COMMANDS, Command
from .config import MAX_CONTROL_REPLY_BYTES
from .errors import ControlError, P2PError, ProtocolError, RpcTimeout, UsageError
from .transport import Context

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"


def handle(network, raw: bytes) -> tuple[dict, bool]:
    """Run one request against ``network``: (the reply object, whether the server should stop after replying).

    Whatever a client sends, and whatever a command raises, ends in one reply: bytes that are not UTF-8 JSON (NaN
    and Infinity included, or nested too deep), JSON that is not an object with a string ``cmd``, unknown commands
    and bad arguments get an error reply before anything runs; a command that fails gets its error, and a bug in
    one (any other exception, even a stray ``gevent.Timeout``) an ``internal error`` reply and a logged traceback.
    """
    try:
        command, arguments = _parse(raw)
    except UsageError as exc:
        return _error(str(exc)), False
    try:
        result = command.run(network, **arguments)
    except P2PError as exc:
        return _error(str(exc)), False
    except (Exception, gevent.Timeout) as exc:  # a bug must cost one error reply, not the control socket
        log.exception("control command %s failed", command.name)
        return _error(f"internal error in {command.name}: {exc!r}"), False
    return {"ok": True, "result": result}, command.name == "die"


def _parse(raw: bytes) -> tuple[Command, dict]:
    """The command a request names and its checked arguments; :class:`UsageError` for anything else."""
    try:
        request = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise UsageError(f"malformed request: not UTF-8 JSON ({exc})") from None
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        raise UsageError('malformed request: expected {"cmd": "<name>", ...}')
    command = COMMANDS.get(request["cmd"])
    if command is None:
        raise UsageError(f"unknown command {request['cmd']!r:.80}; known: {', '.join(COMMANDS)}")
    return command, command.arguments(request)


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


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
