"""The event stream (docs/EVENTS.md): the in-process API, every type's schema from a real network, the PUB socket
read by ``p2p-network events`` in another process, ``--record``, drops at the high-water mark, and bad input."""
from __future__ import annotations

import json
import os
import random
import select
import signal
import socket
import subprocess
import sys

import gevent
import pytest

from conftest import wait_until
from launchers import ENV
from p2pzmq import cli, events
from p2pzmq.errors import TransportError, UsageError
from p2pzmq.events import Events, problems
from p2pzmq.publishing import Publisher, Recorder, Subscriber
from p2pzmq.transport import Context

#: A partition event as simulated time will emit it (no code emits one yet): the schema must take it.
PARTITION = {"v": 1, "t": 1.5, "type": "partition", "phase": "cut", "groups": [["1", "2"], ["3"]]}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- the in-process API (pure) ------------------------------------------------------------------------------------


def test_nobody_listening_builds_nothing():
    stream = Events()
    assert not stream.listening
    stream.emit("left", id="1")
    assert stream.emitted == 0
    assert stream.command("create", {"n": 1}, lambda: {"n": 1}) == {"n": 1}
    assert stream.emitted == 0


def test_subscribe_unsubscribe_and_the_envelope():
    clock = FakeClock()
    stream = Events(clock)
    got, other = [], []
    stop = stream.subscribe(got.append)
    stream.subscribe(other.append)
    assert stream.listening
    clock.now += 2.5
    stream.emit("left", id="7")
    stop()
    stop()  # idempotent
    stream.emit("left", id="8")
    assert got == [{"v": 1, "t": 2.5, "type": "left", "id": "7"}]
    assert [event["id"] for event in other] == ["7", "8"]
    assert stream.summary() == {"subscribers": 1, "emitted": 2, "dropped": 0, "errors": 0}


def test_a_failing_subscriber_is_counted_and_never_stops_the_others(caplog):
    stream = Events()
    got = []

    def broken(event):
        raise RuntimeError("watcher bug")

    stream.subscribe(broken)
    stream.subscribe(got.append)
    stream.emit("left", id="1")
    stream.emit("left", id="2")
    assert len(got) == 2 and stream.errors == 2
    assert sum("subscriber failed" in record.message for record in caplog.records) == 1  # logged once


def test_command_events_say_started_and_finished_with_a_summary_or_the_error():
    stream = Events()
    got = []
    stream.subscribe(got.append)
    ids = [str(i) for i in range(40)]
    stream.command("kill_peers", {"ids": ids, "count": None}, lambda: {"killed": ids, "n": 3})
    with pytest.raises(UsageError):
        stream.command("lookup", {"from": "1"}, lambda: (_ for _ in ()).throw(UsageError("no peer  has id 1")))
    stream.command("ping", {}, lambda: {"n": 1})  # quiet: polled often
    assert [(e["phase"], e["name"], e["ok"]) for e in got] == [
        ("started", "kill_peers", None), ("finished", "kill_peers", True), ("started", "lookup", None),
        ("finished", "lookup", False)]
    assert got[0]["arguments"] == {"ids": ids[:events.MAX_LISTED], "count": None}
    assert got[1]["summary"] == {"killed": 40, "n": 3}
    assert got[3]["summary"] == {"error": "no peer has id 1"}
    assert all(problems(event) == [] for event in got)


def test_summary_keeps_scalars_counts_lists_and_goes_one_level_down():
    result = {"n": 5, "connectivity": 80, "peers": [{"id": "1"}] * 5, "hops": {"histogram": {"1": 3}, "mean": 1.0},
              "route": {"path": ["1", "2"], "reached": True, "deep": {"x": {"y": 1}}}, "estimate": None}
    assert events.summarize(result) == {"n": 5, "connectivity": 80, "peers": 5, "hops": {"mean": 1.0},
                                      "route": {"path": ["1", "2"], "reached": True}, "estimate": None}
    assert events.summarize({"path": ["1"] * 65}) == {"path": 65}
    assert events.summarize(None) == {}


def _progress_model(reports):
    """Which of ``reports`` (time, phase, done, total) a bounded-rate progress stream emits, the obvious way."""
    emitted, due = [], {}
    for now, phase, done, total in reports:
        if done >= total:
            due.pop(phase, None)
            emitted.append((phase, done, total))
        elif phase not in due or now >= due[phase]:
            due[phase] = now + events.PROGRESS_INTERVAL
            emitted.append((phase, done, total))
    return emitted


