"""The network's event stream: what happens in a network, as plain JSON-ready dicts (docs/EVENTS.md).

One :class:`Events` per network (``network.events``). Code that changes the network calls :meth:`Events.emit`;
whoever wants to watch (the PUB socket of ``serve --events``, a ``--record`` file, the web view, a test) calls
:meth:`Events.subscribe`. Every event is ``{"v": 1, "t": seconds since the network began, "type": ..., **fields}``;
:data:`SCHEMA` names each type's fields and their JSON types. With nobody subscribed, ``emit`` looks at one list and
returns: call sites that would build costly fields check :attr:`Events.listening` first.

Pure: no sockets, no greenlets, no I/O. Callbacks run in the emitting greenlet and must not block.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Callable

log = logging.getLogger(__name__)

#: The version every event carries as ``v``; it changes only when a field changes meaning or goes away.
VERSION = 1

#: Each event type's fields beyond ``v``, ``t`` and ``type``: name -> the JSON types it may take ("string",
#: "integer", "number", "boolean", "null", "object", "array"). Every field listed is present; none other is.
#: Kept in step with docs/EVENTS.md.
SCHEMA: dict[str, dict[str, tuple[str, ...]]] = {
    "joined": {"id": ("string",), "host": ("string",), "index": ("integer",)},
    "left": {"id": ("string",)},
    "crashed": {"id": ("string",), "reason": ("string",), "error": ("string", "null")},
    "command": {"phase": ("string",), "name": ("string",), "arguments": ("object",), "ok": ("boolean", "null"),
                "summary": ("object", "null")},
    "progress": {"phase": ("string",), "done": ("integer",), "total": ("integer",)},
    "status": {"n": ("integer",), "connectivity": ("integer",), "mean_table": ("number",), "hops": ("object",)},
    "churn": {"phase": ("string",), "joined": ("integer",), "killed": ("integer",), "left": ("integer",),
              "duration": ("number",)},
    "lookup": {"from": ("string",), "target": ("string",), "hops": ("integer",), "found": ("boolean",),
               "path": ("array",)},
    "partition": {"phase": ("string",), "groups": ("array",)},
}

#: Event types, in the order docs/EVENTS.md describes them.
TYPES = tuple(SCHEMA)

Callback = Callable[[dict], None]

#: Commands that only read and may be asked many times a second (a web page polls them): no ``command`` events.
QUIET_COMMANDS = frozenset({"ping", "stats", "progress"})
#: A list argument of a ``command`` event keeps this many items (``kill_peers ids=`` may name 80,000 peers).
MAX_LISTED = 16
#: ``progress`` events of one phase come at most this often (seconds), besides its first and last report.
PROGRESS_INTERVAL = 0.1


class Events:
    """The event stream of one network. ``clock`` gives seconds: the network's clock's ``now`` (docs/DESIGN.md §16),
    so ``t`` is simulated time on a virtual clock; ``t`` counts from its value at construction, the network's
    beginning."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._start = clock()
        self._subscribers: list[Callback] = []
        #: Events a subscriber's callback raised on (it stays subscribed; the error is logged once per callback).
        self.errors = 0
        #: Events emitted while someone listened.
        self.emitted = 0
        #: Events a sink could not pass on (the PUB socket at its high-water mark), counted by the sink.
        self.dropped = 0
        self._failed: set[int] = set()
        self._progress_due: dict[str, float] = {}

    @property
    def listening(self) -> bool:
        """Anyone subscribed: only then do events get built at all."""
        return bool(self._subscribers)

    def now(self) -> float:
        """Seconds since the network began, as events carry in ``t``."""
        return round(self._clock() - self._start, 6)

    def emit(self, type: str, **fields) -> None:
        """Tell every subscriber ``{"v": 1, "t": ..., "type": type, **fields}``; nothing when nobody listens. A
        subscriber that raises is logged and counted, never allowed to break the operation that emitted."""
        if not self._subscribers:
            return
        event = {"v": VERSION, "t": self.now(), "type": type, **fields}
        self.emitted += 1
        for callback in tuple(self._subscribers):
            try:
                callback(event)
            except Exception:  # a watcher's bug must not stop the network it watches
                self.errors += 1
                if id(callback) not in self._failed:
                    self._failed.add(id(callback))
                    log.exception("an event subscriber failed on a %s event", type)

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(event)`` for every event from now on; returns the function that unsubscribes it
        (idempotent). The callback runs in the emitting greenlet: it must not block."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)
        return unsubscribe

    def summary(self) -> dict:
        """For ``stats``: how many sinks listen, events emitted to them, dropped by a sink, and failed callbacks."""
        return {"subscribers": len(self._subscribers), "emitted": self.emitted, "dropped": self.dropped,
                "errors": self.errors}

    def progress(self, phase: str, done: int, total: int) -> None:
        """A ``progress`` event, at a bounded rate: a phase's first and last report always, the others at most
        every :data:`PROGRESS_INTERVAL` seconds (a 50,000-peer build reports 50,000 times)."""
        if not self._subscribers:
            return
        now = self._clock()
        due = self._progress_due.get(phase)
        if done >= total:
            self._progress_due.pop(phase, None)
        elif due is not None and now < due:
            return
        else:
            self._progress_due[phase] = now + PROGRESS_INTERVAL
        self.emit("progress", phase=phase, done=done, total=total)

    def command(self, name: str, arguments: dict, run: Callable[[], dict]) -> dict:
        """``run()``, the work of command ``name``, between two ``command`` events: ``started`` with its
        arguments, and ``finished`` with ``ok`` and a :func:`summarize` of its result (or its error). Read-only
        commands polled often (:data:`QUIET_COMMANDS`) and a stream nobody listens to cost nothing more."""
        if not self._subscribers or name in QUIET_COMMANDS:
            return run()
        shown = _shown(arguments)
        self.emit("command", phase="started", name=name, arguments=shown, ok=None, summary=None)
        try:
            result = run()
        except BaseException as exc:
            self.emit("command", phase="finished", name=name, arguments=shown, ok=False,
                      summary={"error": " ".join(str(exc).split()) or type(exc).__name__})
            raise
        self.emit("command", phase="finished", name=name, arguments=shown, ok=True, summary=summarize(result))
        return result


