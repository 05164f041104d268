"""The control commands, each declared once: its parameters, the checks on their arguments, its help, the unit of
the supervisor that runs it, whether it is quick or long, and how command-line words become its arguments.

One table, ``COMMANDS``: name -> :class:`Command`. Everything that runs a command comes from it: the control socket
(:class:`p2pzmq.control.ControlServer`) and the web API through it, ``run``'s session and ``ctl`` with their help,
and the Python API, whose :class:`~p2pzmq.network.Network` methods :meth:`Command.bind` makes from the declaration
(docstring included). So every way in takes the same arguments and refuses the same mistakes with the same words,
before anything runs: JSON types (a bool is not an int, 3.0 is not 3), integers within 64 bits, finite floats, ranges
and choices, peer ids (decimal strings below 2**160), file names, and the rules between arguments (a path's
extension and its ``format=``; ``count`` or ``ids``). What only the running network knows (is there a peer with this
id? are there that many peers?) its units check, once.

On the command line, a command's required arguments may be given in order (``output_graph net.gexf``) and every
argument as ``key=value`` (``output_graph path=net.gexf format=gexf``); values are read by the parameter's type.
Pure: no sockets, no files (paths are only checked and, for ``ctl``, made absolute).
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import os
import re
import textwrap
from typing import Any, Callable

from . import addresses, graph, plot
from .churn import plan_of
from .errors import UsageError
from .ids import ID_BITS, parse_id
from .paths import check_path
from .status import ROUTINGS

#: Integers in requests must fit in 64 bits (what most JSON readers keep exactly); ids travel as strings.
INT_LIMIT = 1 << 63
_INTEGER = re.compile(r"[+-]?[0-9]{1,40}")  # longer is out of range anyway (and int() refuses 4,300 digits)
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


@dataclasses.dataclass(frozen=True)
class Param:
    """One argument of a control command: its JSON key and type, whether it is required (else its default), a
    ``check`` of its value (raises :class:`UsageError` with the reason), whether it names a file or directory
    (``ctl`` makes such paths absolute when it talks to a supervisor on the same host), ``loose``: what the Python
    API also takes for it, turned into its JSON form before the checks (ids as ints), and ``ordered``: an optional
    one that bare words fill in order, as the required ones, while a required one is still missing (``churn 1 0.5
    10``, which ``churn duration=10 arrival=...`` need not give)."""

    name: str
    type: type
    default: Any = None
    required: bool = True
    check: Callable[[Any], Any] | None = None
    path: bool = False
    loose: Callable[[Any], Any] | None = None
    ordered: bool = False

    def value(self, command: str, value):
        """``value`` checked against this parameter (JSON types, limits, ``check``)."""
        if self.type is float and type(value) is int and -INT_LIMIT <= value < INT_LIMIT:
            value = float(value)  # JSON writes 2.0 as 2
        if type(value) is not self.type:
            raise UsageError(f"{command}: {self.name} must be {_TYPE_NAMES[self.type]}, not {value!r:.80}")
        if self.type is int and not -INT_LIMIT <= value < INT_LIMIT:
            raise UsageError(f"{command}: {self.name} is out of range (64-bit integers)")
        if self.type is float and not math.isfinite(value):
            raise UsageError(f"{command}: {self.name} must be a finite number, not {value!r}")
        if self.check is not None:
            _checked(self.check, value, f"{command}: {self.name}")
        return value

    def parse(self, command: str, text: str):
        """The value of a command-line word, read as this parameter's type (checked later by :meth:`value`)."""
        if self.type is str:
            return text
        if self.type is int and _INTEGER.fullmatch(text):
            return int(text)
        if self.type is float:
            try:
                return float(text)
            except ValueError:
                pass
        if self.type is bool and text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        if self.type is list and (items := _list(text)) is not None:
            return items
        raise UsageError(f"{command}: {self.name} must be {_TYPE_NAMES[self.type]}, not {text!r:.80}")


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: 'a list (JSON like ["1", "2"], or 1,2)'}