def test_progress_rate_against_a_model_on_seeded_random_reports():
    for seed in range(300):
        rng = random.Random(seed)
        clock = FakeClock()
        stream = Events(clock)
        got = []
        stream.subscribe(got.append)
        reports = []
        for _ in range(rng.randrange(1, 60)):
            clock.now += rng.choice([0.0, 0.01, 0.05, 0.1, 0.2])
            total = rng.randrange(1, 5)
            report = (clock.now, rng.choice(["create", "refresh"]), rng.randrange(total + 1), total)
            reports.append(report)
            stream.progress(*report[1:])
        assert [(e["phase"], e["done"], e["total"]) for e in got] == _progress_model(reports), seed


def test_progress_of_a_big_build_is_bounded():
    clock = FakeClock()
    stream = Events(clock)
    got = []
    stream.subscribe(got.append)
    for done in range(1, 50_001):
        clock.now += 0.0001  # 50,000 peers in 5 s
        stream.progress("create", done, 50_000)
    assert len(got) <= 5 / events.PROGRESS_INTERVAL + 2
    assert (got[0]["done"], got[-1]["done"]) == (1, 50_000)


@pytest.mark.parametrize("event, problem", [
    ([], "JSON object"),
    ({"v": 2, "t": 0, "type": "left", "id": "1"}, "v must be 1"),
    ({"v": 1, "t": -1, "type": "left", "id": "1"}, "t must be"),
    ({"v": 1, "t": True, "type": "left", "id": "1"}, "t must be"),
    ({"v": 1, "t": 0, "type": "nope"}, "unknown type"),
    ({"v": 1, "t": 0, "type": "left"}, "missing id"),
    ({"v": 1, "t": 0, "type": "left", "id": 1}, "id must be string"),
    ({"v": 1, "t": 0, "type": "progress", "phase": "p", "done": True, "total": 1}, "done must be integer"),
    ({"v": 1, "t": 0, "type": "left", "id": "1", "x": 1}, "unexpected x"),
])
def test_problems_names_what_is_wrong(event, problem):
    assert any(problem in found for found in problems(event)), problems(event)


@pytest.mark.parametrize("raw", [b"\xff", b"not json", b"[1]", b'{"v": 1}', b"[" * 100_000])
def test_decode_refuses_what_is_no_event(raw):
    with pytest.raises(ValueError):
        events.decode(raw)


def test_decode_takes_back_what_encode_wrote():
    assert events.decode(events.encode(PARTITION)) == PARTITION
    with pytest.raises(ValueError):
        events.encode({**PARTITION, "t": float("nan")})


# -- a real network --------------------------------------------------------------------------------------------


def _session(net) -> None:
    """Every kind of event a network emits: a build, status, refresh, lookup, kill, leave, churn and a crash."""
    net.events.command("create", {"n": 12}, lambda: net.create(12))
    net.net_status()
    net.refresh_peers()
    ids = [peer.id for peer in net.peers]
    net.lookup(ids[0], ids[-1])
    net.kill_peers(count=1, seed=1)
    net.leave_peers(count=1, seed=2)
    net.churn(join_rate=20.0, leave_rate=0.5, duration=0.3, seed=3, wait=True)
    victim = net.peers[0]
    victim._crashed(RuntimeError("a protocol bug"))  # what a peer whose greenlets died reports
    wait_until(lambda: victim._sock.closed)  # it stops itself in a greenlet of its own


@pytest.mark.parametrize("protocol", ["original", "kademlia"])
def test_every_event_of_a_real_network_matches_its_schema(make_network, protocol):
    net = make_network(protocol=protocol)
    got = []
    net.events.subscribe(got.append)
    _session(net)
    assert [problem for event in got for problem in problems(event)] == []
    assert {event["type"] for event in got} | {"partition"} == set(events.TYPES)
    assert problems(PARTITION) == []
    joined = [event for event in got if event["type"] == "joined"]
    assert [event["index"] for event in joined] == list(range(len(joined)))
    assert {event["host"] for event in joined} == {"local"}
    crashed = [event for event in got if event["type"] == "crashed"]
    assert crashed[-1]["reason"] == "failed" and "a protocol bug" in crashed[-1]["error"]
    assert {event["phase"] for event in got if event["type"] == "churn"} == {"started", "finished"}
    times = [event["t"] for event in got]
    assert times == sorted(times)
    assert net.stats()["events"]["emitted"] == len(got)


def test_joined_events_name_the_worker(make_network):
    from p2pzmq.worker import Worker

    member = Worker("127.0.0.1").start()
    try:
        net = make_network(transport="tcp")
        got = []
        net.events.subscribe(got.append)
        net.attach(member.endpoint, peers=3)
        assert [event["host"] for event in got if event["type"] == "joined"] == [member.endpoint] * 3
        net.die()
    finally:
        member.stop()


# -- the PUB socket ----------------------------------------------------------------------------------------------


