"""Saving a running network to a snapshot and restoring it (docs/DESIGN.md §17): no joins, the same net_status and
TGF, the same future, inproc, over tcp and over workers; bad files refused with one line and nothing left."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from p2pzmq import cli, link, snapshot, worker
from p2pzmq.errors import OutputError, UsageError
from p2pzmq.timeline import untimed

pytestmark = pytest.mark.timeout(120)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tgf(net, path) -> bytes:
    net.output_tgf(str(path))
    return path.read_bytes()


def without_workers(result: dict) -> dict:
    return {key: value for key, value in result.items() if key not in ("workers", "unreachable")}


def restored(make_network, path, attach=None, **config):
    saved = snapshot.read(str(path))
    net = make_network(seed=saved.seed, protocol=saved.protocol, **saved.settings, **config)
    if attach is not None:
        attach(net)
    replies_before = net.counters["replies"]
    result = net.restore(saved)
    assert result == {"n": len(saved.ids), "restored": len(saved.ids)}
    assert net.counters["replies"] == replies_before, "no peer's server answered anything: no joins"
    if net.workers:
        assert [row["replies"] for row in net.stats()["workers"]] == [0] * len(net.workers)
    return net


@pytest.mark.parametrize("protocol, transport", [("original", "inproc"), ("original", "tcp"),
                                                 ("kademlia", "inproc"), ("kademlia", "tcp")])
def test_a_restored_network_has_the_saved_status_and_tgf(make_network, tmp_path, protocol, transport):
    net = make_network(40, seed=7, protocol=protocol, transport=transport)
    net.refresh_peers()
    result = net.output_snapshot(str(tmp_path / "net.snap"))
    assert result["path"] == str(tmp_path / "net.snap") and result["peers"] == 40
    assert result["bytes"] == os.path.getsize(tmp_path / "net.snap")
    again = restored(make_network, tmp_path / "net.snap", transport=transport)
    assert [peer.id for peer in again.peers] == [peer.id for peer in net.peers]
    assert tgf(again, tmp_path / "b.tgf") == tgf(net, tmp_path / "a.tgf")
    assert untimed(again.net_status()) == untimed(net.net_status())
    assert untimed(again.net_status(sample=4)) == untimed(net.net_status(sample=4))  # the status stream was restored too


@pytest.mark.parametrize("metric", ["tree", "xor"])
def test_a_restored_network_goes_on_as_the_saved_one(make_network, tmp_path, metric):
    net = make_network(30, seed=11, metric=metric)
    net.output_snapshot(str(tmp_path / "net.snap"))
    again = restored(make_network, tmp_path / "net.snap")
    for each in (net, again):
        each.add_peers(10)
        each.refresh_peers()
    assert tgf(again, tmp_path / "b.tgf") == tgf(net, tmp_path / "a.tgf")
    assert untimed(again.net_status(sample=3)) == untimed(net.net_status(sample=3))


def test_a_network_over_workers_restores_over_workers(make_network, tmp_path):
    launches = []

    def two_workers(net):
        launches.append(worker.launch(["127.0.0.1"] * 2, net.config))
        for endpoint in launches[-1].endpoints:
            net.attach(endpoint)

    try:
        net = make_network(seed=5, transport="tcp")
        two_workers(net)
        net.create(36)
        net.output_snapshot(str(tmp_path / "net.snap"))
        expected = tgf(net, tmp_path / "a.tgf")
        status = untimed(without_workers(net.net_status()))
        net.die()
        again = restored(make_network, tmp_path / "net.snap", attach=two_workers, transport="tcp")
        assert [row["peers"] for row in again.ping()["workers"]] == [18, 18]
        assert tgf(again, tmp_path / "b.tgf") == expected
        assert untimed(without_workers(again.net_status())) == status
        again.die()
    finally:
        for launched in launches:
            launched.reap(5)


def test_install_waves_and_directory_parts(make_network, tmp_path, monkeypatch):
    """Small waves and directory parts give the same network as one of each (what 50,000 peers need)."""
    from p2pzmq import hosting
    from p2pzmq.network import building

    net = make_network(25, seed=2, transport="tcp")
    net.output_snapshot(str(tmp_path / "net.snap"))
    monkeypatch.setattr(building, "INSTALL_WAVE", 3)
    monkeypatch.setattr(hosting, "INSTALL_CONTACTS", 4)
    launched = worker.launch(["127.0.0.1"], net.config)
    try:
        again = restored(make_network, tmp_path / "net.snap", attach=lambda n: n.attach(launched.endpoints[0]),
                         transport="tcp")
        assert tgf(again, tmp_path / "b.tgf") == tgf(net, tmp_path / "a.tgf")
        again.die()
    finally:
        launched.reap(5)


def test_restore_refuses_other_settings_and_a_busy_network(make_network, tmp_path):
    net = make_network(5, seed=3)
    net.output_snapshot(str(tmp_path / "net.snap"))
    saved = snapshot.read(str(tmp_path / "net.snap"))
    with pytest.raises(UsageError, match="seed"):
        make_network(seed=4).restore(saved)
    with pytest.raises(UsageError, match="metric"):
        make_network(seed=3, metric="xor").restore(saved)
    with pytest.raises(UsageError, match="empty network"):
        net.restore(saved)


def test_a_table_its_protocol_refuses_leaves_no_peer(make_network, tmp_path):
    net = make_network(6, seed=3)
    net.output_snapshot(str(tmp_path / "net.snap"))
    saved = snapshot.read(str(tmp_path / "net.snap"))
    broken = snapshot.Snapshot(**{**saved.__dict__, "tables": [[i for i in table if i != 4] if owner == 4 else table
                                                                for owner, table in enumerate(saved.tables)]})
    again = make_network(seed=3)
    with pytest.raises(snapshot.SnapshotError, match="does not hold it"):
        again.restore(broken)
    assert again.peers == [] and again.local.peers == {}


def test_simulated_time_is_refused_both_ways(make_network, tmp_path):
    net = make_network(4, seed=3, latency="constant:1ms")
    with pytest.raises(UsageError, match="simulated time"):
        net.output_snapshot(str(tmp_path / "net.snap"))
    make_network(4, seed=3).output_snapshot(str(tmp_path / "net.snap"))
    with pytest.raises(UsageError, match="simulated time"):
        make_network(seed=3, latency="constant:1ms").restore(snapshot.read(str(tmp_path / "net.snap")))


def test_output_snapshot_refuses_tables_naming_departed_peers(make_network, tmp_path):
    net = make_network(12, seed=3)
    net.kill_peers(count=2, seed=1)
    with pytest.raises(UsageError, match="no longer in it"):
        net.output_snapshot(str(tmp_path / "net.snap"))
    assert not (tmp_path / "net.snap").exists()
    with pytest.raises(OutputError, match="cannot write"):
        make_network(3).output_snapshot(str(tmp_path / "missing" / "net.snap"))


def test_the_command_runs_in_a_session_and_on_the_control_socket(tmp_path, capsys):
    path = tmp_path / "net.snap"
    assert cli.main(["run", "-n", "20", "--seed", "4", "output_snapshot", str(path), "output_tgf",
                     str(tmp_path / "a.tgf")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"Writing network snapshot to {path}"
    assert cli.main(["run", "--from-snapshot", str(path), "output_tgf", str(tmp_path / "b.tgf")]) == 0
    assert (tmp_path / "a.tgf").read_bytes() == (tmp_path / "b.tgf").read_bytes()
    from p2pzmq.commands import COMMANDS
    assert COMMANDS["output_snapshot"].arguments({"path": "x.snap"}) == {"path": "x.snap"}


def test_the_file_decides_and_contradicting_flags_are_usage_errors(tmp_path, capsys):
    path = tmp_path / "net.snap"
    assert cli.main(["run", "-n", "9", "--seed", "4", "--metric", "xor", "output_snapshot", str(path)]) == 0
    capsys.readouterr()
    assert cli.main(["run", "--from-snapshot", str(path), "--metric", "xor", "--seed", "4", "-n", "9",
                     "ping"]) == 0
    assert capsys.readouterr().out.startswith("9 peers")
    for flags, words in [(["--seed", "5"], "--seed 5 contradicts the snapshot's 4"),
                         (["-n", "10"], "usage error: -n 10 contradicts"), (["--protocol", "kademlia"], "--protocol"),
                         (["--evict-after", "2"], "--evict-after 2 contradicts the snapshot's 0"),
                         (["--k", "3"], "k is a setting of the kademlia protocol")]:
        assert cli.main(["run", "--from-snapshot", str(path), *flags, "ping"]) == 2, flags
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1


@pytest.mark.parametrize("damage, words", [
    (lambda data: data[:-7], "truncated"), (lambda data: b"hello" + data, "not a p2pzmq snapshot"),
    (lambda data: data[:-1] + bytes([data[-1] ^ 1]), "damaged"),
])
def test_bad_files_are_one_line_and_exit_1(tmp_path, capsys, damage, words):
    path = tmp_path / "net.snap"
    assert cli.main(["run", "-n", "5", "--seed", "4", "output_snapshot", str(path)]) == 0
    path.write_bytes(damage(path.read_bytes()))
    capsys.readouterr()
    assert cli.main(["run", "--from-snapshot", str(path)]) == 1
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_a_file_of_an_unknown_protocol_is_refused(tmp_path, capsys):
    path = tmp_path / "net.snap"
    saved = snapshot.Snapshot(protocol="nonesuch", settings={}, metric="tree", seed=1, ids=[5], tables=[[0]],
                              streams={})
    snapshot.write(str(path), saved)
    assert cli.main(["run", "--from-snapshot", str(path)]) == 1
    assert "cannot run here: unknown protocol 'nonesuch'" in capsys.readouterr().err


def test_a_bad_file_over_workers_starts_no_process(tmp_path):
    """serve --workers with a bad file: refused before any worker starts, within the usual one line."""
    path = tmp_path / "net.snap"
    path.write_bytes(b"P2PZSNAP\x00")
    done = subprocess.run([sys.executable, "-m", "p2pzmq", "serve", "--from-snapshot", str(path), "--workers",
                           "2", "--control", "tcp://127.0.0.1:0"], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "truncated" in done.stderr
    assert done.stdout == ""


def test_a_bad_table_over_workers_stops_every_worker(tmp_path, capsys):
    path = tmp_path / "net.snap"
    assert cli.main(["run", "-n", "6", "--seed", "4", "output_snapshot", str(path)]) == 0
    saved = snapshot.read(str(path))
    snapshot.write(str(path), snapshot.Snapshot(**{**saved.__dict__, "tables": [
        [i for i in table if i != 1] if owner == 1 else table for owner, table in enumerate(saved.tables)]}))
    capsys.readouterr()
    assert cli.main(["run", "--from-snapshot", str(path), "--workers", "2"]) == 1
    err = capsys.readouterr().err
    assert "install" in err and err.count("\n") == 1
    assert children_of(os.getpid()) == [], "every worker was stopped and reaped"


def children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc), zombies included: a worker not reaped is still one."""
    children = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.isdigit() and int(fields[1]) == pid:
            children.append(int(entry))
    return children


def test_the_link_knows_install():
    assert link.INSTALL in link.OPS
    codec = link.LinkCodec()
    request = codec.decode(codec.encode(link.request(1, 2, link.INSTALL, {"tables": [["5", 0]]})))
    assert request.op == link.INSTALL and request.fields == {"tables": [["5", 0]]}