def _checked(check: Callable, value, prefix: str) -> None:
    """``check(value)``, with ``prefix`` (the command, and the parameter) before the reason of its UsageError."""
    try:
        check(value)
    except UsageError as exc:
        raise UsageError(f"{prefix} {exc}") from None


def _list(text: str) -> list | None:
    """A list from a JSON array or comma-separated words (None if ``text`` is neither); integers become decimal
    strings, since every list parameter holds ids."""
    if not text.startswith("["):
        return [word for word in text.split(",") if word]
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return [str(item) if type(item) is int else item for item in value] if type(value) is list else None


@dataclasses.dataclass(frozen=True)
class Command:
    """A control command, declared once: parameters, a help line, who runs it, and a ``check`` of the arguments
    together (it may rewrite them, e.g. add a path's extension).

    ``unit``: the attribute of :class:`~p2pzmq.network.Network` holding the unit that runs it (``"_exporter"``), whose
    method ``method`` (default: the name) it calls; None: the network's own method of the command's name runs it.
    Either way the method takes the arguments in the order of ``params``. ``api``: the name of the Network method
    (default: the name). ``session``: ``run`` may use it. ``quick``: the control socket answers it at once, even while
    a long command runs (docs/DESIGN.md §6); the others are long, and run one at a time in order. ``cancellable``: a
    long operation that reports progress, so ``progress`` shows it and ``cancel`` stops it at a safe point.
    ``timed``: its result holds readings of the network's clock (:data:`p2pzmq.timeline.TIMED`), which it shows only
    where the network's time is simulated (:meth:`~p2pzmq.network.Network.shown`).
    """

    name: str
    params: tuple[Param, ...]
    help: str
    unit: str | None = None
    method: str | None = None
    api: str | None = None
    check: Callable[[dict], None] | None = None
    session: bool = True
    quick: bool = False
    cancellable: bool = False
    timed: bool = False

    @property
    def attribute(self) -> str:
        """The name of its :class:`~p2pzmq.network.Network` method."""
        return self.api or self.name

    def run(self, network, **arguments) -> dict:
        """Run it on ``network`` with checked ``arguments`` (keyed by parameter name), through the network's
        method: what the control socket, the web API and ``run`` do."""
        return getattr(network, self.attribute)(**arguments)

    def bind(self, cls) -> None:
        """Make ``cls.<attribute>`` (``cls``: the Network class, whose ``UNITS`` maps each unit's attribute to its
        class) the command's Python API: a method that takes the
        arguments by position or name, checks them with this declaration (a :class:`UsageError` worded as the
        control socket's), and calls the unit's method, or the class's own of that name (which it replaces). Its
        docstring is the declaration's usage and help, then the implementation's."""
        own = cls.__dict__.get(self.attribute) if self.unit is None else None
        if self.unit is None and own is None:
            raise TypeError(f"{cls.__name__} has no method {self.attribute} to run {self.name}")
        own = getattr(own, "__wrapped__", own)  # bound once already: wrap the implementation, not the method
        names = [param.name for param in self.params]

        def method(network, *args, **kwargs):
            if len(args) > len(names):
                raise UsageError(f"{self.name} takes {len(names)} arguments, not {len(args)} ({self.usage()})")
            given = dict(zip(names, args))
            for key, value in kwargs.items():
                if key in given:
                    raise UsageError(f"{self.name}: {key} is given twice")
                given[key] = value
            arguments = self.arguments(self._tightened(given))
            values = [arguments[name] for name in names]
            if self.unit is None:
                call = functools.partial(own, network, *values)
            else:
                call = functools.partial(getattr(getattr(network, self.unit), self.method or self.name), *values)
            if not self.cancellable:
                result = call()
            else:
                with network.operation(self.name):
                    result = call()
            return network.shown(result) if self.timed else result

        implementation = own if self.unit is None else getattr(cls.UNITS[self.unit], self.method or self.name)
        functools.update_wrapper(method, implementation)
        method.__module__, method.__name__ = cls.__module__, self.attribute
        method.__qualname__ = f"{cls.__name__}.{self.attribute}"
        usage = f"``{self.usage()}``:"
        # the usage stays on one line (help() and the test read it whole), however long it grows
        headline = (textwrap.fill(f"{usage} {self.help}.", 116) if len(usage) < 80
                    else f"{usage}\n{textwrap.fill(self.help + '.', 116)}")
        method.__doc__ = f"{headline}\n\n{inspect.getdoc(implementation) or ''}".rstrip()
        method.__signature__ = self._signature(implementation)
        method.command = self
        setattr(cls, self.attribute, method)

    def _signature(self, implementation) -> inspect.Signature:
        """The implementation's signature with the declared defaults (what help() shows of the method). A required
        parameter declared after an optional one (``churn``'s duration after its ``ordered`` rates) cannot follow
        it in a Python signature: the parameters are then shown keyword-only, the way to call such a command."""
        signature = inspect.signature(implementation)
        first, *rest = signature.parameters.values()  # self, then one per declared parameter, in order
        required = [param.required for param in self.params]
        kind = inspect.Parameter.KEYWORD_ONLY if required != sorted(required, reverse=True) else None
        rest = [parameter.replace(default=param.default if not param.required else inspect.Parameter.empty,
                                  kind=kind or parameter.kind)
                for parameter, param in zip(rest, self.params)]
        return signature.replace(parameters=[first, *rest])

    def _tightened(self, given: dict) -> dict:
        """``given`` with what the Python API also takes (``Param.loose``) turned into its JSON form."""
        loose = {param.name: param.loose for param in self.params if param.loose is not None}
        return {key: loose[key](value) if key in loose and value is not None else value for key, value in given.items()}

    def arguments(self, request: dict) -> dict:
        """The checked keyword arguments in ``request`` (``cmd`` may be one of its keys); raises
        :class:`UsageError` naming what is wrong. A JSON null is taken as "not given" for an optional parameter."""
        known = {param.name for param in self.params} | {"cmd"}
        unknown = sorted(set(request) - known)
        if unknown:
            raise self._unknown(unknown)
        kwargs = {}
        for param in self.params:
            value = request.get(param.name)
            if value is None and param.name in request and param.required:
                raise UsageError(f"{self.name}: {param.name} must not be null")
            if value is None:
                if param.required:
                    raise UsageError(f"{self.name} needs {param.name.upper()} ({self.usage()})")
                kwargs[param.name] = param.default
            else:
                kwargs[param.name] = param.value(self.name, value)
        if self.check is not None:
            _checked(self.check, kwargs, f"{self.name}:")
        return kwargs

    def _unknown(self, keys: list) -> UsageError:
        named = ", ".join(repr(key)[:40] for key in keys[:5]) + (", ..." if len(keys) > 5 else "")
        return UsageError(f"{self.name} takes no argument {named} ({self.usage()})")

    def usage(self) -> str:
        """How to type the command: ``name REQUIRED... [key=value]...``."""
        words = [self.name] + [param.name.upper() for param in self.params if param.required]
        words += [f"[{param.name}=...]" for param in self.params if not param.required]
        return " ".join(words)

    def take(self, words: list[str], position: int) -> tuple[dict, int]:
        """Read this command's arguments from ``words[position:]``: ``key=value`` for any parameter, bare words for
        the required ones not given yet, in order. Stops at the first word that is neither (a ``key=value`` of no
        parameter is refused); returns the unchecked values and where it stopped."""
        params = {param.name: param for param in self.params}
        values: dict = {}
        while position < len(words):
            word = words[position]
            key, equals, text = word.partition("=")
            if equals and key in params:
                if key in values:
                    raise UsageError(f"{self.name}: {key} is given twice")
                values[key] = params[key].parse(self.name, text)
            else:
                missing = [param for param in self.params if param.required and param.name not in values]
                if not missing and equals and key.isidentifier():  # key=value of no parameter: as the socket says
                    raise self._unknown([key])
                if not missing:
                    break
                fill = next(param for param in self.params
                            if (param.required or param.ordered) and param.name not in values)
                values[fill.name] = fill.parse(self.name, word)
            position += 1
        return values, position