def test_a_subscriber_that_never_reads_loses_events_counted_and_never_slows_the_network(make_network):
    net = make_network(4)
    ctx = Context(max_sockets=16)
    publisher = Publisher("inproc://events-hwm", hwm=8, ctx=ctx).attach(net.events)
    stalled = ctx.sub(hwm=8)
    stalled.connect(publisher.endpoint)
    try:
        wait_until(lambda: net.events.emit("progress", phase="probe", done=0, total=1) or stalled.recv(0.001))
        while stalled.recv(0) is not None:  # the probes that got through: from here on it reads nothing
            pass
        before = (publisher.published, net.events.dropped)
        for _ in range(5):
            net.refresh_peers()  # emits its command and progress events while the subscriber is stalled
        net.net_status()
        for _ in range(40):
            net.events.emit("progress", phase="filler", done=0, total=1)
        emitted = publisher.published + net.events.dropped - sum(before)
        assert net.events.dropped > 0 and net.stats()["events"]["dropped"] == net.events.dropped
        queued = 0
        while stalled.recv(0) is not None:
            queued += 1
        assert queued + net.events.dropped - before[1] == emitted  # nothing lost without being counted
    finally:
        stalled.close()
        publisher.close()
        ctx.term()


class Output:
    """What a process prints, read without waiting: straight from the pipe's fd, since a buffered reader would keep
    lines that select() then no longer announces."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self._fd = proc.stdout.fileno()
        self._data = b""

    def read(self) -> bool:
        """Take what has arrived; True if anything did."""
        came = False
        while select.select([self._fd], [], [], 0)[0]:
            chunk = os.read(self._fd, 1 << 16)
            if not chunk:
                break
            self._data += chunk
            came = True
        return came

    @property
    def lines(self) -> list[str]:
        """The complete lines so far."""
        return self._data.decode().splitlines()[:self._data.count(b"\n")]

    def has(self, predicate) -> bool:
        """Take what has arrived; whether the lines so far satisfy ``predicate``."""
        self.read()
        return predicate(self.lines)


def test_events_command_in_another_process_sees_what_record_wrote(make_network, tmp_path):
    net = make_network()
    path = str(tmp_path / "events.jsonl")
    recorder = Recorder(path).attach(net.events)
    publisher = Publisher("tcp://127.0.0.1:0", hwm=100_000).attach(net.events)
    proc = subprocess.Popen([sys.executable, "-m", "p2pzmq", "events", "--events", publisher.endpoint],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=ENV)
    output = Output(proc)
    try:
        # Until it has subscribed (ZeroMQ's slow joiner), what it misses is only probes.
        wait_until(lambda: net.events.emit("progress", phase="probe", done=0, total=1) or output.has(bool),
                   timeout=60, interval=0.05)
        _session(net)
        net.events.emit("progress", phase="end", done=1, total=1)
        wait_until(lambda: output.has(lambda lines: lines and '"phase":"end"' in lines[-1]), timeout=60)
        proc.send_signal(signal.SIGINT)
        rest, stderr = proc.communicate(timeout=30)
        stderr = stderr.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        publisher.close()
        recorder.close()
    assert proc.returncode == cli.EXIT_INTERRUPTED and stderr.strip().endswith("Aborted!")
    with open(path) as recorded:
        written = recorded.read().splitlines()
    seen = output.lines + rest.decode().splitlines()
    assert written[-len(seen):] == seen
    assert len({json.loads(line)["type"] for line in seen}) == len(events.TYPES) - 1  # all but partition


def test_events_command_filters_by_type_and_stops_after_count(make_network, capsys):
    net = make_network(3)
    publisher = Publisher("tcp://127.0.0.1:0", hwm=1000).attach(net.events)
    try:
        watcher = gevent.spawn(cli.main, ["events", "--events", publisher.endpoint, "--type", "status", "lookup",
                                          "--count", "2", "--timeout", "30"])

        def two_seen() -> bool:
            net.net_status()
            return watcher.ready()
        wait_until(two_seen, timeout=30)
        assert watcher.get() == cli.EXIT_OK
    finally:
        publisher.close()
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [event["type"] for event in printed] == ["status", "status"]


def test_subscriber_drops_and_counts_messages_that_are_no_events(capsys):
    ctx = Context(max_sockets=16)
    pub = ctx.pub(100)
    endpoint = pub.bind("tcp://127.0.0.1:0")
    try:
        with Subscriber(endpoint) as stream:
            wait_until(lambda: pub.publish(b"garbage") and (stream.next(0.001) or stream.bad))
            pub.publish(b'{"v": 1, "t": 0, "type": "nope"}')
            pub.publish(events.encode(PARTITION))
            event, raw = stream.next(10)
            assert event == PARTITION and raw == events.encode(PARTITION) and stream.bad >= 2
    finally:
        pub.close()
        ctx.term()


# -- bad input ---------------------------------------------------------------------------------------------------


def _fails(argv, code, capsys, words):
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and words in err, err


def test_record_to_an_unwritable_path_is_a_usage_error_before_anything_is_built(capsys, tmp_path):
    _fails(["run", "-n", "2", "--record", str(tmp_path / "no" / "such.jsonl")], cli.EXIT_USAGE, capsys,
           "cannot record events")
    _fails(["run", "-n", "2", "--record", str(tmp_path)], cli.EXIT_USAGE, capsys, "Is a directory")


def test_run_record_writes_the_session(tmp_path, capsys):
    path = str(tmp_path / "run.jsonl")
    assert cli.main(["run", "-n", "5", "--seed", "1", "--record", path, "net_status"]) == cli.EXIT_OK
    with open(path) as recorded:
        written = [json.loads(line) for line in recorded]
    assert [problem for event in written for problem in problems(event)] == []
    assert [(e["name"], e["phase"]) for e in written if e["type"] == "command"] == [
        ("create", "started"), ("create", "finished"), ("net_status", "started"), ("net_status", "finished")]
    assert sum(e["type"] == "joined" for e in written) == 5


def test_serve_events_on_a_busy_port_or_a_bad_endpoint_is_a_usage_error(capsys):
    publisher = Publisher("tcp://127.0.0.1:0", hwm=10)
    try:
        _fails(["serve", "-n", "2", "--control", "tcp://127.0.0.1:0", "--events", publisher.endpoint],
               cli.EXIT_USAGE, capsys, "Address already in use")
    finally:
        publisher.close()
    _fails(["serve", "--events", "nowhere"], cli.EXIT_USAGE, capsys, "not an endpoint")
    _fails(["serve", "--events", "tcp://10.1.2.3:0"], cli.EXIT_USAGE, capsys, "not loopback")


@pytest.mark.parametrize("argv, code, words", [
    (["events"], cli.EXIT_USAGE, "--events"),
    (["events", "--events", "tcp://127.0.0.1:0"], cli.EXIT_USAGE, "port 0"),
    (["events", "--events", "tcp://127.0.0.1:1", "--type", "nope"], cli.EXIT_USAGE, "invalid choice"),
    (["events", "--events", "tcp://127.0.0.1:1", "--count", "0"], cli.EXIT_USAGE, "at least 1"),
    (["events", "--events", "tcp://127.0.0.1:1", "--timeout", "-1"], cli.EXIT_USAGE, "positive"),
    (["events", "--events", "tcp://127.0.0.1:1", "--timeout", "0.2"], cli.EXIT_NO_SUPERVISOR, "no event arrived"),
])
def test_events_command_bad_input(argv, code, words, capsys):
    _fails(argv, code, capsys, words)


def test_events_command_refuses_a_host_that_does_not_resolve(capsys, monkeypatch):
    def unresolvable(host, *args, **kwargs):  # the test asks no name server (loopback only)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)
    _fails(["events", "--events", "tcp://nosuchhost.invalid:5"], cli.EXIT_USAGE, capsys, "cannot resolve")


def test_publisher_bind_failure_leaves_nothing_open():
    ctx = Context(max_sockets=16)
    try:
        with pytest.raises(TransportError):
            Publisher("inproc://", hwm=10, ctx=ctx)
        assert ctx.term() == 0
    finally:
        ctx.term()


def test_recorder_refuses_a_nul_in_the_path():
    with pytest.raises(UsageError):
        Recorder("bad\0path")
    assert not os.path.exists("bad")


def test_events_bench_quick_measures_every_way_in_one_run(tmp_path):
    figures_path = tmp_path / "events.json"
    tool = os.path.join(ENV["PYTHONPATH"], "tools", "events_bench.py")
    done = subprocess.run([sys.executable, tool, "--quick", "--json", str(figures_path)],
                          capture_output=True, text=True, timeout=120, env=ENV, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert "goal: a PUB nobody reads" in done.stdout
    figures = json.loads(figures_path.read_text())
    assert set(figures["ways"]) == {"off", "pub", "record"}
    assert figures["ways"]["off"]["events"] == 0 and figures["ways"]["pub"]["events"] > 64


def test_docs_list_every_type_and_field_of_the_schema():
    with open(os.path.join(ENV["PYTHONPATH"], "docs", "EVENTS.md")) as doc:
        rows = {line.split("|")[1].strip().strip("`"): line.split("|")[2] for line in doc
                if line.startswith("| `")}
    for kind, fields in events.SCHEMA.items():
        assert kind in rows, kind
        assert all(f"`{name}`" in rows[kind] for name in fields), (kind, rows[kind])
