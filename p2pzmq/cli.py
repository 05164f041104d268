"""The ``p2p-network`` command line (docs/DESIGN.md §5): ``run``, ``serve``, ``worker``, ``keys``, ``ctl``, ``plot``,
``events``.

The supervisor returns data; :mod:`.console` turns it into the original's console lines (or JSON with ``--json``).
Long operations draw progress bars on stderr when it is a terminal and ``--json`` is off (see :mod:`.progress`).
``main(argv)`` returns the exit code: 0 success; 1 a command failed; 2 usage error, i.e. what was typed is wrong,
found before anything ran (``run`` checks all its commands before it builds a network); 3 no supervisor answered in
time; 130 interrupted (SIGINT). ``serve`` and ``worker`` stop cleanly and exit 0 on SIGTERM. Every failure is one
line on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import ipaddress
import json
import math
import os
import re
import signal
import socket
import sys
import textwrap

import gevent

from . import (__version__, addresses, events, netmodel, plot, protocols, rendezvous, security, simtime, snapshot, web,
               worker)
from .commands import COMMANDS, absolute_paths, parse_request, parse_session
from .config import Config, TRANSPORTS
from .console import print_result
from .control import DEFAULT_ENDPOINT, ControlClient, ControlServer, announced
from .errors import ControlError, Crashed, P2PError, RpcTimeout, UsageError
from .graph import output_file, read_graph
from .interrupts import Signalled, stopping_on
from .network import ROUTINGS, Network
from .progress import TerminalProgress
from .protocols.original.table import METRICS
from .publishing import Publisher, Recorder, Subscriber
from .supervision import Group

PROG = "p2p-network"
#: The original's session, run by ``run`` when no command is given.
DEFAULT_SESSION = ["net_status", "refresh_peers", "net_status", "output_tgf", "network.tgf"]
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_SUPERVISOR, EXIT_CRASHED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors stay one line and main() returns."""

    def error(self, message: str):
        raise UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="A peer-to-peer network simulator on gevent and ZeroMQ.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="action", required=True, parser_class=_Parser)
    usages = "commands:\n" + "\n".join(
        f"  {command.usage()}\n" + textwrap.fill(command.help, 100, initial_indent=" " * 6, subsequent_indent=" " * 6)
        for command in COMMANDS.values())
    text = argparse.RawDescriptionHelpFormatter

    run = sub.add_parser("run", help="build a network, run commands in order, exit", formatter_class=text,
                         description=f"Build a network and run COMMANDs in order (not die). With none: "
                                     f"{' '.join(DEFAULT_SESSION)}. Required arguments in order or as key=value, "
                                     f"the others as key=value.", epilog=usages)
    _network_options(run)
    run.add_argument("--json", action="store_true", help="print each command's result as one JSON line")
    run.add_argument("--sample", type=_integer(0), default=None, metavar="K",
                     help="net_status estimates reach from K random targets per peer (0: all pairs; default: all "
                          "pairs while their work fits the status budget: 2,000 peers of the original, 312 of "
                          "kademlia)")
    run.add_argument("--routing", choices=ROUTINGS, default=None,
                     help="how net_status routes: find_peer messages, locally on fetched tables, or auto (default)")
    run.add_argument("commands", nargs="*", metavar="COMMAND", help="a command and its arguments")

    serve = sub.add_parser("serve", help="build a network and serve the control socket until die")
    _network_options(serve)
    serve.add_argument("--control", type=_endpoint(bind=True), default=DEFAULT_ENDPOINT, metavar="ENDPOINT",
                       help=f"control socket endpoint, tcp://HOST:PORT or ipc://PATH (default {DEFAULT_ENDPOINT})")
    serve.add_argument("--events", type=_endpoint(bind=True), default=None, metavar="ENDPOINT",
                       help="publish the event stream on a ZeroMQ PUB socket at ENDPOINT (tcp://HOST:PORT or "
                            "ipc://PATH; read it with p2p-network events), see docs/EVENTS.md")
    serve.add_argument("--expect-workers", type=_integer(0), default=0, metavar="K",
                       help="serve the control socket at once, wait for K workers to register (p2p-network worker "
                            "--supervisor ENDPOINT), then create the peers over them (implies --transport tcp)")
    serve.add_argument("--expect-timeout", type=_seconds, default=300.0, metavar="S",
                       help="exit 1 unless K workers registered within S seconds (default %(default)s)")
    serve.add_argument("--http", type=_http_address, metavar="HOST:PORT",
                       help="serve the web view there (port 0: any free one); HOST must be loopback unless "
                            "--http-token is given")
    serve.add_argument("--http-token", metavar="TOKEN",
                       help="every web API request must carry Authorization: Bearer TOKEN (open the page at "
                            "http://HOST:PORT/#token=TOKEN)")

    member = sub.add_parser("worker", help="hold peers for a supervisor (on this or another host)",
                            description="Start a worker process. With --supervisor it joins that running "
                                        "supervisor and contributes -n peers; without, it waits to be attached.")
    member.add_argument("--supervisor", type=_endpoint(bind=False), metavar="ENDPOINT",
                        help="control endpoint of a running supervisor")
    member.add_argument("-n", type=_integer(0), default=0, help="peers to contribute (with --supervisor; default 0)")
    member.add_argument("--host", type=_host, default="127.0.0.1", help="address this worker and its peers bind; "
                        "auto: the one that reaches the supervisor (beside it on loopback: 127.0.1.<index + 1>)")
    member.add_argument("--timeout", type=_seconds, default=Config.control_timeout, metavar="S",
                        help="give up (exit 3) if no supervisor gets in touch within S seconds (default %(default)s)")
    _security_options(member)

    keys = sub.add_parser("keys", help="generate the CURVE key pair of a network",
                          description="Write DIR/network.key (public) and DIR/network.key_secret (secret). Give "
                                      "the same --curve-dir to serve, worker and ctl.")
    keys.add_argument("--curve-dir", required=True, metavar="DIR")

    ctl = sub.add_parser("ctl", help="send one command to a running supervisor", formatter_class=text,
                         description="Send COMMAND to a supervisor and print the reply. Relative paths are taken "
                                     "from this directory when the supervisor is on this host (loopback or ipc), "
                                     "else from the supervisor's.", epilog=usages)
    ctl.add_argument("--control", type=_endpoint(bind=False), default=DEFAULT_ENDPOINT, metavar="ENDPOINT")
    ctl.add_argument("--timeout", type=_seconds, default=10.0, metavar="S",
                     help="seconds to wait for the reply (default 10); exit 3 if none comes")
    ctl.add_argument("--json", action="store_true", help="print the raw JSON reply")
    ctl.add_argument("--curve-dir", metavar="DIR", help="the network's CURVE keys (if the supervisor uses them)")
    ctl.add_argument("command", nargs="?", metavar="COMMAND")
    ctl.add_argument("args", nargs="*", metavar="ARG")

    watch = sub.add_parser("events", help="print a served network's event stream as JSON lines",
                           description="Subscribe to the event stream of serve --events ENDPOINT and print each "
                                       "event as one JSON line (docs/EVENTS.md). Ctrl-C stops it (exit 130).")
    watch.add_argument("--events", required=True, type=_endpoint(bind=False), metavar="ENDPOINT",
                       help="the endpoint serve --events publishes at")
    watch.add_argument("--type", dest="types", action="extend", nargs="+", choices=events.TYPES, metavar="T",
                       help=f"print only events of these types ({', '.join(events.TYPES)})")
    watch.add_argument("--timeout", type=_seconds, default=None, metavar="S",
                       help="exit 3 when S seconds pass without an event (of the chosen types)")
    watch.add_argument("--count", type=_integer(1), default=None, metavar="N", help="exit 0 after N events")

    plot_ = sub.add_parser("plot", help="draw a graph file or a time-lapse as a PNG (needs the plot extra)",
                           description="Draw FILE (.tgf, .graphml, .gexf or .json) as a picture of the overlay, or "
                                       "with --time-lapse DIR chart connectivity and mean table size against "
                                       "refresh step (from DIR/time-lapse.json, else from the time-lapse files).")
    plot_.add_argument("file", nargs="?", metavar="FILE", help="graph file written by output_graph or output_tgf")
    plot_.add_argument("--time-lapse", metavar="DIR", help="directory holding a time_lapse's files")
    plot_.add_argument("-o", "--output", required=True, metavar="OUT.png")
    plot_.add_argument("--width", type=_pixels, default=1000, metavar="PX", help="picture width (default 1000)")
    plot_.add_argument("--height", type=_pixels, default=None, metavar="PX",
                       help="picture height (default 1000, or 600 for a time-lapse)")
    return parser