def parse_session(words: list[str]) -> list[tuple[str, dict]]:
    """``run``'s words as checked (command, arguments) pairs, e.g. ``["output_graph", "a.gexf", "net_status"]`` ->
    ``[("output_graph", {"path": "a.gexf", "format": "gexf"}), ("net_status", {...})]``. Every mistake is found
    here, before a network exists."""
    session, position = [], 0
    while position < len(words):
        name = words[position]
        command = COMMANDS.get(name)
        if command is None or not command.session:
            known = ", ".join(name for name, command in COMMANDS.items() if command.session)
            raise UsageError(f"unknown command {name!r:.80}; choose from {known}")
        values, position = command.take(words, position + 1)
        session.append((name, command.arguments(values)))
    return session


def parse_request(name: str, words: list[str]) -> dict:
    """The request ``ctl`` sends for command ``name`` and its words. A known command's arguments are read by type
    and checked here; those of a command this registry does not know (a newer supervisor's) must be ``key=value``,
    each value read as JSON, else taken as a string."""
    command = COMMANDS.get(name)
    if command is None:
        request = {"cmd": name}
        for word in words:
            key, equals, text = word.partition("=")
            if not equals or not key:
                raise UsageError(f"pass the arguments of {name!r:.80} (a command unknown here) as key=value")
            try:
                request[key] = json.loads(text)
            except (ValueError, RecursionError):
                request[key] = text
        return request
    values, position = command.take(words, 0)
    if position < len(words):
        raise UsageError(f"{name} takes no argument {words[position]!r:.80} ({command.usage()})")
    arguments = command.arguments(values)
    return {"cmd": name, **{key: value for key, value in arguments.items() if value is not None}}


