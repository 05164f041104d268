"""The control socket (docs/DESIGN.md §6): a server speaking REQ/REP with one JSON object per message, and its client.

The commands and the checks on their arguments live in :mod:`p2pzmq.commands` (``COMMANDS``), which the CLI reads
too, so the socket and the command line never drift apart. Every request gets exactly one reply; a bad one gets
``{"ok": false, "error": ...}`` and the socket keeps serving. Ids are decimal strings, because 160-bit integers do
not survive JSON numbers in most languages.

Quick commands (ping, stats, progress, cancel, die) are answered at once, even while a long one runs; long commands
run one at a time, in order of arrival (:class:`ControlServer`).
"""
from __future__ import annotations

import collections
import functools
import json
import logging
from typing import Callable, NamedTuple

import gevent
import gevent.event
import gevent.queue

from .clock import REAL, Clock
from .commands import COMMANDS, Command
from .config import MAX_CONTROL_MESSAGE_BYTES, MAX_CONTROL_REPLY_BYTES, MAX_CONTROL_REQUEST_BYTES
from .errors import Cancelled, ControlError, P2PError, ProtocolError, RpcTimeout, TransportError, UsageError
from .supervision import Group
from .transport import Context

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"
#: Requests taken off the socket and not yet looked at; beyond this, ZeroMQ's own queue holds the rest.
INBOX = 64


def handle(network, raw: bytes) -> tuple[dict, bool]:
    """Run one request against ``network`` to its end, without a server and whether the command is quick or long:
    (the reply object, whether a server should stop after replying). See :func:`execute` for what becomes of
    errors."""
    try:
        command, arguments = _parse(raw)
    except UsageError as exc:
        return error(str(exc)), False
    reply = execute(command.name, lambda: announced(network, command, arguments))
    return reply, command.name == "die" and reply["ok"]


def announced(network, command: Command, arguments: dict, run: Callable[[], dict] | None = None) -> dict:
    """Run ``command`` (or ``run``, the server's own way of doing it) between the ``command`` events of the
    network's stream (docs/EVENTS.md)."""
    with network.engine_busy():  # on the virtual clock, timers fire while a command runs (docs/DESIGN.md §12)
        return network.events.command(command.name, arguments, run or (lambda: command.run(network, **arguments)))


def execute(name: str, run: Callable[[], dict]) -> dict:
    """The reply to command ``name``, whose work is ``run()``. Whatever it raises ends in one reply: a failure its
    error (a cancelled command also ``"cancelled": true`` and the ``phases`` it completed, see
    :class:`~p2pzmq.errors.Cancelled`), and a bug (any other exception, even a stray ``gevent.Timeout``) an
    ``internal error`` reply and a logged traceback."""
    try:
        return {"ok": True, "result": run()}
    except Cancelled as exc:
        return {**error(str(exc)), "cancelled": True, "phases": exc.phases}
    except P2PError as exc:
        return error(str(exc))
    except (Exception, gevent.Timeout) as exc:  # a bug must cost one error reply, not the control socket
        log.exception("control command %s failed", name)
        return error(f"internal error in {name}: {exc!r}")


def encode(reply: dict) -> bytes:
    """``reply`` as JSON; a result that JSON cannot hold exactly (NaN, bytes, a set: a bug) becomes an error reply."""
    try:
        return json.dumps(reply, allow_nan=False).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        log.error("a control reply is not JSON: %r", exc)
        return json.dumps(error(f"internal error: the reply is not JSON ({exc})")).encode()


def _parse(raw: bytes) -> tuple[Command, dict]:
    """The command a request names and its checked arguments; :class:`UsageError` for anything else: bytes that are
    not UTF-8 JSON (NaN and Infinity included, or nested too deep), JSON that is not an object with a string
    ``cmd``, an unknown command, bad arguments."""
    return check_request(decode(raw))


def decode(raw: bytes):
    """The JSON value of a request's bytes; :class:`UsageError` when they are too many or not UTF-8 JSON (NaN and
    Infinity included, or nested too deep)."""
    if len(raw) > MAX_CONTROL_REQUEST_BYTES:
        raise UsageError(f"request too large: {len(raw)} bytes, at most {MAX_CONTROL_REQUEST_BYTES}")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise UsageError(f"malformed request: not UTF-8 JSON ({exc})") from None


def check_request(request) -> tuple[Command, dict]:
    """The command a decoded request names and its checked arguments; :class:`UsageError` for JSON that is not an
    object with a string ``cmd``, an unknown command (:class:`UnknownCommand`), bad arguments."""
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        raise UsageError('malformed request: expected {"cmd": "<name>", ...}')
    command = COMMANDS.get(request["cmd"])
    if command is None:
        raise UnknownCommand(f"unknown command {request['cmd']!r:.80}; known: {', '.join(COMMANDS)}")
    return command, command.arguments(request)


class UnknownCommand(UsageError):
    """A request names no command (the web view answers it 404)."""


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def error(message: str) -> dict:
    return {"ok": False, "error": " ".join(message.split())}