def _network_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", type=_integer(1), default=16, help="number of peers (default 16)")
    parser.add_argument("--seed", type=int, default=None, help="seed of every random choice: same seed, same run")
    parser.add_argument("--protocol", default=protocols.DEFAULT, metavar="NAME",
                        help=f"the peers' protocol: {', '.join(protocols.names())}, or one --protocol-module "
                             f"registers (default {protocols.DEFAULT})")
    parser.add_argument("--protocol-module", metavar="MODULE", help="import MODULE first, whose import registers "
                                                                    "the protocol (workers import it too)")
    parser.add_argument("--metric", choices=METRICS, default="tree", help="the original's closest-peer rule")
    parser.add_argument("--k", type=_integer(1), default=Config.k, help="kademlia: contacts per bucket (20)")
    parser.add_argument("--alpha", type=_integer(1), default=Config.alpha, help="kademlia: requests per round (3)")
    parser.add_argument("--transport", choices=TRANSPORTS, default="inproc")
    parser.add_argument("--host", type=_host, default="127.0.0.1", help="address peers bind with --transport tcp")
    parser.add_argument("--refresh-interval", type=_duration, default=Config.refresh_interval, metavar="T",
                        help="a peer refreshes by itself after T of silence, e.g. 2s, 5m, 1d (default 1d)")
    parser.add_argument("--pace", type=_duration, default=0.0, metavar="T", help="pause between peer creations")
    parser.add_argument("--client-timeout", type=_duration, default=Config.client_timeout, metavar="T",
                        help="a peer takes one silent this long for dead, e.g. 500ms (default 2s; refused: at once)")
    parser.add_argument("--evict-after", type=_integer(0), default=Config.evict_after, metavar="K",
                        help="a peer drops an entry that did not answer in K passes in a row (default 0: never)")
    parser.add_argument("--join-concurrency", type=_integer(1), default=1, metavar="J",
                        help="up to J peers join, and refresh, at once (default 1, the original's sequential "
                             "order; more is faster over workers, but tables then depend on scheduling)")
    # Simulated time (docs/DESIGN.md §12): parsed and checked by _config before anything is built.
    parser.add_argument("--latency", default="none", metavar="MODEL", help="one-way delay of each message: none "
                        "(default), constant:D, uniform:LO:HI, lognormal:MEDIAN:SIGMA, coords:BASE:SPAN, matrix:FILE")
    parser.add_argument("--jitter", default="0", metavar="F", help="delays times a uniform draw in [1-F, 1+F]")
    parser.add_argument("--loss", default="0", metavar="P", help="share of messages lost")
    parser.add_argument("--clock", default=None, metavar="virtual|real", help="the network's clock")
    parser.add_argument("--record", metavar="FILE.jsonl", default=None,
                        help="write the event stream to FILE, one JSON object a line (docs/EVENTS.md)")
    parser.add_argument("--from-snapshot", metavar="PATH", default=None,
                        help="restore the network output_snapshot wrote to PATH, without joins: the file decides "
                             "-n, the seed, the protocol and its settings")
    parser.add_argument("--workers", type=_integer(0), default=0, metavar="K",
                        help="spread the peers over K worker processes on this host (implies --transport tcp)")
    _security_options(parser)


