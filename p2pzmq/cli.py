"""The ``p2p-network`` command line (docs/DESIGN.md §5): ``run``, ``serve``, ``ctl`` and ``plot``.

The supervisor returns data; this module turns it into the original's console lines (or JSON with ``--json``).
Long operations draw progress bars on stderr when it is a terminal and ``--json`` is off (see :mod:`.progress`).
``main(argv)`` returns the exit code: 0 success, 1 a command failed, 2 usage error, 3 no supervisor answered,
130 interrupted. Expected failures are one line on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import signal
import sys
from typing import Callable, Iterator

import gevent

from . import __version__, plot, security, worker
from .config import Config, TRANSPORTS
from .control import COMMANDS, DEFAULT_ENDPOINT, ControlClient, ControlServer
from .errors import ControlError, P2PError, RpcTimeout, UsageError
from .graph import read_graph
from .network import ROUTINGS, Network
from .progress import TerminalProgress
from .table import METRICS

PROG = "p2p-network"
#: The original's session, run by ``run`` when no command is given.
DEFAULT_SESSION = ["net_status", "refresh_peers", "net_status", "output_tgf", "network.tgf"]
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_SUPERVISOR, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors stay one line and main() returns."""

    def error(self, message: str):
        raise UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="A peer-to-peer network simulator on gevent and ZeroMQ.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="action", required=True, parser_class=_Parser)
    command_names = ", ".join(COMMANDS)

    run = sub.add_parser("run", help="build a network, run commands in order, exit",
                         description=f"Build a network and run COMMANDs in order ({command_names}). "
                                     f"With none: {' '.join(DEFAULT_SESSION)}.")
    _network_options(run)
    run.add_argument("--json", action="store_true", help="print each command's result as one JSON line")
    run.add_argument("--sample", type=int, default=None, metavar="K",
                     help="net_status estimates reach from K random targets per peer (0: all pairs; default: all "
                          "pairs up to 2,000 peers)")
    run.add_argument("--routing", choices=ROUTINGS, default=None,
                     help="how net_status routes: find_peer messages, locally on fetched tables, or auto (default)")
    run.add_argument("commands", nargs="*", metavar="COMMAND", help="a command and its arguments")

    serve = sub.add_parser("serve", help="build a network and serve the control socket until die")
    _network_options(serve)
    serve.add_argument("--control", default=DEFAULT_ENDPOINT, metavar="ENDPOINT",
                       help=f"control socket endpoint (default {DEFAULT_ENDPOINT})")

    member = sub.add_parser("worker", help="hold peers for a supervisor (on this or another host)",
                            description="Start a worker process. With --supervisor it joins that running "
                                        "supervisor and contributes -n peers; without, it waits to be attached.")
    member.add_argument("--supervisor", metavar="ENDPOINT", help="control endpoint of a running supervisor")
    member.add_argument("-n", type=int, default=0, help="peers to contribute (with --supervisor; default 0)")
    member.add_argument("--host", default="127.0.0.1", help="address this worker and its peers bind")
    member.add_argument("--timeout", type=_positive_float, default=Config.control_timeout, metavar="S",
                        help="give up (exit 3) if no supervisor gets in touch within S seconds (default %(default)s)")
    _security_options(member)

    keys = sub.add_parser("keys", help="generate the CURVE key pair of a network",
                          description="Write DIR/network.key (public) and DIR/network.key_secret (secret). Give "
                                      "the same --curve-dir to serve, worker and ctl.")
    keys.add_argument("--curve-dir", required=True, metavar="DIR")

    ctl = sub.add_parser("ctl", help="send one command to a running supervisor",
                         description=f"Send COMMAND ({command_names}) to a supervisor and print the reply.")
    ctl.add_argument("--control", default=DEFAULT_ENDPOINT, metavar="ENDPOINT")
    ctl.add_argument("--timeout", type=_positive_float, default=10.0, metavar="S",
                     help="seconds to wait for the reply (default 10); exit 3 if none comes")
    ctl.add_argument("--json", action="store_true", help="print the raw JSON reply")
    ctl.add_argument("--curve-dir", metavar="DIR", help="the network's CURVE keys (if the supervisor uses them)")
    ctl.add_argument("command", metavar="COMMAND")
    ctl.add_argument("args", nargs="*", metavar="ARG")

    plot = sub.add_parser("plot", help="draw a graph file or a time-lapse as a PNG (needs the plot extra)",
                          description="Draw FILE (.tgf, .graphml, .gexf or .json) as a picture of the overlay, or "
                                      "with --time-lapse DIR chart connectivity and mean table size against "
                                      "refresh step (from DIR/time-lapse.json, else from the time-lapse files).")
    plot.add_argument("file", nargs="?", metavar="FILE", help="graph file written by output_graph or output_tgf")
    plot.add_argument("--time-lapse", metavar="DIR", help="directory holding a time_lapse's files")
    plot.add_argument("-o", "--output", required=True, metavar="OUT.png")
    plot.add_argument("--width", type=int, default=1000, metavar="PX", help="picture width (default 1000)")
    plot.add_argument("--height", type=int, default=None, metavar="PX",
                      help="picture height (default 1000, or 600 for a time-lapse)")
    return parser