def absolute_paths(request: dict) -> dict:
    """``request`` with the paths of a known command made absolute against this process's working directory (a
    directory parameter left out is this directory), for a supervisor on this host: it writes where ``ctl`` runs."""
    command = COMMANDS.get(request.get("cmd"))
    if command is None:
        return request
    resolved = dict(request)
    for param in command.params:
        if param.path and (param.name in request or param.default is not None):
            resolved[param.name] = os.path.abspath(request.get(param.name, param.default))
    return resolved


# -- checks ------------------------------------------------------------------------------------------------------


def _peer_id(value: str) -> None:
    try:
        parse_id(value)
    except ValueError:
        raise UsageError(f"must be a peer id (decimal digits, below 2**{ID_BITS}), not {value!r:.80}") from None


def _peer_ids(values: list) -> None:
    for value in values:
        if type(value) is not str:
            raise UsageError(f"must list peer ids as decimal strings, not {value!r:.80}")
        _peer_id(value)
    if len(set(values)) != len(values):
        raise UsageError("lists a peer twice")


def _route(values: list) -> None:
    _peer_ids(values)
    if len(values) != 2:
        raise UsageError(f"must be two peer ids, FROM,TO, not {len(values)}")


def _at_least(low: int) -> Callable[[int], None]:
    def check(value: int) -> None:
        if value < low:
            raise UsageError(f"must be at least {low}, not {value}")
    return check


def _one_of(choices) -> Callable[[str], None]:
    def check(value: str) -> None:
        if value not in choices:
            raise UsageError(f"must be one of {', '.join(choices)}, not {value!r:.80}")
    return check


def _pixels(value: int) -> None:
    if not plot.MIN_PIXELS <= value <= plot.MAX_PIXELS:
        raise UsageError(f"must be from {plot.MIN_PIXELS} to {plot.MAX_PIXELS} pixels, not {value}")


def _file_name(value: str) -> None:
    try:
        check_path(value)
    except UsageError:
        raise UsageError(f"must be a path (not empty, no NUL, encodable here), not {value!r:.80}") from None


def _endpoint(value: str) -> None:
    try:
        addresses.parse_endpoint(value)
    except UsageError as exc:
        raise UsageError(f"is not an endpoint to connect to: {exc}") from None


