"""The one exception tree of p2pzmq. Foreign errors (``zmq.ZMQError``, ``struct.error``) are mapped at the boundary.

    P2PError
    ├── TransportError          something went wrong on a socket
    │   ├── RpcTimeout          no (matching) reply within the configured timeout
    │   └── ClosedError         the socket or context is closed
    ├── ProtocolError           a message failed validation; it is dropped and counted
    ├── ControlError            the supervisor answered a control command with an error reply
    ├── OutputError             a file could not be written (the command ran and failed)
    ├── Cancelled               a long operation was cancelled; it stopped at a safe point
    ├── Crashed                 a part of the process broke (a background greenlet died of a bug)
    └── UsageError              the caller asked for something that cannot be done (bad arguments)

The command line maps them to exit codes (README.md): UsageError found before anything ran is 2, RpcTimeout while
asking a supervisor is 3, Crashed is 4, every other P2PError is 1.
"""


class P2PError(Exception):
    """Base of every error p2pzmq raises on purpose."""


class TransportError(P2PError):
    """A socket operation failed."""


class RpcTimeout(TransportError):
    """No matching reply arrived before the deadline."""


class ClosedError(TransportError):
    """The socket or its context was closed under the caller."""


class ProtocolError(P2PError):
    """A message is not a well-formed p2pzmq message; ``reason`` says what was wrong (a short word, for the drop
    counters in ``stats``): ``frames`` (not exactly one frame), ``too_large``, ``unknown_kind``, ``truncated`` (it
    ends before its fields do), ``trailing`` (bytes after its last field) or ``bad_field`` (a value out of range)."""

    def __init__(self, message: str, reason: str = "bad_field") -> None:
        super().__init__(message)
        self.reason = reason


class ControlError(P2PError):
    """The supervisor replied ``{"ok": false, "error": ...}``."""


class OutputError(P2PError):
    """A file (graph, picture, key) could not be written: the path was well formed but the system refused it."""


class Cancelled(P2PError):
    """A long operation was asked to stop (``cancel``) and stopped at a safe point; the message says what it had
    done, ``phases`` the same as data (``[{"phase", "done", "total"}, ...]``, outermost first)."""

    def __init__(self, message: str, phases: list[dict] | None = None) -> None:
        super().__init__(message)
        self.phases = phases or []


class Crashed(P2PError):
    """A greenlet the process cannot do without (the control server's, the worker's serving one) died of an error
    (:mod:`p2pzmq.supervision`): the process stopped everything and ends with exit code 4."""


class UsageError(P2PError):
    """Bad arguments from a user or a control client."""
