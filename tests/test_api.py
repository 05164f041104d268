"""The Python API (``Network(n, **config)`` with a method per control command), --json output, progress bars only
on a terminal, and the examples, run as a user would run them."""
import io
import json
import os
import subprocess
import sys

import pytest

from conftest import live_greenlets
from p2pzmq import Config, Network, UsageError, cli, commands, control
from p2pzmq.timeline import untimed

pytestmark = pytest.mark.timeout(120)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_network_takes_a_size_and_config_keywords(tmp_path):
    with Network(4, seed=1, metric="xor") as net:
        assert len(net.peers) == 4 and net.config == Config(seed=1, metric="xor")
        assert net.ping() == {"n": 4}
    assert net.closed and net.sockets_left_open == 0
    with Network(Config(seed=1), metric="xor", max_hops=5) as net:
        assert net.config == Config(seed=1, metric="xor", max_hops=5) and net.peers == []
    with Network(Config(seed=7)) as old_style:
        assert untimed(old_style.create(2)) == {"n": 2, "created": 2}
    before = len(live_greenlets())
    with pytest.raises(UsageError):
        Network(0, seed=1)  # a failed creation stops what it started
    assert len(live_greenlets()) <= before


def test_every_control_command_is_a_method_returning_the_same_data(make_network, tmp_path):
    net = make_network(6, seed=4)
    # ``peers`` is the one exception: ``Network.peers`` is the list of Peer objects, the command is ``peer_list()``.
    assert all(callable(getattr(net, "peer_list" if name == "peers" else name, None)) for name in commands.COMMANDS)
    a, b = str(net.peers[0].id), str(net.peers[-1].id)
    for request, direct in [
        ({"cmd": "ping"}, net.ping),
        ({"cmd": "net_status"}, net.net_status),
        ({"cmd": "lookup", "from": a, "id": b}, lambda: net.lookup(a, b)),
        ({"cmd": "output_graph", "path": str(tmp_path / "g.json"), "format": "json"},
         lambda: net.output_graph(str(tmp_path / "g.json"), "json")),
    ]:
        reply, _ = control.handle(net, json.dumps(request).encode())
        assert untimed(reply) == {"ok": True, "result": untimed(direct())}


def test_json_output_of_run_parses(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "-n", "5", "--seed", "2", "--json", "lookup", "1", "2"]) == 1  # found at run time
    assert capsys.readouterr().err == "p2p-network: lookup: no peer has id 1\n"
    assert cli.main(["run", "-n", "5", "--seed", "2", "--json", "net_status"]) == 0
    status = json.loads(capsys.readouterr().out)["result"]
    a, b = status["peers"][0]["id"], status["peers"][-1]["id"]
    assert cli.main(["run", "-n", "5", "--seed", "2", "--json", "lookup", a, b, "output_graph", "x.dot",
                     "format=dot"]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["cmd"] for r in results] == ["lookup", "output_graph"]
    assert results[0]["result"]["route"]["path"][0] == a and results[1]["result"]["format"] == "dot"


def test_console_lines_of_the_new_commands(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Network(5, seed=2) as net:
        a, b = str(net.peers[0].id), str(net.peers[-1].id)
    assert cli.main(["run", "-n", "5", "--seed", "2", "lookup", a, b, "output_graph", "n.gexf", "format=gexf"]) == 0
    route, walk, written = capsys.readouterr().out.splitlines()
    assert route.startswith(f"Route from {a} to {b} reached in ") and route.endswith(f" -> {b}")
    assert walk.startswith(f"Walk from {a} finds the target after ")
    assert written == f"Writing network structure to {tmp_path / 'n.gexf'}"


def test_ctl_takes_required_arguments_positionally_or_as_key_value_typed_by_the_registry():
    assert commands.parse_request("time_lapse", ["3", "format=dot", "status=true"]) == \
        {"cmd": "time_lapse", "steps": 3, "directory": ".", "format": "dot", "status": True}
    assert commands.parse_request("time_lapse", ["format=dot", "3"]) == commands.parse_request(
        "time_lapse", ["steps=3", "format=dot"])
    assert commands.parse_request("lookup", ["from=1", "id=2"]) == {"cmd": "lookup", "from": "1", "id": "2"}
    assert commands.parse_request("newer", ["a=1", "b=x"]) == {"cmd": "newer", "a": 1, "b": "x"}  # unknown: JSON
    for bad in ([], ["3", "status=maybe"], ["3", "colour=red"], ["3", "4"], ["3", "steps=4"]):
        with pytest.raises(UsageError):
            commands.parse_request("time_lapse", bad)


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("as_json", [False, True])
def test_progress_bars_only_on_a_terminal_without_json(capsys, monkeypatch, tmp_path, as_json):
    monkeypatch.chdir(tmp_path)
    argv = ["run", "-n", "24", "--seed", "1", *(["--json"] if as_json else []), "net_status", "time_lapse", "1"]
    assert cli.main(argv) == 0
    assert capsys.readouterr().err == ""  # pytest's captured stderr is not a terminal
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli.main(argv) == 0
    drawn = terminal.getvalue()
    if as_json:
        assert drawn == ""
    else:
        assert all(f"{phase}:" in drawn for phase in ("create", "net_status", "time_lapse", "refresh"))
    assert "%|" not in capsys.readouterr().out  # bars never reach stdout


def test_the_console_script_draws_no_bars_into_a_pipe(tmp_path):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "bin", "p2p-network"), "run", "-n", "12", "--seed", "1",
                           "net_status", "time_lapse", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.splitlines()[-1] == "Doing 1 step time-lapse"


def test_a_network_reports_progress_to_its_hook():
    seen = []
    with Network(5, seed=1, progress=lambda *report: seen.append(report)) as net:
        net.refresh_peers()
        net.net_status()
    assert [r for r in seen if r[0] == "create"] == [("create", done, 5) for done in range(1, 6)]
    assert [r for r in seen if r[0] == "refresh"] == [("refresh", done, 5) for done in range(1, 6)]
    assert seen[-1] == ("net_status", 9, 9)


@pytest.mark.parametrize("script, args, expect", [
    ("quickstart.py", ["{tmp}"], "Wrote 16 peers"),
    ("control_socket.py", [], "{'stopping': True}"),
    ("pictures.py", ["--out", "{tmp}", "--small", "8", "--large", "70", "--lapse-peers", "8", "--steps", "1"],
     "time-lapse.png"),
])
def test_examples_run(tmp_path, script, args, expect):
    env = {**os.environ, "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", script),
                           *(arg.format(tmp=tmp_path) for arg in args)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    assert expect in done.stdout and done.stderr == ""


def test_ctl_json_prints_the_raw_reply(capsys, make_network):
    net = make_network(5, seed=6)
    server = control.ControlServer(net, "tcp://127.0.0.1:0").start()
    try:
        a, b = str(net.peers[0].id), str(net.peers[-1].id)
        assert cli.main(["ctl", "--control", server.endpoint, "--json", "lookup", a, b]) == 0
        out, err = capsys.readouterr()
        assert untimed(json.loads(out)) == {"ok": True, "result": untimed(net.lookup(a, b))} and err == ""
        assert cli.main(["ctl", "--control", server.endpoint, "--json", "output_graph", "x", "format=svg"]) == 2
        assert capsys.readouterr().out == ""  # refused before anything was sent
        assert cli.main(["ctl", "--control", server.endpoint, "--json", "lookup", "1", b]) == 1
        assert json.loads(capsys.readouterr().out)["ok"] is False
    finally:
        server.stop()