def _security_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--curve-dir", metavar="DIR", help="serve the control socket and worker link with these "
                                                           "CURVE keys (see p2p-network keys)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow a non-loopback control socket or worker link without CURVE keys")


# -- option types: each raises ArgumentTypeError, which argparse reports as "argument --x: <message>" ----------------


def _integer(low: int):
    def integer(text: str) -> int:
        if not re.fullmatch(r"[+-]?[0-9]{1,19}", text) or not low <= int(text) < 1 << 63:
            raise argparse.ArgumentTypeError(f"must be an integer of at least {low}, not {text!r:.40}")
        return int(text)
    return integer


def _seconds(text: str) -> float:
    """A positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r:.40}")
    return value


def _duration(text: str) -> float:
    """Seconds from ``1.5``, ``250ms``, ``2s``, ``5m``, ``3h`` or ``1d``."""
    number, unit = re.fullmatch(r"(.*?)(ms|s|m|h|d)?", text, re.S).groups()
    try:
        value = float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit or "s"]
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r:.40} (try 2s, 5m, 1d)")
    return value


def _endpoint(bind: bool):
    def endpoint(text: str) -> str:
        try:
            addresses.parse_endpoint(text, bind)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text
    return endpoint


def _host(text: str) -> str:
    """An IP address or a host name to bind (and be reached at)."""
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(text)
        return text
    if _HOST_NAME.fullmatch(text):
        return text
    raise argparse.ArgumentTypeError(f"not an IP address or host name: {text!r:.40}")


def _http_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (an IPv6 host in brackets) as the host and the port number."""
    host, colon, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not host or not re.fullmatch(r"[0-9]{1,5}", port) or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {text!r:.80}")
    return host, int(port)


