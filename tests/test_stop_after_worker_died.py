"""``die`` and SIGTERM stop ``serve`` within a few seconds even after one of its workers was killed (kill -9).

Found by a trial: the supervisor's command channel monitors its connections, the dead worker's reconnect attempts
filled the monitor's queue while nothing read it, libzmq's I/O thread then blocked for ever, and ``die`` hung in
closing the channel (tests/test_monitor_full.py has it in isolation). The workers are also stopped all at once, so
the live one is not left waiting behind the dead one's silence until it stops by itself.
"""
import signal
import time

import psutil
import pytest
from test_control import Served

pytestmark = pytest.mark.timeout(90)

#: Peers on the killed worker, each reconnected to ~7 times a second by the channel, and how long their reports get
#: to pile up (beyond the monitor's old limit of 2,000 unread) before the supervisor is asked to stop.
N, PILE_UP = 100, 8.0
#: What "a few seconds" is: shutdown_timeout (5 s) for the dead worker's missing answer, and the rest of stopping.
WITHIN = 12.0


# Slow, both ways (12 s each): the default suite meets the hang in test_workers' killed-worker test, which ends with die.
@pytest.mark.slow
@pytest.mark.parametrize("how", ["die", "sigterm"])
def test_serve_stops_after_a_worker_was_killed(tmp_path, how):
    server = Served("-n", str(N), "--seed", "6", "--workers", "2", cwd=tmp_path)
    try:
        workers = psutil.Process(server.proc.pid).children()
        assert len(workers) == 2
        workers[0].kill()
        workers[0].wait(10)
        assert server.ask({"cmd": "ping"})["ok"]  # the supervisor has not noticed yet: it says both are alive
        time.sleep(PILE_UP)  # not a wait for readiness: the time the reports take to pile up is the point
        started = time.monotonic()
        if how == "die":
            assert server.ask({"cmd": "die"}, timeout_ms=int(WITHIN * 1000)) == {"ok": True,
                                                                                 "result": {"stopping": True}}
        else:
            server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(WITHIN) == 0
        assert time.monotonic() - started < WITHIN
        psutil.wait_procs(workers[1:], timeout=WITHIN)
        assert not workers[1].is_running()
        # The dead one only, if the heartbeats had not declared it gone before the stop (PILE_UP > 5 s usually has)
        assert server.proc.stderr.read().count("did not confirm stop") <= 1
    finally:
        server.close()
