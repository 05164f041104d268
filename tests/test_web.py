"""The web view's HTTP API without a browser (docs/DESIGN.md §9): the same answers as the control socket, and every
refusal (token, 405, bounds, Origin and Host, content type) with the control socket's error object."""
import json
import random

import gevent
import gevent.event
import gevent.socket
import pytest

from hangs import end_process
from p2pzmq import cli, web
from p2pzmq.config import MAX_CONTROL_REQUEST_BYTES
from p2pzmq.control import ControlServer, handle
from p2pzmq.errors import UsageError
from p2pzmq.web.feed import Feed, Snapshots, thin
from p2pzmq.timeline import untimed

pytestmark = pytest.mark.timeout(60)


def http(view, method, path, body=None, headers=None, host=None, length=True):
    """(status, parsed JSON or raw bytes) of one HTTP request; green, so the server in this process answers."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    head = {"Host": host or f"127.0.0.1:{view.port}", **(headers or {})}
    if data is not None:
        head.setdefault("Content-Type", "application/json")
        if length:
            head["Content-Length"] = str(len(data))
    head["Connection"] = "close"
    request = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n"
    with connect(view) as sock:
        sock.sendall(request.encode() + (data or b""))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    header, _, payload = response.partition(b"\r\n\r\n")
    status = int(header.split()[1])
    kind = next((line for line in header.split(b"\r\n") if line.lower().startswith(b"content-type")), b"")
    return status, json.loads(payload) if b"json" in kind else payload


@pytest.fixture(autouse=True)
def resolver():
    """gevent resolves even an address literal in a worker thread that then stays: start it before the leak check
    of ``make_network`` counts greenlets (and connect from one greenlet at a time, so one thread does)."""
    gevent.socket.getaddrinfo("127.0.0.1", 0)


def connect(view):
    """A green connection to the view."""
    sock = gevent.socket.socket()
    sock.settimeout(30)
    sock.connect(("127.0.0.1", view.port))
    return sock


@pytest.fixture
def served(make_network):
    """A 16-peer network with its control server and a web view on a free loopback port; stopped after the test."""
    views = []

    def serve(token=None, n=16):
        network = make_network(n)
        server = ControlServer(network, "tcp://127.0.0.1:0").start()
        view = web.WebView(network, server, web.bind("127.0.0.1", 0, token), token).start()
        views.append((view, server))
        return network, view
    yield serve
    for view, server in views:
        server.stop()
        view.stop()


def test_commands_answer_what_the_control_socket_answers(served):
    network, view = served()
    for name, arguments in [("ping", {}), ("net_status", {}), ("lookup", {"from": "1", "id": "2"}),
                            ("kill_peers", {"count": "many"}), ("add_peers", {"n": 0}), ("peers", {"extra": 1})]:
        status, reply = http(view, "POST", f"/api/{name}", arguments)
        expected, _ = handle(network, json.dumps({"cmd": name, **arguments}).encode())
        assert untimed(reply) == untimed(json.loads(json.dumps(expected))), name
        assert status == (200 if expected["ok"] or name in ("lookup",) else 400), name


def test_a_long_command_neither_blocks_the_page_nor_ping(served):
    network, view = served()
    started = gevent.event.Event()
    network.events.subscribe(lambda event: event["type"] == "command" and started.set())
    long = gevent.spawn(http, view, "POST", "/api/refresh_peers", {})
    started.wait()  # refresh_peers runs (and its connection is made)
    assert http(view, "GET", "/")[0] == 200
    assert http(view, "POST", "/api/ping", {}) == (200, {"ok": True, "result": {"n": 16}})
    assert long.get()[1]["ok"]


def test_refusals_are_the_control_sockets_error_object(served):
    network, view = served()
    cases = [
        (("GET", "/api/ping"), 405),
        (("POST", "/api/ping", b"{not json"), 400),
        (("POST", "/api/ping", [1, 2]), 400),
        (("POST", "/api/ping", {"cmd": "die"}), 400),
        (("POST", "/api/no_such_command", {}), 404),
        (("POST", "/api/ping", b"x" * (MAX_CONTROL_REQUEST_BYTES + 1)), 413),
        (("POST", "/api/ping", b"{}", {"Content-Type": "text/plain"}), 415),
        (("POST", "/api/ping", b"{}", {"Content-Type": "application/x-www-form-urlencoded"}), 415),
        (("POST", "/api/ping", {}, {"Origin": "http://evil.example"}), 403),
        (("POST", "/feed/graph", {}), 405),
        (("GET", "/static/../server.py"), 404),
        (("GET", "/nowhere"), 404),
    ]
    for request, status in cases:
        got, reply = http(view, *request)
        assert got == status, request[:2]
        assert set(reply) == {"ok", "error"} and reply["ok"] is False and "\n" not in reply["error"], request[:2]
    assert http(view, "POST", "/api/ping", {}, host=f"rebound.example:{view.port}")[0] == 403
    chunked = {"Transfer-Encoding": "chunked"}
    assert http(view, "POST", "/api/add_peers", b"8\r\n{\"n\": 1}\r\n0\r\n\r\n", chunked, length=False)[1]["ok"]
    big = b"%x\r\n" % (MAX_CONTROL_REQUEST_BYTES + 1) + b" " * (MAX_CONTROL_REQUEST_BYTES + 1) + b"\r\n0\r\n\r\n"
    assert http(view, "POST", "/api/ping", big, chunked, length=False)[0] == 413
    # word for word the control socket's errors: bytes that are not JSON, an unknown command, a body too large
    too_large = b"x" * (MAX_CONTROL_REQUEST_BYTES + 1)
    for path, body, raw in [("/api/ping", b"{not json", b"{not json"),
                            ("/api/no_such_command", b"{}", b'{"cmd": "no_such_command"}'),
                            ("/api/ping", too_large, too_large)]:
        assert http(view, "POST", path, body)[1] == handle(network, raw)[0], path
    assert http(view, "POST", "/api/ping", {})[1]["ok"]  # still serving


def test_a_token_is_required_on_every_api_and_feed_request(served):
    _, view = served(token="s3cret")
    for method, path in [("POST", "/api/ping"), ("GET", "/feed/graph"), ("GET", "/feed/peer/1")]:
        assert http(view, method, path, {} if method == "POST" else None)[0] == 401
        wrong = {"Authorization": "Bearer nope"}
        assert http(view, method, path, {} if method == "POST" else None, wrong)[0] == 401
    good = {"Authorization": "Bearer s3cret"}
    assert http(view, "POST", "/api/ping", {}, good)[1]["ok"]
    assert http(view, "GET", "/feed/graph", None, good)[0] == 200
    assert http(view, "GET", "/", host="anything.example:80")[0] == 200  # with a token any name may reach it


def test_the_page_and_its_files_come_from_the_package(served):
    _, view = served()
    status, page = http(view, "GET", "/")
    assert status == 200 and b"/static/app.js" in page and b"http" not in page.replace(b"http-equiv", b"")
    for name in ("app.js", "app.css", "vendor/vendor.min.js"):
        assert http(view, "GET", f"/static/{name}")[0] == 200


def test_the_graph_and_a_peer_as_the_page_reads_them(served):
    network, view = served()
    status, graph = http(view, "GET", "/feed/graph")
    ids, tables, _ = network.snapshot()
    assert status == 200 and graph["ids"] == [str(i) for i in ids] and graph["version"] == 1
    assert graph["read_seconds"] >= 0 and graph["fresh_in"] >= 0
    assert graph["size"] == [len(table) for table in tables]
    assert len(graph["edges"]) == 2 * graph["edges_total"]  # 16 peers: nothing thinned
    status, peer = http(view, "GET", f"/feed/peer/{ids[0]}")
    assert status == 200 and peer["table"] == [str(c.id) for c in tables[0].descending() if c.id != ids[0]]
    assert peer["counts"] == network.peer_counts(str(ids[0])) and peer["counts"]["joins"] == 1
    assert http(view, "GET", "/feed/peer/12345")[0] == 404


@pytest.mark.parametrize("protocol", [{"protocol": "original"}, {"protocol": "kademlia", "k": 3},
                                      {"protocol": "random_graph", "protocol_module": "random_graph_protocol"}])
@pytest.mark.parametrize("slice_seconds", [0.0, 0.001, 10.0])
def test_entries_are_the_tables_the_snapshot_builds(make_network, protocol, slice_seconds):
    """What the page draws (the clients' wire forms, read a chunk at a time: one peer a chunk with no time to
    spare, a few, all) is each table's entries in ``descending`` order, for every protocol, with the snapshot's
    attributes."""
    network = make_network(23, **protocol)
    ids, tables, extras = network.snapshot()
    read = network.entries(slice_seconds)
    assert read[:3] == (ids, [[c.id for c in table.descending()] for table in tables], extras) and read.seconds > 0


def test_each_peer_counts_what_it_served_sent_and_walked(make_network):
    """Every request a peer's client sent reached a server that served it (one process, nothing lost), each peer
    joined once but the first, and one refresh each shows; an id no peer has is a usage error."""
    network = make_network(16)
    network.refresh_peers()
    counts = [network.peer_counts(str(peer_id)) for peer_id in network.entries(1).ids]
    assert sum(row["sent"] for row in counts) == sum(row["served"] for row in counts) > 0
    assert all(row["failed"] == 0 and row["refreshes"] == 1 and row["departs"] == 0 for row in counts)
    assert sorted(row["joins"] for row in counts) == [0] + [1] * 15
    with pytest.raises(UsageError, match="no peer has id 12345"):
        network.peer_counts("12345")


class _Network:
    """A network whose ``entries`` read costs ``cost`` seconds of a fake clock and whose membership a test sets."""

    def __init__(self, clock):
        self.clock = clock
        self.ids = [3, 2, 1]
        self.reads = 0

    def entries(self, slice_seconds):
        self.reads += 1
        self.clock.now += 2.0
        return self.ids, [list(self.ids) for _ in self.ids], [{"alive": True, "host": "inproc"} for _ in self.ids], 2.0


class _Clock:
    now = 100.0

    def __call__(self):
        return self.now


def test_graph_reads_take_at_most_their_share_of_the_time():
    """A read that took 2 s is answered again until 18 s later (duty 0.1), to every page; ``have`` gets a short
    'unchanged'; the peers' ``known_by`` counts the other tables holding each."""
    clock = _Clock()
    network = _Network(clock)
    snapshots = Snapshots(network, duty=0.1, clock=clock)
    first = json.loads(snapshots.graph())
    assert first["version"] == 1 and first["read_seconds"] == 2.0 and first["fresh_in"] == 18.0
    assert first["ids"] == ["3", "2", "1"] and first["size"] == [3, 3, 3] and first["edges_total"] == 6
    assert snapshots.peer("2") == {"id": "2", "table": ["3", "1"], "alive": True, "host": "inproc", "known_by": 2}
    network.ids = [4, 3, 2, 1]
    clock.now += 17.5
    assert json.loads(snapshots.graph(have=1)) == {"version": 1, "unchanged": True, "fresh_in": 0.5}
    assert json.loads(snapshots.graph())["ids"] == ["3", "2", "1"] and network.reads == 1
    clock.now += 0.5
    second = json.loads(snapshots.graph(have=1))
    assert second["version"] == 2 and second["ids"] == ["4", "3", "2", "1"] and network.reads == 2