def _pixels(text: str) -> int:
    try:
        return plot.check_size("a picture side", int(text) if re.fullmatch(r"[0-9]{1,6}", text) else text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: What a snapshot decides, as the flags that would otherwise say it (cli name -> snapshot field, read by _restored).
_SNAPSHOT_FLAGS = ("n", "seed", "protocol", "metric", "k", "alpha", "evict_after")


def _restored(args) -> snapshot.Snapshot | None:
    """The snapshot of ``--from-snapshot``, read and checked whole before anything is started (a bad file raises
    :class:`~p2pzmq.snapshot.SnapshotError`: exit 1); it sets ``args``' network flags, and a flag given with
    another value than the file's is a usage error."""
    if args.from_snapshot is None:
        return None
    saved = snapshot.read(args.from_snapshot, lambda protocol, settings: _capacity(args, protocol, settings))
    decided = {"n": len(saved.ids), "seed": saved.seed, "protocol": saved.protocol, "metric": saved.metric,
               **saved.settings}
    defaults = vars(_build_parser().parse_args([args.action]))
    for name in _SNAPSHOT_FLAGS:
        given = getattr(args, name)
        if name in decided and given != defaults[name] and given != decided[name]:
            flag = "-n" if name == "n" else f"--{name.replace('_', '-')}"
            raise UsageError(f"{flag} {given} contradicts the snapshot's {decided[name]}")
    for name, value in decided.items():
        setattr(args, name, value)
    return saved


def _capacity(args, protocol: str, settings: dict) -> int | None:
    """The largest table a snapshot's protocol allows with its settings (None: no bound)."""
    try:
        config = Config(protocol=protocol, protocol_module=args.protocol_module, **settings)
    except (UsageError, TypeError) as exc:
        raise snapshot.SnapshotError(f"its protocol and settings cannot run here: {exc}") from None
    capacity = protocols.of(config).capacity
    return None if capacity is None else capacity(config)


def _config(args) -> Config:
    latency, jitter, loss = (netmodel.parse_latency(args.latency), netmodel.parse_jitter(args.jitter),
                             netmodel.parse_loss(args.loss))
    workers = bool(args.workers or getattr(args, "expect_workers", 0))
    clock = simtime.check_options(latency, jitter, loss, args.clock and netmodel.parse_clock(args.clock), workers)
    if args.workers > args.n:  # each worker is a process of its own: no more of them than peers to hold
        raise UsageError(f"--workers {args.workers} is more than the {args.n} peers they would hold")
    transport = "tcp" if args.workers or getattr(args, "expect_workers", 0) else args.transport
    changes = {name: getattr(args, name) for name in ("seed", "protocol", "protocol_module", "metric", "k", "alpha",
                                                      "host", "pace", "join_concurrency",
                                                      "refresh_interval", "client_timeout", "evict_after")}
    changes["transport"] = transport
    return Config(**changes, latency=latency.text, jitter=jitter, loss=loss, network_clock=clock)


# -- actions ---------------------------------------------------------------------------------------------------


def _progress(args) -> TerminalProgress | None:
    """Progress bars on stderr, only for a person watching: stderr is a terminal and ``--json`` is off."""
    return None if getattr(args, "json", False) or not sys.stderr.isatty() else TerminalProgress(sys.stderr)


def _run(args) -> int:
    session = parse_session(args.commands or DEFAULT_SESSION)  # every mistake in them is a usage error: 2
    for name, arguments in session:
        if name == "net_status":  # --sample and --routing are defaults for every net_status without its own
            if args.sample is not None and arguments["sample"] is None:
                arguments["sample"] = args.sample
            if args.routing is not None and arguments["routing"] == "auto":
                arguments["routing"] = args.routing
    if any(name == "output_png" for name, _ in session):
        plot.require_matplotlib()  # before the build, which may take long
    progress = _progress(args)
    saved = _restored(args)
    config = _config(args)
    try:
        with contextlib.ExitStack() as stack:
            sinks = _sinks(stack, args, config)
            network = _build(stack, args, config, progress, sinks=sinks, saved=saved)
            for name, arguments in session:
                try:
                    result = announced(network, COMMANDS[name], arguments)
                except P2PError as exc:  # found only now the network exists (an id no peer has): a failed command
                    raise P2PError(f"{name}: {exc}") from exc
                print_result(name, result, args.json)
    finally:
        if progress is not None:
            progress.close()
    return EXIT_OK


def _serve(args) -> int:
    expected = args.expect_workers  # by a launcher that starts them with the supervisor: they register themselves
    if expected and args.workers:
        raise UsageError("give either --workers (started here) or --expect-workers (started by a launcher)")
    if args.http_token is not None and args.http is None:
        raise UsageError("--http-token needs --http HOST:PORT")
    _check_exposure("control socket", args.control, args)
    keys = security.load(args.curve_dir)
    saved = _restored(args)
    config = _config(args)
    with contextlib.ExitStack() as stack:
        listener = None
        if args.http is not None:  # a bad address or a busy port is a usage error, found before anything is built
            listener = web.bind(*args.http, args.http_token)
            stack.callback(listener.close)
        sinks = _sinks(stack, args, config)  # first: closed after the network, so they see its end
        network = stack.enter_context(Network(config, keys=keys))
        for sink in sinks:
            sink.attach(network.events)
        server = ControlServer(network, args.control, keys)  # bound before the build: a busy port fails at once
        if listener is not None:  # stopped after the control server, which answers the requests it still holds
            view = web.WebView(network, server, listener, args.http_token)
            stack.callback(view.stop)
            view.start()
            print(f"Web view at {view.url}", file=sys.stderr, flush=True)
        stack.callback(server.stop)
        network.on_progress = _progress(args)
        if expected:
            server.start()
            print(f"Control socket listening on {server.endpoint}", file=sys.stderr, flush=True)
            if not rendezvous.await_workers(network, server.stopped, expected, args.expect_timeout):
                return EXIT_OK  # told to die while waiting
        _build(stack, args, config, network=network, saved=saved)
        network.on_progress = None  # only the creation: the control socket's commands report to their own caller
        if not expected:
            server.start()
        print(f"Network created and supervisor listening on {server.endpoint}", flush=True)
        server.wait()
    return EXIT_OK


def _sinks(stack: contextlib.ExitStack, args, config: Config) -> list:
    """Where the event stream goes (``--record``, and ``--events`` for serve), opened before any network exists: an
    unwritable file or a busy port is a usage error. ``stack`` closes them."""
    sinks = []
    if args.record is not None:
        sinks.append(Recorder(args.record))
        stack.callback(sinks[-1].close)
    endpoint = getattr(args, "events", None)
    if endpoint is not None:
        warning = security.check_exposure("event stream", endpoint, None, args.insecure)  # PUB speaks no CURVE
        if warning:
            print(f"{PROG}: {warning}", file=sys.stderr, flush=True)
        try:
            sinks.append(Publisher(endpoint, config.events_hwm))
        except P2PError as exc:
            raise UsageError(f"--events: {exc}") from None
        stack.callback(sinks[-1].close)
        print(f"Events published on {sinks[-1].endpoint}", file=sys.stderr, flush=True)
    return sinks


def _build(stack: contextlib.ExitStack, args, config: Config, progress=None, network: Network | None = None,
           sinks: list = (), saved: snapshot.Snapshot | None = None):
    """A network of ``args.n`` peers (in ``network``, else a new one, fed to ``sinks``), spread over
    ``args.workers`` local worker processes if asked, or the network ``saved`` restored; ``stack`` stops the
    network and then reaps the workers when it closes."""
    if network is None:
        network = stack.enter_context(Network(config, progress=progress, keys=security.load(args.curve_dir)))
        for sink in sinks:
            sink.attach(network.events)
    if args.workers:
        _check_exposure("worker link", config.host, args)
        launched = worker.launch(worker.local_hosts(config.host, args.workers), config, _security_arguments(args))
        stack.callback(launched.reap, config.shutdown_timeout)
        stack.callback(network.die)  # first, so that the workers are told to stop before they are waited for
        for endpoint in launched.endpoints:
            network.attach(endpoint)
    if saved is not None:
        network.events.command("restore", {"path": args.from_snapshot}, lambda: network.restore(saved))
    else:
        network.events.command("create", {"n": args.n}, lambda: network.create(args.n))
    return network


def _worker(args) -> int:
    if args.n and not args.supervisor:
        raise UsageError("-n needs --supervisor (a worker without one waits to be attached)")
    auto = args.host == "auto"
    host = rendezvous.address_towards(args.supervisor) if auto else args.host
    _check_exposure("worker link", host, args)
    keys = security.load(args.curve_dir)
    member = worker.Worker(host, Config(control_timeout=args.timeout), keys, spread_loopback=auto).start()
    try:
        print(f"{worker.READY}{member.endpoint}", flush=True)
        if args.supervisor:
            result = _attach(member, args.supervisor, args.n, keys)
            print(f"Attached to {args.supervisor} with {result['worker']['peers']} peers "
                  f"({result['n']} in the network) as worker {result['index']}", flush=True)
        member.wait()
    finally:
        member.stop()
    if member.gave_up:
        raise RpcTimeout(member.gave_up)
    return EXIT_OK


def _attach(member, supervisor: str, peers: int, keys) -> dict:
    """Ask ``supervisor`` to take on ``member`` with ``peers`` peers. Building them may take long, but a supervisor
    that never gets in touch lets the worker stop after ``control_timeout``: then no supervisor answered."""
    def call() -> dict | P2PError:  # an error comes back as a value: gevent prints those a greenlet raises
        try:
            with ControlClient(supervisor, member.config.command_timeout, keys) as client:
                return client.call("attach", endpoint=member.endpoint, peers=peers)
        except P2PError as exc:
            return exc

    group = Group(kill_timeout=member.config.shutdown_timeout)
    attaching = group.spawn("attach request", call)
    try:
        gevent.wait([attaching, member.stopped], count=1)
        if not attaching.ready():
            raise RpcTimeout(f"no supervisor answered at {supervisor} within {member.config.control_timeout:g} s")
        result = attaching.get()
    finally:
        group.kill()
    if isinstance(result, P2PError):
        raise result
    return result


def _ctl(args) -> int:
    if args.command is None:
        raise UsageError(f"ctl needs a COMMAND: {', '.join(COMMANDS)}")
    request = parse_request(args.command, args.args)
    if addresses.is_loopback(args.control):
        request = absolute_paths(request)
    with ControlClient(args.control, args.timeout, security.load(args.curve_dir)) as client:
        reply = client.request(request)
    if args.json:
        print(json.dumps(reply), flush=True)
    elif reply["ok"]:
        print_result(args.command, reply["result"], False)
    if not reply["ok"]:
        raise ControlError(reply.get("error", "unknown error"))
    return EXIT_OK


def _plot(args) -> int:
    if (args.file is None) == (args.time_lapse is None):
        raise UsageError("plot needs either FILE or --time-lapse DIR")
    path = os.path.abspath(output_file(args.output, None, ["png"])[0])
    plot.require_matplotlib()
    if args.time_lapse is not None:
        steps = plot.draw_time_lapse(args.time_lapse, path, args.width, args.height or 600)
        print(f"Drawing a {steps} step time-lapse to {path}", flush=True)
    else:
        drawn = read_graph(args.file)
        shown = plot.draw_overlay(drawn, path, args.width, args.height or 1000)
        print(f"Drawing {drawn.number_of_nodes()} peers to {path}", flush=True)
        if shown["edges_left_out"]:
            print(shown["caption"], flush=True)
    return EXIT_OK


def _keys(args) -> int:
    security.generate(args.curve_dir)
    print(f"Wrote {security.PUBLIC_FILE} and {security.SECRET_FILE} (keep it secret) in {args.curve_dir}", flush=True)
    return EXIT_OK


def _watch(args) -> int:
    """``events``: print the stream's events (those of ``--type``) as the JSON lines they came as."""
    scheme, host, port = addresses.parse_endpoint(args.events)
    if scheme == "tcp":  # ZeroMQ would retry a name that does not resolve forever, without a word
        try:
            socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UsageError(f"--events: cannot resolve {host!r:.80}: {exc.strerror or exc}") from None
    printed = 0
    with Subscriber(args.events) as stream:
        try:
            while args.count is None or printed < args.count:
                received = stream.next(args.timeout)
                if received is None:
                    raise RpcTimeout(f"no event arrived at {args.events} within {args.timeout:g} s")
                event, raw = received
                if args.types is None or event["type"] in args.types:
                    print(raw.decode(), flush=True)
                    printed += 1
        finally:
            if stream.bad:
                print(f"{PROG}: dropped {stream.bad} messages that were no valid event", file=sys.stderr, flush=True)
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


ACTIONS = {"run": _run, "serve": _serve, "worker": _worker, "keys": _keys, "ctl": _ctl, "plot": _plot,
           "events": _watch}
#: The signals each action turns into a clean stop (see :func:`.interrupts.stopping_on`). ``plot`` and ``keys`` run
#: no event loop: Python's own SIGINT handling (KeyboardInterrupt) serves them.
STOP_SIGNALS = {"run": (signal.SIGINT,), "ctl": (signal.SIGINT,), "events": (signal.SIGINT, signal.SIGTERM),
                "serve": (signal.SIGINT, signal.SIGTERM),
                "worker": (signal.SIGINT, signal.SIGTERM)}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``p2p-network``; returns the process exit code. Called without ``argv`` it is the program
    itself (reading ``sys.argv``), and the process ends when it returns."""
    args = None
    try:
        args = _build_parser().parse_args(argv)
        with stopping_on(STOP_SIGNALS.get(args.action, ())):
            return ACTIONS[args.action](args)
    except SystemExit as exc:  # --help and --version: argparse has printed, the code says how it went
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except UsageError as exc:
        return _fail(f"usage error: {exc}", EXIT_USAGE)
    except RpcTimeout as exc:
        asked_a_supervisor = args is not None and args.action in ("ctl", "worker", "events")
        return _fail(str(exc), EXIT_NO_SUPERVISOR if asked_a_supervisor else EXIT_FAILED)
    except Crashed as exc:  # a part of the process broke (a bug): everything was stopped on the way out
        return _fail(str(exc), EXIT_CRASHED)
    except P2PError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except Signalled as exc:  # SIGTERM asks serve and worker to stop: that is a success
        return _fail("Aborted!", EXIT_INTERRUPTED) if exc.signum == signal.SIGINT else EXIT_OK
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
