"""A connection monitor nobody reads must never block closing its socket.

libzmq's I/O thread sends each event into the monitor's PAIR pipe with a blocking send, holding the monitored
socket's monitor lock: once the pipe was full (its high-water mark, 1000 + 1000 by default), closing the socket
waited for that lock for ever. A supervisor whose worker was killed hung so in ``die``: the dead worker's reconnect
attempts filled its command channel's monitor while nothing read it.
"""
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(60)

# Many refused endpoints make libzmq retry (and report) thousands of times a second; the process then closes the
# socket without having read a single report, and must end.
SCRIPT = textwrap.dedent("""
    import socket, gevent
    from p2pzmq.transport import Context
    ports = []
    for _ in range(ENDPOINTS):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        ports.append(probe.getsockname()[1])
        probe.close()  # nothing listens there now: every attempt is refused and retried
    ctx = Context()
    sock = ctx.router(max_connections=ENDPOINTS, fail_fast=True)
    for port in ports:
        sock.route(f"tcp://127.0.0.1:{port}")
    gevent.sleep(SECONDS)  # let the unread reports pile up past any high-water mark
    sock.close()
    print("closed", ctx.term())
""")


def test_closing_a_socket_whose_monitor_nobody_read_returns():
    script = SCRIPT.replace("ENDPOINTS", "300").replace("SECONDS", "2.5")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["closed", "0"]
