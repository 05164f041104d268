"""Every failure a user can cause ends in one line on stderr, the documented exit code (README.md) and nothing stuck.

One table per way in: the command line in-process (``cli.main``), ``ctl`` against a ``serve`` process, the raw
control socket (plain pyzmq REQ, as another language would use it), and processes sent signals. Every case asserts
the exit code (or an error reply), exactly one stderr line and no traceback; every control case also asserts that
the supervisor still answers ``ping`` afterwards. The supervisor runs without matplotlib (a ``sitecustomize`` that
hides it), so ``output_png`` must answer with the install hint.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

import gevent
import pytest
import zmq
from conftest import wait_until
from test_control import LAUNCHER, ROOT, Served

from p2pzmq import cli, commands, control, plot, security
from p2pzmq.events import Events

pytestmark = pytest.mark.timeout(60)

TOO_BIG = str(2 ** 160)  # one past the largest id
HIDE_MATPLOTLIB = """import sys
class _Hidden:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "matplotlib":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Hidden())
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def one_line(err: str) -> str:
    assert len(err.splitlines()) == 1 and err.endswith("\n") and "Traceback" not in err, err
    return err


class Supervisor(Served):
    """``p2p-network serve`` of 6 peers in a process of its own, without matplotlib, on a random port."""

    def __init__(self, directory, hide: str) -> None:
        super().__init__("-n", "6", "--seed", "1", cwd=directory,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([hide, ROOT])})
        self.ids = [peer["id"] for peer in self.ask({"cmd": "peers"})["result"]["peers"]]