def test_the_event_feed_streams_batches_and_ends_when_the_server_stops(served):
    network, view = served()
    received = []

    def read():
        with connect(view) as sock:
            sock.sendall(f"GET /feed/events HTTP/1.0\r\nHost: 127.0.0.1:{view.port}\r\n\r\n".encode())
            while chunk := sock.recv(65536):
                received.append(chunk)
    reader = gevent.spawn(read)
    while network.events.summary()["subscribers"] == 0:
        gevent.sleep(0.01)
    assert http(view, "POST", "/api/add_peers", {"n": 2})[1]["ok"]
    while b'"joined"' not in b"".join(received):
        gevent.sleep(0.01)
    view.stop()
    reader.get(timeout=10)
    assert network.events.summary()["subscribers"] == 0


class _Events:
    def __init__(self):
        self.callbacks = []

    def subscribe(self, callback):
        self.callbacks.append(callback)
        return lambda: self.callbacks.remove(callback)


def test_a_slow_feed_keeps_the_newest_events_and_counts_the_rest():
    events = _Events()
    feed = Feed(events, backlog=5)
    for i in range(12):
        events.callbacks[0]({"i": i})
    closing = gevent.event.Event()
    stream = feed.stream(closing, interval=0)
    assert next(stream) == b"retry: 2000\n\n"
    body = json.loads(next(stream)[len(b"data: "):])
    assert [e["i"] for e in body["events"]] == list(range(7, 12)) and body["dropped"] == 7
    closing.set()
    assert list(stream) == [] and events.callbacks == []


