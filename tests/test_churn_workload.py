"""Churn as studies model it, on the network's clock: session laws, Poisson arrivals, a lookup workload and the
series reported per interval (docs/DESIGN.md §12)."""
import gevent
import pytest

from p2pzmq import cli, churn, commands
from p2pzmq.errors import UsageError
from p2pzmq.network import supervisor

pytestmark = pytest.mark.timeout(120)


class SteppedClock:
    """Time that passes only when the churn sleeps: every join, departure and lookup takes no time, so a churn's
    schedule is exactly :func:`p2pzmq.churn.events`' and the same seed repeats it, interval by interval."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds
        gevent.sleep(0)


@pytest.fixture
def stepped(monkeypatch):
    monkeypatch.setattr(supervisor, "_clock_of", lambda config, engine: SteppedClock())


def test_churn_follows_its_plan_interval_by_interval_and_repeats_for_one_seed(make_network, stepped, tmp_path):
    runs = []
    for run in range(2):
        net = make_network(12, seed=3, client_timeout=0.1)  # lookups time out at crashed peers on the wall clock
        ids = [peer.id for peer in net.peers]
        result = net.churn(duration=300.0, session="weibull:0.6:5m", arrival="poisson:0.05", crash_fraction=0.3,
                           seed=7, lookups=0.1, interval=30.0, wait=True,
                           png=None if run else str(tmp_path / "churn"))  # drawn once: matplotlib is slow
        runs.append(result)
    assert {key: value for key, value in runs[0].items() if key != "png"} == runs[1]
    result = runs[0]
    reports = result["intervals"]
    assert [(report["from"], report["to"]) for report in reports] == [(30.0 * i, 30.0 * (i + 1)) for i in range(10)]
    plan = churn.plan_of(300.0, crash_fraction=0.3, seed=7, session="weibull:0.6:5m", arrival="poisson:0.05")
    planned = list(churn.events(plan, ids))
    joins = [event for event in planned if event[1] == "join"]
    departures = [event for event in planned if event[1] == "depart"]
    assert sum(report["joins"] for report in reports) == result["joined"] == len(joins) > 0
    assert sum(report["departures"] for report in reports) == result["left"] + result["killed"] == len(departures)
    assert sum(report["crashed"] for report in reports) == result["killed"] == \
        sum(event[3] == "killed" for event in departures)
    alive = 12
    for report in reports:  # each interval's count follows from the one before
        alive += report["joins"] - report["departures"]
        assert report["alive"] == alive and report["departures"] == report["graceful"] + report["crashed"]
    assert sum(report["lookups"] for report in reports) == result["lookups"] > 0
    for report in reports:
        if report["lookups"]:
            assert 0 <= report["success"] <= 1 and report["latency"]["unit"] == "ms"
        else:
            assert report["success"] is None and report["latency"]["p50"] is None
    with open(result["png"], "rb") as picture:
        assert result["png"].endswith(".png") and picture.read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_old_rates_still_work_in_order_and_the_series_is_one_interval_by_default(make_network, stepped):
    net = make_network(6, seed=1)
    result = net.churn(0.0, 0.0, 30.0, wait=True)
    assert result["intervals"] == [{"from": 0.0, "to": 30.0, "alive": 6, "joins": 0, "departures": 0,
                                    "graceful": 0, "crashed": 0, "lookups": 0, "success": None,
                                    "latency": {"unit": "ms", "p50": None, "p99": None}}]
    assert commands.parse_session(["churn", "1", "0.5", "10", "net_status"])[0] == \
        ("churn", {**{param.name: param.default for param in commands.COMMANDS["churn"].params},
                   "join_rate": 1.0, "leave_rate": 0.5, "duration": 10.0})


@pytest.mark.parametrize("words, message", [
    (["duration=10"], "either join_rate=R or arrival=poisson:RATE"),
    (["duration=10", "join_rate=1", "arrival=poisson:1", "leave_rate=1"], "either join_rate"),
    (["duration=10", "arrival=poisson:1"], "either leave_rate=R or session="),
    (["duration=10", "arrival=poisson:1", "session=exp:10"], "session=exp:10"),
    (["duration=10", "arrival=poisson:1", "session=gamma:2:1s"], "unknown law"),
    (["duration=10", "arrival=poisson:-1", "session=exp:1s"], "arrival=poisson:-1"),
    (["duration=10", "arrival=uniform:1", "session=exp:1s"], "expected poisson:RATE"),
    (["duration=10", "arrival=poisson:1", "session=exp:1s", "lookups=-1"], "lookups must not be negative"),
    (["duration=10", "arrival=poisson:1", "session=exp:1s", "interval=0"], "interval must be positive"),
    (["duration=10", "arrival=poisson:1", "session=exp:1s", "png=out.svg"], "png"),
])
def test_bad_churn_arguments_are_refused_before_anything_runs(words, message, capsys):
    with pytest.raises(UsageError, match=message):
        commands.parse_session(["churn", *words])
    assert cli.main(["run", "-n", "2", "churn", *words]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.split()[0] in err


def test_intervals_report_what_they_were_told():
    intervals = churn.Intervals(100.0, 10.0)
    assert intervals.due == 110.0
    intervals.joined()
    intervals.departed("left")
    intervals.departed("killed")
    intervals.looked_up(True, 0.002)
    intervals.looked_up(True, 0.004)
    intervals.looked_up(False, 9.0)
    first = intervals.close(7)
    assert first == {"from": 0.0, "to": 10.0, "alive": 7, "joins": 1, "departures": 2, "graceful": 1, "crashed": 1,
                     "lookups": 3, "success": 0.666667, "latency": {"unit": "ms", "p50": 2.0, "p99": 4.0}}
    assert intervals.due == 120.0
    assert intervals.close(7, 115.0)["to"] == 15.0  # the last interval may be shorter
    with pytest.raises(UsageError):
        churn.Intervals(0.0, 0.0)


def test_on_the_virtual_clock_churn_of_minutes_takes_a_moment_and_repeats(make_network):
    runs = []
    for _ in range(2):
        net = make_network(8, seed=1, protocol="kademlia", latency="constant:50ms", network_clock="virtual")
        runs.append(net.churn(duration=600.0, session="exp:5m", arrival="poisson:0.02", crash_fraction=0.5, seed=1,
                              lookups=0.05, interval=300.0, wait=True))
        assert net.now() >= 600.0  # simulated seconds, not wall seconds
    assert runs[0] == runs[1] and "error" not in runs[0]
    reports = runs[0]["intervals"]
    assert [report["to"] for report in reports] == [300.0, 600.0] and runs[0]["lookups"] > 0
    timed = [report["latency"]["p50"] for report in reports if report["latency"]["p50"] is not None]
    assert timed and all(p50 >= 100.0 for p50 in timed)  # a lookup takes at least one round of 2 x 50 ms