def ready_line(proc, marker: str, timeout: float = 30) -> str:
    """The first stdout line of ``proc`` that holds ``marker`` (the process says it is ready; never slept for)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if select.select([proc.stdout], [], [], 0.2)[0]:
            line = proc.stdout.readline()
            if marker in line:
                return line
    pytest.fail(f"no {marker!r} from {proc.args}: {proc.poll()}")


@pytest.fixture(scope="module")
def hidden(tmp_path_factory):
    """A directory whose sitecustomize hides matplotlib from a Python process that has it on its path."""
    directory = tmp_path_factory.mktemp("no-matplotlib")
    (directory / "sitecustomize.py").write_text(HIDE_MATPLOTLIB)
    return str(directory)


@pytest.fixture(scope="module")
def supervisor(tmp_path_factory, hidden):
    served = Supervisor(tmp_path_factory.mktemp("served"), hidden)
    yield served
    try:
        assert served.ask({"cmd": "die"})["ok"] and served.proc.wait(15) == 0
        assert served.proc.stderr.read() == ""  # nothing the clients sent made it log or print anything
    finally:
        served.close()


@pytest.fixture
def files(tmp_path):
    """Paths the cases refer to as {name}: a TGF file, junk, a plain file, keys, a busy and a closed port."""
    listener = socket.create_server(("127.0.0.1", 0))
    (tmp_path / "good.tgf").write_text("1 5\n#\n1 1\n")
    (tmp_path / "junk.tgf").write_text("this is not TGF\n")
    (tmp_path / "plain").write_text("a file, not a directory\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "lapse").mkdir()
    (tmp_path / "lapse" / "time-lapse.json").write_text('{"n": 2, "metric": "tree", "steps": [1, 2]}')
    security.generate(str(tmp_path / "keys"))
    yield {"tmp": str(tmp_path), "busy": listener.getsockname()[1], "closed": free_port()}
    listener.close()


# (argv, exit code, a piece of the error line); {name} is filled from the ``files`` fixture.
COMMAND_LINE = [
    (["run", "-n", "0"], 2, "-n: must be an integer of at least 1"),
    (["run", "-n", "many"], 2, "-n"),
    (["run", "--seed", "1.5"], 2, "--seed"),
    (["run", "--refresh-interval", "nan"], 2, "not a duration"),
    (["run", "--client-timeout", "soon"], 2, "not a duration"),
    (["run", "--client-timeout", "0"], 2, "client_timeout must be positive"),
    (["serve", "--evict-after", "-1"], 2, "--evict-after"),
    (["run", "--pace=-1s"], 2, "not a duration"),
    (["run", "--join-concurrency", "0"], 2, "at least 1"),
    (["run", "--workers", "-1"], 2, "at least 0"),
    (["serve", "-n", "4", "--workers", "5"], 2, "more than the 4 peers"),
    (["run", "--host", "tcp://127.0.0.1"], 2, "not an IP address or host name"),
    (["run", "--metric", "euclid"], 2, "invalid choice"),
    (["run", "-n", "2", "lookup", "1", TOO_BIG], 2, "below 2**160"),
    (["run", "-n", "2", "lookup", "-5", "1"], 2, "from must be a peer id"),
    (["run", "-n", "2", "lookup", "1", "\u0663"], 2, "id must be a peer id"),  # an Arabic-Indic digit
    (["run", "-n", "2", "lookup", "1"], 2, "lookup needs ID"),
    (["run", "-n", "2", "kill_peers", "ids=1,x"], 2, "peer id"),
    (["run", "-n", "2", "kill_peers", "count=1", "ids=1"], 2, "either count"),
    (["run", "-n", "2", "leave_peers", "ids=[1, 1]"], 2, "lists a peer twice"),
    (["run", "-n", "2", "churn", "join_rate=1", "leave_rate=-1", "duration=1"], 2, "must not be negative"),
    (["run", "-n", "2", "churn", "1", "1", "inf"], 2, "finite"),
    (["run", "-n", "2", "churn", "1", "1", "1e9"], 2, "at most a week"),
    (["run", "-n", "2", "churn", "1", "1", "5", "crash_fraction=2"], 2, "between 0 and 1"),
    (["run", "-n", "2", "add_peers", "0"], 2, "at least 1"),
    (["run", "-n", "2", "time_lapse", "1.5"], 2, "steps must be an integer"),
    (["run", "-n", "2", "time_lapse", "1", "status=maybe"], 2, "true or false"),
    (["run", "-n", "2", "net_status", "sample=99999999999999999999999"], 2, "out of range"),
    (["run", "-n", "2", "net_status", "routing=psychic"], 2, "routing must be one of"),
    (["run", "-n", "2", "output_png", "x.svg"], 2, "writes .png files, not .svg"),
    (["run", "-n", "2", "output_png", ""], 2, "must be a path"),
    (["run", "-n", "2", "output_png", "a.png", "width=50"], 2, "from 100 to 10000"),
    (["run", "-n", "2", "output_graph", "net.graphml", "format=gexf"], 2, "format=gexf"),
    (["run", "-n", "2", "output_graph", "format=graphml"], 2, "output_graph needs PATH"),
    (["run", "-n", "2", "output_graph", "a.tgf", "path=b.tgf"], 2, "path is given twice"),
    (["run", "-n", "2", "output_tgf", "net.dot"], 2, "not .dot"),
    (["run", "-n", "2", "output_tgf", "{tmp}/"], 2, "names a directory"),
    (["run", "-n", "2", "die"], 2, "unknown command 'die'"),
    (["run", "-n", "2", "net_status", "sample=1", "sample=2"], 2, "given twice"),
    (["run", "-n", "2", "output_tgf", "{tmp}/missing/x.tgf"], 1, "cannot write"),  # found at run time
    (["run", "-n", "2", "lookup", "1", "2"], 1, "no peer has id 1"),
    (["run", "-n", "2", "kill_peers", "count=5"], 1, "between 0 and 2"),
    (["run", "-n", "2", "--sample", "3", "net_status"], 1, "to 2 (the number of peers)"),
    (["serve", "--control", "tcp://127.0.0.1:99999"], 2, "from 0 to 65535"),
    (["serve", "--control", "udp://127.0.0.1:1"], 2, "not an endpoint"),
    (["serve", "--control", "inproc://ctl"], 2, "inproc"),
    (["serve", "--control", "tcp://0.0.0.0:0"], 2, "--insecure"),
    (["serve", "--curve-dir", "{tmp}/empty"], 2, "cannot read"),
    (["serve", "-n", "3000", "--control", "tcp://127.0.0.1:{busy}"], 1, "cannot bind"),  # before the build
    (["worker", "--supervisor", "inproc://ctl"], 2, "inproc"),
    (["worker", "--supervisor", "tcp://127.0.0.1:0"], 2, "port 0"),
    (["worker", "--supervisor", "tcp://*:5555"], 2, "wildcard"),
    (["worker", "-n", "3"], 2, "-n needs --supervisor"),
    (["worker", "--timeout", "0"], 2, "positive number of seconds"),
    (["worker", "--host", "198.18.0.1"], 2, "--insecure"),
    (["worker", "--timeout", "0.3"], 3, "no word from a supervisor"),
    (["worker", "--supervisor", "tcp://127.0.0.1:{closed}", "-n", "1", "--timeout", "0.3"], 3, "no supervisor"),
    (["keys", "--curve-dir", "/proc/nokeys"], 1, "cannot write keys"),
    (["keys", "--curve-dir", "{tmp}/plain"], 2, "is a file"),
    (["keys", "--curve-dir", "{tmp}/keys"], 2, "already holds keys"),
    (["keys"], 2, "--curve-dir"),
    (["plot", "{tmp}/missing.tgf", "-o", "x.png"], 2, "cannot read"),
    (["plot", "{tmp}/junk.tgf", "-o", "x.png"], 2, "not a graph"),
    (["plot", "{tmp}/good.tgf", "-o", "{tmp}/x.svg"], 2, "not .svg"),
    (["plot", "{tmp}/good.tgf", "-o", "x.png", "--width", "50"], 2, "from 100 to 10000"),
    (["plot", "--time-lapse", "{tmp}/empty", "-o", "x.png"], 2, "no time-lapse files"),
    (["plot", "--time-lapse", "{tmp}/lapse", "-o", "x.png"], 2, "not a time-lapse step"),
    (["plot", "{tmp}/good.tgf", "-o", "{tmp}/missing/x.png"], 1, "cannot write"),
    (["frobnicate"], 2, "invalid choice"),
]


@pytest.mark.parametrize("argv, code, says", COMMAND_LINE, ids=[" ".join(case[0])[:60] for case in COMMAND_LINE])
def test_the_command_line(capsys, files, argv, code, says):
    started = time.monotonic()
    assert cli.main([word.format(**files) for word in argv]) == code
    err = one_line(capsys.readouterr().err)
    assert says.format(**files) in err
    assert time.monotonic() - started < 5  # nothing waited for long: e.g. serve binds before it builds


@pytest.mark.parametrize("argv", [["run", "-n", "2", "output_png", "net.png"], ["plot", "{tmp}/good.tgf", "-o",
                                                                               "{tmp}/x.png"]])
def test_without_matplotlib_the_install_hint_before_any_work(capsys, files, monkeypatch, argv):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert cli.main([word.format(**files) for word in argv]) == 1
    assert one_line(capsys.readouterr().err) == f"p2p-network: {plot.INSTALL_HINT}\n"


# (ctl's words, exit code, a piece of the error line); {id} is a peer of the supervisor.
CTL = [
    ([], 2, "ctl needs a COMMAND"),
    (["--timeout", "abc", "ping"], 2, "positive number of seconds, not 'abc'"),
    (["--timeout", "nan", "ping"], 2, "positive number of seconds"),
    (["--control", "tcp://127.0.0.1:99999", "ping"], 2, "from 1 to 65535"),
    (["--control", "ftp://127.0.0.1:21", "ping"], 2, "not an endpoint"),
    (["--control", "tcp://127.0.0.1:{closed}", "--timeout", "0.3", "ping"], 3, "no supervisor answered"),
    (["lookup", "{id}", TOO_BIG], 2, "below 2**160"),
    (["lookup", "from=1.5", "id={id}"], 2, "from must be a peer id"),
    (["lookup", "1", "{id}"], 1, "no peer has id 1"),  # the supervisor's error reply
    (["kill_peers", "ids=[[1]]"], 2, "peer ids as decimal strings"),
    (["kill_peers", "ids={id},{id}"], 2, "twice"),
    (["output_png", "net.png"], 1, plot.INSTALL_HINT),  # the supervisor has no matplotlib
    (["output_tgf", "{tmp}/missing/x.tgf"], 1, "cannot write"),
    (["time_lapse", "steps=-1"], 2, "at least 0"),
    (["net_status", "sample=100"], 1, "(the number of peers)"),
    (["churn", "1", "1", "0"], 2, "positive"),
    (["add_peers", "0"], 2, "at least 1"),
    (["ping", "extra=1"], 2, "ping takes no argument"),
    (["bogus"], 1, "unknown command 'bogus'"),  # maybe a newer supervisor's: asked, refused
    (["progress"], 1, "nothing is running"),  # no long command runs between the cases
    (["cancel"], 1, "nothing to cancel"),
    (["cancel", "now"], 2, "cancel takes no argument"),
    (["bogus", "positional"], 2, "key=value"),
]


@pytest.mark.parametrize("words, code, says", CTL, ids=[" ".join(case[0])[:60] for case in CTL])
def test_ctl(capsys, supervisor, files, words, code, says):
    fill = {**files, "id": supervisor.ids[0]}
    argv = ["ctl", "--control", supervisor.endpoint, *(word.format(**fill) for word in words)]
    if words[:1] == ["--control"]:
        argv = ["ctl", *(word.format(**fill) for word in words)]
    started = time.monotonic()
    assert cli.main(argv) == code
    assert says.format(**fill) in one_line(capsys.readouterr().err)
    assert time.monotonic() - started < 5  # an impossible endpoint is refused at once, not after --timeout
    assert supervisor.ask({"cmd": "ping"}) == {"ok": True, "result": {"n": 6}}


def test_a_worker_refused_by_its_supervisor(capsys, supervisor):
    """The supervisor runs its peers inproc, so it cannot take on workers: its error reply, in one line."""
    assert cli.main(["worker", "--supervisor", supervisor.endpoint, "-n", "1", "--timeout", "10"]) == 1
    assert "workers need --transport tcp" in one_line(capsys.readouterr().err)
    assert supervisor.ask({"cmd": "ping"}) == {"ok": True, "result": {"n": 6}}


RAW = [
    b"\xff\xfe{}",  # not UTF-8
    '{"cmd": "ping"}'.encode("utf-16"),  # JSON, but not UTF-8
    b"[1, 2]",
    b"",
    b'{"cmd": 5}',
    b'{"cmd": "net_status", "sample": NaN}',
    b'{"cmd": "churn", "join_rate": Infinity, "leave_rate": 1, "duration": 1}',
    b'{"cmd": "add_peers", "n": 1' + b"0" * 30 + b"}",  # beyond 64 bits
    b'{"cmd": "add_peers", "n": 1' + b"0" * 5000 + b"}",  # beyond what int() reads from text
    b'{"cmd": "time_lapse", "steps": 1e400}',  # an infinite float
    b"[" * 100_000 + b"]" * 100_000,  # deeper than the JSON reader's recursion
    {"cmd": "lookup", "from": 1, "id": 2},
    {"cmd": "lookup", "from": "1" * 60, "id": "2"},
    {"cmd": "ping", "extra": 1},
    {"cmd": "output_graph", "path": "a\u0000b.tgf"},
    {"cmd": "output_tgf", "path": "\ud800.tgf"},  # a lone surrogate: no file system can encode it
    {"cmd": "output_png", "path": "x.png", "width": True},
    {"cmd": "kill_peers", "ids": [None]},
    {"cmd": "kill_peers", "count": None},
    {"cmd": "attach", "endpoint": "tcp://nowhere:0"},
    {"cmd": "x" * 100_000},
    {"cmd": "ping", **{f"k{index}": index for index in range(10_000)}},
    b'{"cmd": "ping", "pad": "' + b"x" * (5 << 20) + b'"}',  # over the 4 MiB a request may hold
    {"cmd": "progress"},  # nothing is running
    {"cmd": "cancel"},  # nothing to cancel
    {"cmd": "progress", "of": "refresh_peers"},
]


@pytest.mark.parametrize("request_", RAW, ids=[repr(case)[:40] for case in RAW])
def test_raw_control_socket(supervisor, request_):
    if isinstance(request_, dict):
        request_ = json.dumps(request_).encode()  # ensure_ascii: the surrogate travels as \ud800
    reply = supervisor.ask(request_)
    assert reply["ok"] is False and isinstance(reply["error"], str) and "\n" not in reply["error"]
    assert 0 < len(reply["error"]) < 1000
    assert supervisor.ask({"cmd": "ping"}) == {"ok": True, "result": {"n": 6}}


def test_raw_control_socket_multipart_request(supervisor):
    sock = supervisor.ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(supervisor.endpoint)
    try:
        sock.send_multipart([b'{"cmd": "ping"}', b"second frame"])
        assert sock.poll(20000), "no reply"
        reply = json.loads(sock.recv())
    finally:
        sock.close(0)
    assert reply["ok"] is False and "not UTF-8 JSON" in reply["error"]
    assert supervisor.ask({"cmd": "ping"}) == {"ok": True, "result": {"n": 6}}


@pytest.mark.parametrize("error", [ValueError("bad"), KeyError("gone"), RecursionError(), MemoryError(),
                                   ZeroDivisionError(), gevent.Timeout(1)])
def test_a_handler_raising_anything_costs_one_error_reply(monkeypatch, error):
    class Broken:
        events = Events()

        def ping(self):
            raise error

    reply, stop = control.handle(Broken(), b'{"cmd": "ping"}')
    assert reply["ok"] is False and reply["error"].startswith("internal error in ping") and not stop


@pytest.mark.parametrize("result", [{"nan": float("nan")}, {"bytes": b"\x00"}, {"set": {1}}, {(1, 2): "a key"}],
                         ids=["nan", "bytes", "set", "tuple key"])
def test_a_result_json_cannot_hold_costs_one_error_reply(make_network, monkeypatch, result):
    net = make_network(2)
    server = control.ControlServer(net, "tcp://127.0.0.1:0").start()
    try:
        with control.ControlClient(server.endpoint, timeout=10) as client:
            monkeypatch.setattr(net, "ping", lambda: result)
            reply = client.request({"cmd": "ping"})
            assert reply["ok"] is False and reply["error"].startswith("internal error: the reply is not JSON")
            monkeypatch.undo()
            assert client.call("ping") == {"n": 2}  # the server greenlet goes on
    finally:
        server.stop()


def test_ctl_types_arguments_by_the_registry_and_resolves_paths_here(capsys, supervisor, tmp_path, monkeypatch):
    a, b = supervisor.ids[0], supervisor.ids[-1]
    assert cli.main(["ctl", "--control", supervisor.endpoint, "--json", "lookup", f"from={a}", f"id={b}"]) == 0
    assert json.loads(capsys.readouterr().out)["result"]["route"]["path"][0] == a
    monkeypatch.chdir(tmp_path)  # not the supervisor's directory: a loopback supervisor writes here
    assert cli.main(["ctl", "--control", supervisor.endpoint, "output_graph", "net", "format=graphml"]) == 0
    assert capsys.readouterr().out == f"Writing network structure to {tmp_path / 'net.graphml'}\n"
    assert cli.main(["ctl", "--control", supervisor.endpoint, "time_lapse", "1", "directory=lapse"]) == 1
    assert "lapse/time-lapse-1.tgf" in one_line(capsys.readouterr().err)  # no such directory here
    (tmp_path / "lapse").mkdir()
    assert cli.main(["ctl", "--control", supervisor.endpoint, "--json", "time_lapse", "1", "directory=lapse"]) == 0
    assert json.loads(capsys.readouterr().out)["result"]["files"] == [str(tmp_path / "lapse" / "time-lapse-1.tgf")]


def test_run_and_ctl_take_the_same_words(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    words = ["churn", "join_rate=0", "leave_rate=0", "duration=0.1", "wait=true", "output_graph", "net.graphml"]
    assert cli.main(["run", "-n", "3", "--seed", "1", "--json", *words]) == 0
    results = [json.loads(line)["result"] for line in capsys.readouterr().out.splitlines()]
    assert results[0]["joined"] == 0 and results[1]["format"] == "graphml"
    assert (tmp_path / "net.graphml").read_text().startswith("<?xml")  # GraphML, not TGF
    given = {key: value for key, value in commands.parse_session(words)[0][1].items() if value is not None}
    assert commands.parse_request("churn", words[1:5]) == {"cmd": "churn", **given}


# -- signals and real processes ------------------------------------------------------------------------------


def start(argv, cwd, **options):
    return subprocess.Popen([sys.executable, LAUNCHER, *argv], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options)


def finish(proc, code: int) -> str:
    """Wait for ``proc`` to exit with ``code``; its stderr."""
    try:
        assert proc.wait(20) == code
        return proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize("argv, ready, signum, code", [
    (["serve", "-n", "4", "--control", "tcp://127.0.0.1:0"], "listening on", signal.SIGINT, 130),
    (["serve", "-n", "4", "--control", "tcp://127.0.0.1:0"], "listening on", signal.SIGTERM, 0),
    (["worker", "--timeout", "30"], "Worker listening on", signal.SIGINT, 130),
    (["worker", "--timeout", "30"], "Worker listening on", signal.SIGTERM, 0),
])
def test_serve_and_worker_stop_on_signals(tmp_path, argv, ready, signum, code):
    proc = start(argv, tmp_path)
    ready_line(proc, ready)
    proc.send_signal(signum)
    err = finish(proc, code)
    assert err == ("p2p-network: Aborted!\n" if code else "")


def test_ctrl_c_at_a_terminal_stops_serve_and_its_workers_with_one_line(tmp_path):
    """Ctrl-C reaches the whole foreground process group; the workers must leave the stopping to serve."""
    import psutil

    proc = start(["serve", "-n", "4", "--workers", "2", "--control", "tcp://127.0.0.1:0"], tmp_path,
                 start_new_session=True)
    ready_line(proc, "listening on")
    workers = psutil.Process(proc.pid).children()
    assert len(workers) == 2
    os.killpg(proc.pid, signal.SIGINT)
    assert finish(proc, 130) == "p2p-network: Aborted!\n"
    psutil.wait_procs(workers, timeout=10)
    assert not [child for child in workers if child.is_running()]


def test_ctrl_c_while_run_builds(tmp_path):
    """SIGINT reaches run in the middle of creating peers: no greenlet traceback, and the network is stopped."""
    proc = start(["run", "-n", "5000", "net_status"], tmp_path)
    wait_until(lambda: len(os.listdir(f"/proc/{proc.pid}/fd")) > 400, timeout=30)  # 200 peers made so far
    proc.send_signal(signal.SIGINT)
    assert finish(proc, 130) == "p2p-network: Aborted!\n"


def test_ctrl_c_while_ctl_waits_for_a_reply(tmp_path):
    ctx = zmq.Context()
    mute = ctx.socket(zmq.REP)  # takes the request and never answers
    mute.setsockopt(zmq.LINGER, 0)
    port = mute.bind_to_random_port("tcp://127.0.0.1")
    try:
        proc = start(["ctl", "--control", f"tcp://127.0.0.1:{port}", "--timeout", "30", "ping"], tmp_path)
        assert mute.poll(20000), "ctl sent nothing"
        assert json.loads(mute.recv()) == {"cmd": "ping"}
        proc.send_signal(signal.SIGINT)
        assert finish(proc, 130) == "p2p-network: Aborted!\n"
    finally:
        mute.close(0)
        ctx.term()