def encode(event: dict) -> bytes:
    """An event as the PUB socket sends it and a recording holds it (one line): compact UTF-8 JSON."""
    return json.dumps(event, separators=(",", ":"), allow_nan=False).encode()


def decode(raw: bytes) -> dict:
    """An event received from a stream: a JSON object in UTF-8 that :func:`problems` finds nothing wrong with;
    ``ValueError`` saying what is wrong otherwise (a stream may come from anywhere: never trust it)."""
    try:
        event = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"not UTF-8 JSON: {exc}") from None
    found = problems(event)
    if found:
        raise ValueError("; ".join(found))
    return event


def summarize(result: object) -> dict:
    """A short summary of a command's result, never the whole of it: its numbers, strings and flags, a list as its
    length (a lookup's ``path``, at most ``max_hops`` long, as it is), and a nested object summarized one level
    down, so ``net_status`` gives n, connectivity and the hops' mean, not a row per peer."""
    if not isinstance(result, dict):
        return {}
    return _summary(result, depth=1)


def _summary(result: dict, depth: int) -> dict:
    short = {}
    for key, value in result.items():
        if value is None or isinstance(value, (bool, int, float, str)):
            short[key] = value
        elif isinstance(value, list):
            short[key] = value if key == "path" and len(value) <= 64 else len(value)
        elif isinstance(value, dict) and depth > 0:
            short[key] = _summary(value, depth - 1)
    return short


def _shown(arguments: dict) -> dict:
    """A command's arguments as a ``command`` event shows them: lists cut to :data:`MAX_LISTED` items."""
    return {key: value[:MAX_LISTED] if isinstance(value, list) else value for key, value in arguments.items()}


def problems(event: object) -> list[str]:
    """What is wrong with ``event`` against :data:`SCHEMA`, in words (empty: it is a valid event). For tests and
    for tools that read a recorded stream."""
    if not isinstance(event, dict):
        return [f"an event is a JSON object, not {type(event).__name__}"]
    found = []
    if event.get("v") != VERSION:
        found.append(f"v must be {VERSION}, not {event.get('v')!r}")
    t = event.get("t")
    if not _is(t, "number") or t < 0:
        found.append(f"t must be a non-negative number, not {t!r}")
    kind = event.get("type")
    if kind not in SCHEMA:
        return found + [f"unknown type {kind!r}"]
    fields = SCHEMA[kind]
    for name, types in fields.items():
        if name not in event:
            found.append(f"{kind}: missing {name}")
        elif not any(_is(event[name], json_type) for json_type in types):
            found.append(f"{kind}: {name} must be {' or '.join(types)}, not {event[name]!r}")
    extra = sorted(set(event) - set(fields) - {"v", "t", "type"})
    if extra:
        found.append(f"{kind}: unexpected {', '.join(extra)}")
    return found


_JSON_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
               "null": (type(None),), "object": (dict,), "array": (list,)}


def _is(value: object, json_type: str) -> bool:
    """``value`` has JSON type ``json_type`` (a bool is no integer or number, as in JSON Schema)."""
    if isinstance(value, bool) and json_type in ("integer", "number"):
        return False
    return isinstance(value, _JSON_TYPES[json_type])
