"""The control socket from outside: ``serve`` as a subprocess, driven by a plain pyzmq REQ socket sending JSON."""
import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest
import zmq
from hangs import end_process
from p2pzmq.timeline import untimed

pytestmark = pytest.mark.timeout(120)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(ROOT, "bin", "p2p-network")


class Served:
    """``p2p-network serve`` on a random port; the endpoint is read from its ready line (no fixed ports)."""

    def __init__(self, *args, cwd, env=None):
        self.proc = subprocess.Popen([sys.executable, LAUNCHER, "serve", "--control", "tcp://127.0.0.1:0", *args],
                                     cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL, env=env)
        line, deadline = "", time.monotonic() + 60
        while "listening on" not in line:
            assert self.proc.poll() is None and time.monotonic() < deadline, self.proc.stderr.read()
            if select.select([self.proc.stdout], [], [], 0.5)[0]:
                line = self.proc.stdout.readline()
        self.endpoint = line.rsplit(" ", 1)[1].strip()
        self.ctx = zmq.Context()

    def ask(self, payload, timeout_ms=30000):
        sock = self.ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        try:
            sock.send(payload if isinstance(payload, bytes) else json.dumps(payload).encode())
            assert sock.poll(timeout_ms), "no reply"
            return json.loads(sock.recv())
        finally:
            sock.close(0)

    def close(self):
        end_process(self.proc)
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.ctx.term()


@pytest.fixture
def served(tmp_path):
    servers = []

    def start(*args):
        server = Served(*args, cwd=tmp_path)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_plain_zmq_client_drives_the_whole_contract(served, tmp_path):
    server = served("-n", "8", "--seed", "2")
    assert server.endpoint.startswith("tcp://127.0.0.1:") and not server.endpoint.endswith(":0")
    assert server.ask({"cmd": "ping"}) == {"ok": True, "result": {"n": 8}}
    status = server.ask({"cmd": "net_status"})["result"]
    assert status["n"] == 8 and len(status["peers"]) == 8 and isinstance(status["connectivity"], int)
    assert all(p["id"].isdigit() and set(p) == {"id", "tgf", "tree_size", "reachable", "percent"}
               for p in status["peers"])
    for bad in (b"{not json", b"\xff\xfe", json.dumps([1, 2]).encode(), {"cmd": "nope"}, {"cmd": "time_lapse"},
                {"cmd": "time_lapse", "steps": -1}, {"cmd": "time_lapse", "steps": "2"},
                {"cmd": "output_tgf", "path": str(tmp_path / "no" / "dir.tgf")}, {"cmd": "ping", "extra": 1}):
        reply = server.ask(bad)
        assert reply["ok"] is False and reply["error"] and "\n" not in reply["error"], (bad, reply)
    assert untimed(server.ask({"cmd": "refresh_peers"})) == {"ok": True, "result": {"refreshed": 8}}
    tgf = server.ask({"cmd": "output_tgf", "path": "snap.tgf"})["result"]
    assert tgf["nodes"] == 8 and tgf["edges"] >= 8 and (tmp_path / "snap.tgf").exists()
    assert server.ask({"cmd": "time_lapse", "steps": 2})["result"]["files"] == [  # in the supervisor's directory
        str(tmp_path / "time-lapse-1.tgf"), str(tmp_path / "time-lapse-2.tgf")]
    assert server.ask({"cmd": "ping"})["result"] == {"n": 8}  # still serving after all the errors
    assert server.ask({"cmd": "die"}) == {"ok": True, "result": {"stopping": True}}
    assert server.proc.wait(15) == 0


def test_ctl_talks_to_serve(served):
    server = served("-n", "5", "--seed", "3")
    ctl = [sys.executable, LAUNCHER, "ctl", "--control", server.endpoint]
    out = subprocess.run(ctl + ["net_status"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.splitlines()[-1].startswith("Connectivity percentage ")
    out = subprocess.run(ctl + ["--json", "ping"], capture_output=True, text=True, timeout=60)
    assert json.loads(out.stdout) == {"ok": True, "result": {"n": 5}}
    out = subprocess.run(ctl + ["time_lapse", "steps=-1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1  # refused by ctl, as by run
    out = subprocess.run(ctl + ["lookup", "1", "2"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stderr == "p2p-network: no peer has id 1\n"  # the supervisor's error reply
    out = subprocess.run(ctl + ["die"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert server.proc.wait(15) == 0


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_serve_stops_cleanly_on_signal(served, signum, code):
    server = served("-n", "4")
    assert server.ask({"cmd": "ping"})["ok"]
    server.proc.send_signal(signum)
    assert server.proc.wait(15) == code
    assert server.proc.stderr.read() == ("p2p-network: Aborted!\n" if code else "")


def test_replies_carry_the_envelope_back_to_any_client(served):
    """The server is a ROUTER: whatever precedes the empty delimiter (a REQ's, or a DEALER's own hops) comes back with
    the reply, and a DEALER sending no delimiter gets the bare reply."""
    server = served("-n", "3", "--seed", "4")
    dealer = server.ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(server.endpoint)
    try:
        for envelope in ([b"hop-1", b"hop-2", b""], [b""], []):
            dealer.send_multipart([*envelope, b'{"cmd": "ping"}'])
            assert dealer.poll(30000), "no reply"
            *back, body = dealer.recv_multipart()
            assert back == envelope and json.loads(body) == {"ok": True, "result": {"n": 3}}
    finally:
        dealer.close(0)