def _envelope(frames: list[bytes]) -> tuple[list[bytes], bytes]:
    """The envelope and the request of a message a ROUTER received: the routing frame and every frame up to the
    empty delimiter (a REQ client sends one) come back with the reply; the one frame after them is the request
    (any other number of frames is no request: ``b""``)."""
    route, rest = frames[:1], frames[1:]
    cut = rest.index(b"") + 1 if b"" in rest else 0
    body = rest[cut:]
    return route + rest[:cut], body[0] if len(body) == 1 else b""


#: Where a reply goes: back through the socket to a REQ client, or to a caller of :meth:`ControlServer.submit`.
Deliver = Callable[[dict], None]


class _Job(NamedTuple):
    command: Command
    arguments: dict
    deliver: Deliver


class ControlServer:
    """Serves ``network`` at ``endpoint``: a ROUTER socket speaking REQ/REP to every client (any ZeroMQ REQ socket).

    Quick commands (``Command.quick``: ping, stats, progress, cancel, die) are answered at once by the server
    greenlet, even while a long command runs. Long commands (all others) run one at a time in a worker greenlet the
    server owns; those arriving meanwhile wait in its queue, in order, and ``progress`` lists them. ``cancel`` stops
    the running one at its next safe point (:meth:`Network.cancel <p2pzmq.network.Network.cancel>`): its own client
    then gets an error reply saying what it completed. ``die`` stops the running command, answers every queued one
    with an error, stops the network, answers, and stops serving.

    The socket is served (docs/DESIGN.md §7.1): its handler only puts each message in the server greenlet's inbox.
    Replies go out whole, without yielding, from the greenlet that has the answer (the server's or the worker).
    """

    def __init__(self, network, endpoint: str = DEFAULT_ENDPOINT, keys=None) -> None:
        """With ``keys`` (:class:`~p2pzmq.security.Keys`) only CURVE clients holding the network's key get answers."""
        self.network = network
        # ZeroMQ drops an oversized message and its connection without a word: take large ones, refuse them here.
        self._ctx = Context(max_sockets=16, max_message_bytes=MAX_CONTROL_MESSAGE_BYTES)
        self._sock = self._ctx.router()
        try:
            if keys is not None:
                keys.serve(self._sock)
            self.endpoint = self._sock.bind(endpoint)
        except P2PError:
            self._ctx.term()
            raise
        self._inbox: gevent.queue.Queue = gevent.queue.Queue()
        self._jobs: collections.deque[_Job] = collections.deque()  # long commands waiting for the worker
        self._job: _Job | None = None  # the one the worker runs
        self._started = 0.0  # when it began
        self._worker: gevent.Greenlet | None = None
        self._group = Group(self._crashed, network.config.shutdown_timeout)  # the server greenlet and the worker
        self._paused = False  # the inbox is full: ZeroMQ's queue holds what comes next
        self._own = {"progress": self._progress, "cancel": self._cancel, "die": self._die}
        self.stopped = gevent.event.Event()

    def start(self) -> "ControlServer":
        self._sock.serve(self._arrived, self._failed)
        self._group.spawn("control server", self._serve)
        return self

    def _crashed(self, what: str, exc: BaseException) -> None:
        """The server greenlet or the worker died of a bug: the supervisor cannot serve on, so :meth:`wait` returns
        and raises (its owner then stops everything, and ``serve`` exits with code 4)."""
        log.error("the %s stopped: %r", what, exc)
        self.stopped.set()

    def _arrived(self, frames: list[bytes]) -> None:
        """The socket's handler: to the inbox; when the server lags far behind, leave the rest in ZeroMQ's queue."""
        self._inbox.put_nowait(frames)
        if self._inbox.qsize() >= INBOX:
            self._paused = True
            self._sock.pause()

    def _failed(self, exc: Exception) -> None:
        log.error("the control socket stopped serving: %r", exc)

    def _serve(self) -> None:
        try:
            while True:
                item = self._inbox.get()
                if self._paused:
                    self._paused = False
                    self._sock.serve(self._arrived, self._failed)
                if isinstance(item, _Job):  # from submit: parsed already
                    stop = self._answer(item.deliver, lambda: (item.command, item.arguments))
                else:
                    envelope, raw = _envelope(item)
                    stop = self._answer(functools.partial(self._send, envelope), lambda: _parse(raw))
                if stop:
                    return
        finally:
            self._sock.close()
            while not self._inbox.empty():  # a submitted request must get its answer: no caller waits forever
                item = self._inbox.get_nowait()
                if isinstance(item, _Job):
                    item.deliver(error(f"{item.command.name} not run: the supervisor is stopping"))
            self.stopped.set()

    def submit(self, command: Command, arguments: dict) -> dict:
        """The reply to a checked request from another front end (the web view's ``POST /api/<command>``), exactly
        as a socket client would get it: quick commands at once, long ones in their turn in the same queue. Blocks
        the calling greenlet, not the server, until the reply."""
        if self.stopped.is_set():
            return self.refuse(f"{command.name} not run: the supervisor is stopping")
        answer: gevent.event.AsyncResult = gevent.event.AsyncResult()
        self._inbox.put_nowait(_Job(command, arguments, answer.set))
        return answer.get()

    def refuse(self, message: str) -> dict:
        """The error reply to a request another front end found bad before :meth:`submit`, counted as the socket's
        bad requests are."""
        reply = error(message)
        self.network.counters.drop("control", "bad_request", reply["error"])
        return reply

    def _answer(self, deliver: Deliver, parse: Callable[[], tuple[Command, dict]]) -> bool:
        """Answer a quick command, or queue a long one; True once ``die`` was answered."""
        try:
            command, arguments = parse()
        except UsageError as exc:
            self._reply(deliver, error(str(exc)))
            return False
        if not command.quick:
            self._jobs.append(_Job(command, arguments, deliver))
            if self._worker is None:
                self._worker = self._group.spawn("control worker", self._work)
            return False
        own = self._own.get(command.name)
        reply = execute(command.name, lambda: announced(self.network, command, arguments, own))
        self._reply(deliver, reply)
        return command.name == "die" and reply["ok"]

    def _work(self) -> None:
        """The worker: run the queued long commands in order, then end (the next one starts a new worker)."""
        try:
            while self._jobs:
                job = self._job = self._jobs.popleft()
                self._started = REAL.now()
                reply = execute(job.command.name, lambda: announced(self.network, job.command, job.arguments))
                self._job = None
                self._reply(job.deliver, reply)
        finally:
            self._job = self._worker = None

    def _reply(self, deliver: Deliver, reply: dict) -> None:
        if not reply["ok"]:  # counted with the other dropped messages, so stats shows hostile input
            self.network.counters.drop("control", "bad_request", reply["error"])
        deliver(reply)

    def _send(self, envelope: list[bytes], reply: dict) -> None:
        try:
            self._sock.reply(envelope[0], [*envelope[1:], encode(reply)])
        except TransportError as exc:  # the client has gone
            self.network.counters.drop("control", "undeliverable", exc)
        self._sock.wake()

    def _progress(self) -> dict:
        """The network's running operation, else the long command running (without phases: it reports none), and
        the commands ``queued`` behind it."""
        try:
            result = self.network.progress()
        except UsageError:
            if self._job is None:
                raise UsageError("nothing is running: no long command is under way") from None
            result = {"running": self._job.command.name, "seconds": round(REAL.now() - self._started, 3),
                      "phase": None, "done": None, "total": None, "phases": [], "cancelling": False}
        return {**result, "queued": [job.command.name for job in self._jobs]}

    def _cancel(self) -> dict:
        try:
            return self.network.cancel()
        except UsageError:
            if self._job is None:
                raise UsageError("nothing to cancel: no long command is running") from None
            raise UsageError(f"{self._job.command.name} cannot be cancelled: it has no safe point to stop at "
                             "(add_peers, refresh_peers, net_status and time_lapse have); it ends by itself") from None

    def _die(self) -> dict:
        self._abort("the supervisor is stopping (die)")
        return self.network.die()

    def _abort(self, reason: str) -> None:
        """Stop the running long command and drop the queued ones, each client told ``reason`` in an error reply."""
        running, queued = self._job, list(self._jobs)
        self._jobs.clear()
        if self._worker is not None:
            self._group.kill(self._worker)
            self._job = self._worker = None  # also when it was killed before it ever ran
        if running is not None:
            self._reply(running.deliver, error(f"{running.command.name} stopped: {reason}"))
        for job in queued:
            self._reply(job.deliver, error(f"{job.command.name} not run: {reason}"))

    def wait(self) -> None:
        """Block until ``die`` was served (or :meth:`stop` was called)."""
        self.stopped.wait()
        self._group.raise_failure()

    def stop(self) -> None:
        """Stop serving (from another greenlet, e.g. a signal handler) and release the socket; a long command
        running or queued gets an error reply first."""
        if not self._sock.closed:
            self._abort("the supervisor is stopping")
        self._group.kill()
        self._sock.close()
        self._ctx.term()
        self.stopped.set()


class ControlClient:
    """Sends control commands and returns their results. Usable from any process that can reach the endpoint.

    A request that gets no answer within ``timeout`` raises :class:`RpcTimeout`; the REQ socket is then thrown away
    and a fresh one used next time (the ZeroMQ guide's Lazy Pirate), since a REQ socket cannot send twice in a row.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, timeout: float = 10.0, keys=None,
                 clock: Clock = REAL) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._clock = clock  # the caller's patience: the wall clock, unless a test owns time
        self._keys = keys  # security.Keys: talk CURVE (a CURVE server never answers a client without them)
        # ZeroMQ drops a message over the limit and the REQ socket then waits for nothing: allow large replies.
        self._ctx = Context(max_sockets=16, max_message_bytes=MAX_CONTROL_REPLY_BYTES, clock=clock)
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
            with self._clock.timeout(self.timeout, RpcTimeout(f"no supervisor answered at {self.endpoint} "
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