def _network_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", type=int, default=16, help="number of peers (default 16)")
    parser.add_argument("--seed", type=int, default=None, help="seed of every random choice: same seed, same run")
    parser.add_argument("--metric", choices=METRICS, default="tree",
                        help="closest-peer rule: the original's tree walk (default) or Kademlia's xor")
    parser.add_argument("--transport", choices=TRANSPORTS, default="inproc")
    parser.add_argument("--host", default="127.0.0.1", help="address peers bind with --transport tcp")
    parser.add_argument("--refresh-interval", type=_duration, default=None, metavar="T",
                        help="a peer refreshes by itself after T of silence, e.g. 2s, 5m, 1d (default 1d)")
    parser.add_argument("--pace", type=_duration, default=0.0, metavar="T", help="pause between peer creations")
    parser.add_argument("--join-concurrency", type=int, default=1, metavar="J",
                        help="up to J peers join, and refresh, at once (default 1, the original's sequential "
                             "order; more is faster over workers, but tables then depend on scheduling)")
    parser.add_argument("--workers", type=int, default=0, metavar="K",
                        help="spread the peers over K worker processes on this host (implies --transport tcp)")
    _security_options(parser)


def _security_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--curve-dir", metavar="DIR", help="serve the control socket and worker link with these "
                                                           "CURVE keys (see p2p-network keys)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow a non-loopback control socket or worker link without CURVE keys")


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _duration(text: str) -> float:
    """Seconds from ``1.5``, ``250ms``, ``2s``, ``5m``, ``3h`` or ``1d``."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            number, scale = text[: -len(suffix)], units[suffix]
            break
    else:
        number, scale = text, 1
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 2s, 5m, 1d)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def _config(args) -> Config:
    if args.workers < 0:
        raise UsageError("--workers must not be negative")
    transport = "tcp" if args.workers else args.transport
    changes = {"seed": args.seed, "metric": args.metric, "transport": transport, "host": args.host,
               "pace": args.pace, "join_concurrency": args.join_concurrency, "curve_dir": args.curve_dir}
    if args.refresh_interval is not None:
        changes["refresh_interval"] = args.refresh_interval
    return Config(**changes)


def parse_commands(words: list[str]) -> Iterator[tuple[str, dict]]:
    """Split ``run``'s words into (command, arguments) using each command's parameters: the required ones
    positionally, then optional ones as ``key=value`` words, e.g. ``["output_graph", "a.gexf", "format=gexf",
    "net_status"]`` -> ``("output_graph", {"path": "a.gexf", "format": "gexf"}), ("net_status", {})``."""
    position = 0
    while position < len(words):
        name = words[position]
        command = COMMANDS.get(name)
        if command is None or name == "die":
            raise UsageError(f"unknown command {name!r}; choose from {', '.join(c for c in COMMANDS if c != 'die')}")
        required = [param for param in command.params if param.required]
        values = words[position + 1: position + 1 + len(required)]
        if len(values) < len(required):
            raise UsageError(f"{name} needs {' '.join(p.name.upper() for p in required)}")
        position += 1 + len(required)
        options = []
        optional = {param.name for param in command.params if not param.required}
        while position < len(words) and words[position].partition("=")[0] in optional and "=" in words[position]:
            options.append(words[position])
            position += 1
        yield name, command.arguments({**_typed_arguments(command, values), **_typed_options(command, options)})


def _typed_arguments(command, values: list[str]) -> dict:
    """The required parameters of ``command`` from positional words, converted to their types."""
    return {param.name: _typed(command, param, text)
            for param, text in zip([param for param in command.params if param.required], values)}


def _typed_options(command, words: list[str]) -> dict:
    """Optional parameters of ``command`` from ``key=value`` words, converted to their types."""
    params = {param.name: param for param in command.params}
    arguments = {}
    for word in words:
        key, _, text = word.partition("=")
        if key not in params:
            raise UsageError(f"{command.name} takes no argument {key}")
        arguments[key] = _typed(command, params[key], text)
    return arguments


def _typed(command, param, text: str):
    if param.type is list:  # e.g. ids=["1", "2"]: JSON
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if type(value) is list:
            return value
    elif param.type is bool:
        if text.lower() in ("true", "yes", "1"):
            return True
        if text.lower() in ("false", "no", "0"):
            return False
    else:
        try:
            return param.type(text)
        except ValueError:
            pass
    raise UsageError(f"{command.name}: {param.name} must be {param.type.__name__}, not {text!r}")


# -- formatting: the original's console lines ------------------------------------------------------------------


def _format_net_status(result: dict) -> Iterator[str]:
    sample = result.get("sample")
    out_of = f"{sample} sampled" if sample else f"{result['n']}"
    for peer in result["peers"]:
        yield f"{peer['id']} has {peer['tree_size']} peers in its tree."
        yield f"{peer['id']} is connected to {peer['reachable']}/{out_of} peers {peer['percent']}%"
    if sample:
        low, high = result["ci95"]
        yield (f"Connectivity percentage {result['connectivity']}% (estimate {result['estimate']}%, 95% CI "
               f"{low}-{high}%, {sample} targets per peer)")
    else:
        yield f"Connectivity percentage {result['connectivity']}%"
    if result.get("dead"):
        yield f"{len(result['dead'])} dead peers, {result['failed_hops']} lookups failed at a dead peer"


def _format_peers(result: dict) -> Iterator[str]:
    for peer in result["peers"]:
        size = "-" if peer["tree_size"] is None else peer["tree_size"]
        yield f"{peer['id']} {peer['state']} {size} {peer['server']} {peer['client']}"
    yield f"{result['alive']}/{len(result['peers'])} peers alive"


def _format_lookup(result: dict) -> Iterator[str]:
    route, walk = result["route"], result["walk"]
    outcome = f"reached in {route['hops']} hops" if route["reached"] else f"not reached after {route['hops']} hops"
    yield f"Route from {result['from']} to {result['id']} {outcome}: {' -> '.join(route['path'])}"
    found = "the target" if walk["exact"] else walk["found"]
    yield f"Walk from {result['from']} finds {found} after {walk['queried']} queries: {' -> '.join(walk['path'])}"


def _format_ping(result: dict) -> Iterator[str]:
    yield f"{result['n']} peers"
    for member in result.get("workers", ()):
        state = "alive" if member["alive"] else "gone"
        yield f"worker {member['endpoint']} pid {member['pid']}: {member['peers']} peers, {state}"
    if result.get("unreachable"):
        yield f"{result['unreachable']} peers unreachable"


FORMATTERS: dict[str, Callable[[dict], Iterator[str]]] = {
    "net_status": _format_net_status,
    "refresh_peers": lambda result: iter(()),
    "output_tgf": lambda result: iter([f"Writing network structure to {result['path']}"]),
    "output_graph": lambda result: iter([f"Writing network structure to {result['path']}"]),
    "output_png": lambda result: iter([f"Drawing the network to {result['path']}"]),
    "lookup": _format_lookup,
    "time_lapse": lambda result: iter([f"Doing {len(result['files'])} step time-lapse"]),
    "ping": lambda result: _format_ping(result),
    "attach": lambda result: iter([f"Worker {result['worker']['endpoint']} attached with "
                                   f"{result['worker']['peers']} peers ({result['n']} in the network)"]),
    "stats": lambda result: iter([f"{key}: {json.dumps(value)}" for key, value in result.items()]),
    "die": lambda result: iter(["Supervisor stopping"]),
    "peers": _format_peers,
    "add_peers": lambda result: iter([f"Added {len(result['added'])} peers, {result['n']} alive"]),
    "kill_peers": lambda result: iter([f"Killed {len(result['killed'])} peers, {result['n']} alive"]),
    "leave_peers": lambda result: iter([f"{len(result['left'])} peers left, {result['n']} alive"]),
    "churn": lambda result: iter([json.dumps(result)]),
}


def _print_result(name: str, result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"cmd": name, "result": result}), flush=True)
        return
    formatter = FORMATTERS.get(name)
    lines = formatter(result) if formatter else [json.dumps(result)]
    for line in lines:
        print(line, flush=True)


# -- actions ---------------------------------------------------------------------------------------------------


def _progress(args) -> TerminalProgress | None:
    """Progress bars on stderr, only for a person watching: stderr is a terminal and ``--json`` is off."""
    if getattr(args, "json", False) or not sys.stderr.isatty():
        return None
    return TerminalProgress(sys.stderr)


def _run(args) -> int:
    session = list(parse_commands(args.commands or DEFAULT_SESSION))
    for name, arguments in session:
        if name == "net_status":  # --sample and --routing are defaults for every net_status without its own
            if args.sample is not None and arguments.get("sample") is None:
                arguments["sample"] = args.sample
            if args.routing is not None and arguments.get("routing") == "auto":
                arguments["routing"] = args.routing
    progress = _progress(args)
    try:
        with _network(args, progress) as network:
            for name, arguments in session:
                _print_result(name, COMMANDS[name].run(network, **arguments), args.json)
    finally:
        if progress is not None:
            progress.close()
    return EXIT_OK


def _serve(args) -> int:
    _check_exposure("control socket", args.control, args)
    with _network(args, _progress(args)) as network:
        network.progress = None  # only the creation: the control socket's commands report to their own caller
        server = ControlServer(network, args.control, security.load(args.curve_dir)).start()
        for signum in (signal.SIGINT, signal.SIGTERM):
            gevent.signal_handler(signum, server.stop)
        print(f"Network created and supervisor listening on {server.endpoint}", flush=True)
        server.wait()
        server.stop()
    return EXIT_OK


@contextlib.contextmanager
def _network(args, progress=None) -> Iterator[Network]:
    """A network of ``args.n`` peers, spread over ``args.workers`` local worker processes if asked; the workers
    are stopped (and reaped) with the network. ``progress`` is told how the build goes."""
    config = _config(args)
    launched = None
    if args.workers:
        _check_exposure("worker link", config.host, args)
        launched = worker.launch(worker.local_hosts(config.host, args.workers), config, _security_arguments(args))
    try:
        with Network(config, progress=progress) as network:
            for endpoint in launched.endpoints if launched else ():
                network.attach(endpoint)
            network.create(args.n)
            yield network
    finally:
        if launched:
            launched.reap(config.shutdown_timeout)


def _worker(args) -> int:
    if args.n < 0:
        raise UsageError("-n must not be negative")
    if args.n and not args.supervisor:
        raise UsageError("-n needs --supervisor (a worker without one waits to be attached)")
    _check_exposure("worker link", args.host, args)
    keys = security.load(args.curve_dir)
    member = worker.Worker(args.host, Config(control_timeout=args.timeout), keys).start()
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            gevent.signal_handler(signum, member.stop)
        print(f"{worker.READY}{member.endpoint}", flush=True)
        if args.supervisor:
            result = _attach(member, args.supervisor, args.n, keys)
            print(f"Attached to {args.supervisor} with {result['worker']['peers']} peers "
                  f"({result['n']} in the network)", flush=True)
        member.wait()
    finally:
        member.stop()
    return EXIT_OK


def _ctl_arguments(name: str, words: list[str]) -> dict:
    """ARGs as ``key=value`` (value read as JSON, else a string), or positional for a command we know."""
    if words and all("=" in word for word in words):
        arguments = {}
        for word in words:
            key, _, text = word.partition("=")
            try:
                arguments[key] = json.loads(text)
            except ValueError:
                arguments[key] = text
        return arguments
    command = COMMANDS.get(name)
    if command is None:
        if words:
            raise UsageError(f"pass the arguments of {name!r} as key=value")
        return {}
    required = [param for param in command.params if param.required]
    positional = [word for word in words if "=" not in word]
    if positional != words[:len(positional)] or len(positional) != len(required):
        raise UsageError(f"{name} takes {len(required)} argument(s): "
                         f"{' '.join(p.name.upper() for p in required) or 'none'}, then key=value options")
    return {**_typed_arguments(command, positional), **_typed_options(command, words[len(positional):])}


def _ctl(args) -> int:
    arguments = _ctl_arguments(args.command, args.args)
    with ControlClient(args.control, args.timeout, security.load(args.curve_dir)) as client:
        reply = client.request({"cmd": args.command, **arguments})
    if args.json:
        print(json.dumps(reply), flush=True)
    elif reply["ok"]:
        _print_result(args.command, reply["result"], False)
    if not reply["ok"]:
        raise ControlError(reply.get("error", "unknown error"))
    return EXIT_OK


def _plot(args) -> int:
    if (args.file is None) == (args.time_lapse is None):
        raise UsageError("plot needs either FILE or --time-lapse DIR")
    plot.require_matplotlib()
    if args.time_lapse is not None:
        steps = plot.draw_time_lapse(args.time_lapse, args.output, args.width, args.height or 600)
        print(f"Drawing a {steps - 1} step time-lapse to {args.output}", flush=True)
    else:
        drawn = read_graph(args.file)
        plot.draw_overlay(drawn, args.output, args.width, args.height or 1000)
        print(f"Drawing {drawn.number_of_nodes()} peers to {args.output}", flush=True)
    return EXIT_OK


def _attach(member, supervisor: str, peers: int, keys) -> dict:
    """Ask ``supervisor`` to take on ``member`` with ``peers`` peers. Building them may take long, but a supervisor
    that never gets in touch lets the worker stop after ``control_timeout``: then no supervisor answered."""
    def call() -> dict:
        with ControlClient(supervisor, member.config.command_timeout, keys) as client:
            return client.call("attach", endpoint=member.endpoint, peers=peers)

    attaching = gevent.spawn(call)
    try:
        gevent.wait([attaching, member.stopped], count=1)
        if not attaching.ready():
            raise RpcTimeout(f"no supervisor answered at {supervisor} within {member.config.control_timeout:g} s")
        return attaching.get()
    finally:
        attaching.kill()


def _keys(args) -> int:
    security.generate(args.curve_dir)
    print(f"Wrote {security.PUBLIC_FILE} and {security.SECRET_FILE} (keep it secret) in {args.curve_dir}", flush=True)
    return EXIT_OK


def _check_exposure(what: str, endpoint: str, args) -> None:
    warning = security.check_exposure(what, endpoint, security.load(args.curve_dir), args.insecure)
    if warning:
        print(f"{PROG}: {warning}", file=sys.stderr, flush=True)


def _security_arguments(args) -> tuple[str, ...]:
    """The options that make local workers as secure as their supervisor."""
    if args.curve_dir:
        return ("--curve-dir", args.curve_dir)
    return ("--insecure",) if args.insecure else ()


ACTIONS = {"run": _run, "serve": _serve, "worker": _worker, "keys": _keys, "ctl": _ctl, "plot": _plot}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``p2p-network``; returns the process exit code. Called without ``argv`` it is the program
    itself (reading ``sys.argv``), and the process ends when it returns."""
    args = None
    try:
        args = _build_parser().parse_args(argv)
        return ACTIONS[args.action](args)
    except SystemExit as exc:  # --help and --version: argparse has printed, the code says how it went
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except UsageError as exc:
        return _fail(f"usage error: {exc}", EXIT_USAGE)
    except RpcTimeout as exc:
        asked_a_supervisor = args is not None and args.action in ("ctl", "worker")
        return _fail(str(exc), EXIT_NO_SUPERVISOR if asked_a_supervisor else EXIT_FAILED)
    except P2PError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        return _fail("Aborted!", EXIT_INTERRUPTED)
    except BrokenPipeError:  # e.g. `p2p-network ctl stats | head`: the reader left; no traceback for that
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the interpreter's final flush is quiet
        return EXIT_FAILED
    finally:
        if argv is None:
            # Everything is stopped and the process ends next. Its final garbage collections would walk every
            # object left, such as the tables of thousands of stopped peers: 0.8 s of a worker's exit with 3,000
            # peers (0.03 s frozen), long enough that a 20,000-peer die outlived shutdown_timeout.
            gc.freeze()


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    return code


__all__ = ["main"]