def _writes(formats) -> Callable[[dict], None]:
    """The check of an output command: its path and format agree (:func:`p2pzmq.graph.output_file`)."""
    def check(arguments: dict) -> None:
        arguments["path"], chosen = graph.output_file(arguments["path"], arguments.get("format"), formats)
        if "format" in arguments:
            arguments["format"] = chosen
    return check


def _one_choice(arguments: dict) -> None:
    if (arguments["count"] is None) == (arguments["ids"] is None):
        raise UsageError("give either count=K (with an optional seed=S) or ids=[...]")


def _one_partition(arguments: dict) -> None:
    if (arguments["groups"] is None) == (arguments["ids"] is None):
        raise UsageError("give either groups=K (with an optional seed=S) or ids=[...]")
    if arguments["ids"] is not None and arguments["seed"] is not None:
        raise UsageError("seed= goes with groups=K only")


def _churn_plan(arguments: dict) -> None:
    """The plan parses (one way of giving joins, one of giving sessions), and a picture's path is a PNG file."""
    plan_of(arguments["duration"], arguments["join_rate"], arguments["leave_rate"], arguments["crash_fraction"],
            None, arguments["session"], arguments["arrival"])
    if arguments["png"] is not None:
        plot.require_matplotlib()
        arguments["png"], _ = graph.output_file(arguments["png"], None, ("png",))


def _positive(value: float) -> None:
    if not value > 0:
        raise UsageError(f"must be positive, not {value!r}")


def _not_negative(value: float) -> None:
    if value < 0:
        raise UsageError(f"must not be negative, not {value!r}")


def _path(name: str, default: str | None = None, required: bool | None = None) -> Param:
    return Param(name, str, default, default is None if required is None else required, _file_name, path=True)


def _id_text(value):
    """An id the Python API was given as an int, as the decimal string the control socket takes."""
    return str(value) if type(value) is int else value


def _id_texts(values):
    return [_id_text(value) for value in values] if isinstance(values, (list, tuple)) else values


#: Which peers kill_peers and leave_peers act on: ``count`` drawn with ``seed``, or the listed ``ids``.
_CHOOSE = (Param("count", int, None, False, _at_least(0)), Param("seed", int, None, False),
           Param("ids", list, None, False, _peer_ids, loose=_id_texts))
_PIXELS = (Param("width", int, 1000, False, _pixels), Param("height", int, 1000, False, _pixels))