def test_thin_against_brute_force():
    rng = random.Random(7)
    for _ in range(2000):
        targets = rng.sample(range(1000), rng.randint(0, 60))
        keep = rng.randint(0, 70)
        got = thin(targets, keep)
        assert len(got) == min(len(targets), max(keep, 0))
        assert len(set(got)) == len(got) and all(t in targets for t in got)
        positions = [targets.index(t) for t in got]
        assert positions == sorted(positions) and (not got or positions[0] == 0)
        if keep and len(targets) > keep:  # evenly spread: gaps differ by at most one
            gaps = [b - a for a, b in zip(positions, positions[1:] + [len(targets)])]
            assert max(gaps) - min(gaps) <= 1


@pytest.mark.parametrize("argv, message", [
    (["--http", "10.1.2.3:0"], "not a loopback address"),
    (["--http", "127.0.0.1:0", "--http-token", ""], "must not be empty"),
    (["--http", "no-such-host.invalid:0"], "cannot resolve"),
    (["--http", "127.0.0.1"], "not HOST:PORT"),
    (["--http-token", "x"], "needs --http"),
])
def test_serve_refuses_a_bad_http_address_before_building(argv, message, capsys):
    assert cli.main(["serve", "-n", "100000", "--control", "tcp://127.0.0.1:0", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_serve_refuses_a_port_in_use(capsys):
    taken = web.bind("127.0.0.1", 0, None)
    try:
        port = taken.getsockname()[1]
        assert cli.main(["serve", "-n", "100000", "--control", "tcp://127.0.0.1:0",
                         "--http", f"127.0.0.1:{port}"]) == 2
        assert "cannot listen there" in capsys.readouterr().err
    finally:
        taken.close()


@pytest.mark.parametrize("how", ["SIGTERM", "die"])
def test_serve_stops_with_a_page_watching(how):
    """``serve --http`` ends cleanly (exit 0) on SIGTERM and on ``die`` over the API while a feed is open, and the
    feed's connection ends with it."""
    import signal
    import socket
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "p2pzmq", "serve", "-n", "8", "--seed", "1", "--control",
                             "tcp://127.0.0.1:0", "--http", "127.0.0.1:0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        port = int(proc.stderr.readline().rsplit(":", 1)[1].strip(" /\n"))
        assert proc.stdout.readline().startswith("Network created")
        with socket.create_connection(("127.0.0.1", port), timeout=30) as feed:
            feed.sendall(f"GET /feed/events HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            seen = b""
            while b"retry:" not in seen:
                seen += feed.recv(4096)
            if how == "SIGTERM":
                proc.send_signal(signal.SIGTERM)
            else:
                with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                    sock.sendall(f"POST /api/die HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json"
                                 f"\r\nContent-Length: 2\r\n\r\n{{}}".encode())
                    assert b'"ok": true' in b"".join(iter(lambda: sock.recv(65536), b""))
            assert proc.wait(timeout=30) == 0
            while feed.recv(65536):
                pass
    finally:
        end_process(proc)
        proc.stdout.close()
        proc.stderr.close()