COMMANDS: dict[str, Command] = {command.name: command for command in (
    Command("ping", (), "number of peers; checks the supervisor answers", quick=True),
    Command("net_status", (Param("sample", int, None, False, _at_least(0)),
                           Param("routing", str, "auto", False, _one_of(ROUTINGS))),
            "table size and greedy-routing reach of every peer (kademlia: also iterative lookups between the same "
            "pairs); sample=K estimates it from K random targets per peer; routing=messages|local|auto", "_router",
            cancellable=True, timed=True),
    Command("refresh_peers", (Param("concurrency", int, None, False, _at_least(1)),),
            "one discovery pass of every peer, in list order (concurrency=J: J at a time)", "_builder", "refresh",
            cancellable=True, timed=True),
    Command("output_tgf", (_path("path"),), "write the overlay as TGF to PATH (.tgf)", "_exporter",
            check=_writes(("tgf",))),
    Command("output_graph", (_path("path"), Param("format", str, None, False, _one_of(graph.FORMATS))),
            "write the overlay to PATH; its extension or format=tgf|graphml|gexf|dot|json says how (default tgf)",
            "_exporter", check=_writes(tuple(graph.FORMATS))),
    Command("output_png", (_path("path"), *_PIXELS, Param("edges", int, plot.EDGE_BUDGET, False, _at_least(0)),
                           Param("seed", int, 0, False), Param("peer", str, None, False, _peer_id, loose=_id_text),
                           Param("route", list, None, False, _route, loose=_id_texts)),
            f"draw the overlay to PATH (.png), width x height pixels (needs the plot extra): every peer, at most "
            f"edges=E edges (default {plot.EDGE_BUDGET:,}; a sample drawn with seed=S above that), and over them "
            f"peer=ID's contacts and route=FROM,TO (lookup's greedy route); the result says what was left out",
            "_exporter", check=_writes(("png",))),
    Command("output_snapshot", (_path("path"),), "write the whole network (ids, tables, protocol, settings, seed, "
            "random streams) to PATH, for run|serve --from-snapshot PATH", "_exporter"),
    Command("lookup", (Param("from", str, check=_peer_id, loose=_id_text),
                       Param("id", str, check=_peer_id, loose=_id_text)),
            "the greedy route and the discovery walk (kademlia: the iterative lookup's rounds) from peer FROM to ID "
            "(decimal ids); changes no table", "_router", timed=True),
    Command("time_lapse", (Param("steps", int, check=_at_least(0)), _path("directory", "."),
                           Param("format", str, "tgf", False, _one_of(graph.FORMATS)),
                           Param("status", bool, False, False)),
            "STEPS times: refresh_peers, then write time-lapse-<i>.<format> in directory=DIR (default: the "
            "working directory); status=true also runs net_status each step and writes time-lapse.json", "_lapses",
            cancellable=True),
    Command("stats", (), "request, reply, timeout and drop counters, memory, fds, timings", quick=True),
    Command("attach", (Param("endpoint", str, check=_endpoint), Param("peers", int, 0, False, _at_least(0))),
            "take on the worker listening at ENDPOINT and create PEERS new peers on it (needs --transport tcp)"),
    Command("die", (), "stop every peer and the supervisor, and any command running", session=False, quick=True),
    Command("progress", (), "the long command running: its phase, done of total, seconds, and the commands queued "
            "behind it", session=False, quick=True),
    Command("cancel", (), "stop the long command running at its next safe point (between peers, routing rounds or "
            "time-lapse steps); its caller gets an error saying what it completed", session=False, quick=True),
    Command("peers", (), "every peer: id, server and client endpoints, alive flag, state and table size",
            "_exporter", "peer_list", api="peer_list"),
    Command("add_peers", (Param("n", int, check=_at_least(1)),), "N more peers, each bootstrapped from a random "
            "alive one", cancellable=True, timed=True),
    Command("kill_peers", _CHOOSE, "crash peers (no goodbye): count=K [seed=S], or ids=ID,ID,...", "_builder",
            "kill", check=_one_choice),
    Command("leave_peers", _CHOOSE, "peers leave gracefully, telling the peers they know: count=K [seed=S], or "
            "ids=ID,ID,...", "_builder", "leave", check=_one_choice),
    Command("partition", (Param("groups", int, None, False, _at_least(2)), Param("seed", int, None, False),
                          Param("ids", list, None, False, _peer_ids, loose=_id_texts)),
            "from now on lose every message between groups of peers: groups=K [seed=S] deals them into K groups, "
            "ids=ID,ID,... cuts those from the rest (needs a network model)", check=_one_partition),
    Command("heal", (), "end the partition: messages between every two peers are delivered again"),
    Command("advance", (Param("seconds", float, check=_at_least(0)),),
            "let SECONDS of the network's time pass (on the virtual clock: self-refreshes, churn, timers)"),
    Command("churn", (Param("join_rate", float, None, False, ordered=True),
                      Param("leave_rate", float, None, False, ordered=True), Param("duration", float),
                      Param("crash_fraction", float, 0.5, False), Param("seed", int, None, False),
                      Param("wait", bool, False, False), Param("session", str, None, False),
                      Param("arrival", str, None, False), Param("lookups", float, 0.0, False, _not_negative),
                      Param("interval", float, None, False, _positive), _path("png", None, required=False)),
            "joins at JOIN_RATE/s (or arrival=poisson:RATE), exponential sessions of mean 1/LEAVE_RATE s (or "
            "session=exp:MEAN|weibull:SHAPE:SCALE|pareto:SHAPE:MIN), for DURATION s, in the background; "
            "lookups=RATE random lookups a second; reported per interval=S seconds (alive, joins, departures, "
            "lookup success, latency p50/p99), drawn to png=PATH",
            check=_churn_plan),
)}
